"""A port of NetBSD's tests/rump/rumpkern/t_modcmd.c, cmsg_modcmd (issue 23): a
file-system module can be loaded and unloaded, twice; while it is loaded mount(2)
knows its type, before and after it does not.  Upstream loads tmpfs, which rumpmp
has built in; the module here attaches a type of its own, as tmpfs's modcmd does."""

from __future__ import annotations

import errno

import pytest


def fs_modcmd(cmd, arg):
    from rumpmp.kern import MODULE_CMD_FINI, MODULE_CMD_INIT, vfs_attach, vfs_detach

    if cmd == MODULE_CMD_INIT:
        vfs_attach("testfs")
        return 0
    if cmd == MODULE_CMD_FINI:
        vfs_detach("testfs")
        return 0
    return errno.ENOTTY


def cmsg_modcmd():
    from rumpmp.kern import (
        MODULE_CLASS_VFS,
        modinfo_t,
        rump_module_fini,
        rump_module_init,
        rump_sys_mkdir,
        rump_sys_mount,
        rump_sys_unmount,
    )

    def errno_of(fn, *args):
        try:
            fn(*args)
        except OSError as e:
            return e.errno
        return 0

    mi = modinfo_t("testfs", MODULE_CLASS_VFS, fs_modcmd)
    steps = []
    rump_sys_mkdir("/mp", 0o777)
    steps.append(("mount before load", errno_of(rump_sys_mount, "testfs", "/mp", 0, 0)))
    for _ in range(2):  # upstream's "goto again"
        steps.append(("init", errno_of(rump_module_init, mi)))
        steps.append(("double init", errno_of(rump_module_init, mi)))
        steps.append(("mount", errno_of(rump_sys_mount, "testfs", "/mp", 0, 0)))
        steps.append(("unmount", errno_of(rump_sys_unmount, "/mp", 0)))
        steps.append(("fini", errno_of(rump_module_fini, mi)))
        steps.append(("double fini", errno_of(rump_module_fini, mi) != 0))
    steps.append(("mount after unload", errno_of(rump_sys_mount, "testfs", "/mp", 0, 0)))
    return steps


@pytest.mark.timeout(60)
def test_cmsg_modcmd(rump_kernel):
    once = [
        ("init", 0),
        ("double init", errno.EEXIST),
        ("mount", 0),
        ("unmount", 0),
        ("fini", 0),
        ("double fini", True),
    ]
    assert rump_kernel.run(cmsg_modcmd) == [
        ("mount before load", errno.ENODEV),
        *once,
        *once,
        ("mount after unload", errno.ENODEV),
    ]


def attach_errors():
    from rumpmp.kern import vfs_attach, vfs_detach

    out = []
    for call in (
        lambda: vfs_attach("memfs"),
        lambda: vfs_detach("nosuchfs"),
        lambda: vfs_attach(""),
        lambda: vfs_attach(3),
    ):
        try:
            call()
        except OSError as e:
            out.append(e.errno)
        except TypeError:
            out.append("TypeError")
    return out


@pytest.mark.timeout(60)
def test_vfs_attach_errors(rump_kernel):
    assert rump_kernel.run(attach_errors) == [
        errno.EEXIST,
        errno.ENOENT,
        errno.EINVAL,
        "TypeError",
    ]
