"""The system call table (init_sysent.c) and its one dispatcher (rump_syscall).

Each entry has its number, its name, the kernel function that serves it
(``rump_sys_<name>``), the types of its arguments and whether it is MPSAFE.  The
dispatcher checks the number and the arguments and turns every failure into an
errno: ``ENOSYS`` for a number past the table or in a hole, ``EINVAL`` for
arguments that do not fit, the call's own errno otherwise; nothing else escapes.

``serve`` answers a caller in another address space (the host's ``Kernel.sys``
runs it in an lwp of the caller's process); ``call_in`` switches kernel code to a
given process for one call.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypercalls import clock
from rumpmp.rumpkern import arena as _arena
from rumpmp.rumpkern.locking import biglock
from rumpmp.rumpkern.sched import lwproc
from rumpmp.rumpkern.sched.proc import curproc_word
from rumpmp.rumpkern.svc import module, prot, reboot, resource, signals, sysctl
from rumpmp.sys import syscall as N
from rumpmp.sys.proc import P_RTIME
from rumpmp.vfs import sys_generic, vfs_syscalls


@dataclass(frozen=True)
class Sysent:
    num: int
    name: str
    func: Callable[..., Any]
    params: tuple[tuple[str, tuple[type, ...]], ...] = ()
    mpsafe: bool = True


_INT = (int,)
_ANY = (object,)
_STR = (str,)
_BYTES = (bytes, bytearray, memoryview)
_LIST = (list, tuple)
_TIME = (int, float, type(None))
_FD = (("fd", _INT),)
_PATH = (("path", _STR),)


def _file_calls() -> list[Sysent]:
    """The file layer's calls (rumpmp.vfs)."""
    G, S = sys_generic, vfs_syscalls
    return [
        Sysent(N.SYS_read, "read", G.rump_sys_read, (*_FD, ("size", _INT))),
        Sysent(N.SYS_write, "write", G.rump_sys_write, (*_FD, ("data", _BYTES))),
        Sysent(N.SYS_pread, "pread", G.rump_sys_pread, (*_FD, ("size", _INT), ("offset", _INT))),
        Sysent(
            N.SYS_pwrite, "pwrite", G.rump_sys_pwrite, (*_FD, ("data", _BYTES), ("offset", _INT))
        ),
        Sysent(N.SYS_readv, "readv", G.rump_sys_readv, (*_FD, ("buffers", _LIST))),
        Sysent(N.SYS_writev, "writev", G.rump_sys_writev, (*_FD, ("buffers", _LIST))),
        Sysent(N.SYS_close, "close", G.rump_sys_close, _FD),
        Sysent(N.SYS_dup, "dup", G.rump_sys_dup, _FD),
        Sysent(N.SYS_dup2, "dup2", G.rump_sys_dup2, (*_FD, ("newfd", _INT))),
        Sysent(N.SYS_dup3, "dup3", G.rump_sys_dup3, (*_FD, ("newfd", _INT), ("flags", _INT))),
        Sysent(N.SYS_fcntl, "fcntl", G.rump_sys_fcntl, (*_FD, ("cmd", _INT), ("arg", _INT))),
        Sysent(N.SYS_ioctl, "ioctl", G.rump_sys_ioctl, (*_FD, ("cmd", _INT), ("arg", _INT))),
        Sysent(N.SYS_fstat, "fstat", G.rump_sys_fstat, _FD),
        Sysent(N.SYS_pipe, "pipe", G.rump_sys_pipe),
        Sysent(N.SYS_pipe2, "pipe2", G.rump_sys_pipe2, (("flags", _INT),)),
        Sysent(N.SYS_kqueue, "kqueue", G.rump_sys_kqueue),
        Sysent(
            N.SYS_kevent,
            "kevent",
            G.rump_sys_kevent,
            (
                ("kq", _INT),
                ("changes", (*_LIST, type(None))),
                ("nevents", _INT),
                ("timeout", _TIME),
            ),
        ),
        Sysent(N.SYS_poll, "poll", G.rump_sys_poll, (("fds", _LIST), ("timeout", _INT))),
        Sysent(N.SYS_pollts, "pollts", G.rump_sys_pollts, (("fds", _LIST), ("timeout", _TIME))),
        Sysent(
            N.SYS_select,
            "select",
            G.rump_sys_select,
            (("rlist", _LIST), ("wlist", _LIST), ("xlist", _LIST), ("timeout", _TIME)),
        ),
        Sysent(N.SYS_open, "open", S.rump_sys_open, (*_PATH, ("flags", _INT), ("mode", _INT))),
        Sysent(N.SYS_mkdir, "mkdir", S.rump_sys_mkdir, (*_PATH, ("mode", _INT))),
        Sysent(N.SYS_rmdir, "rmdir", S.rump_sys_rmdir, _PATH),
        Sysent(N.SYS_unlink, "unlink", S.rump_sys_unlink, _PATH),
        Sysent(N.SYS_rename, "rename", S.rump_sys_rename, (("src", _STR), ("dst", _STR))),
        Sysent(N.SYS_link, "link", S.rump_sys_link, (("src", _STR), ("dst", _STR))),
        Sysent(N.SYS_symlink, "symlink", S.rump_sys_symlink, (("target", _STR), *_PATH)),
        Sysent(N.SYS_readlink, "readlink", S.rump_sys_readlink, _PATH),
        Sysent(N.SYS_stat, "stat", S.rump_sys_stat, _PATH),
        Sysent(N.SYS_lstat, "lstat", S.rump_sys_lstat, _PATH),
        Sysent(N.SYS_chmod, "chmod", S.rump_sys_chmod, (*_PATH, ("mode", _INT))),
        Sysent(N.SYS_fchmod, "fchmod", S.rump_sys_fchmod, (*_FD, ("mode", _INT))),
        Sysent(N.SYS_chown, "chown", S.rump_sys_chown, (*_PATH, ("uid", _INT), ("gid", _INT))),
        Sysent(N.SYS_lchown, "lchown", S.rump_sys_lchown, (*_PATH, ("uid", _INT), ("gid", _INT))),
        Sysent(N.SYS_fchown, "fchown", S.rump_sys_fchown, (*_FD, ("uid", _INT), ("gid", _INT))),
        Sysent(
            N.SYS_utimes, "utimes", S.rump_sys_utimes, (*_PATH, ("times", (*_LIST, type(None))))
        ),
        Sysent(N.SYS_truncate, "truncate", S.rump_sys_truncate, (*_PATH, ("length", _INT))),
        Sysent(N.SYS_ftruncate, "ftruncate", S.rump_sys_ftruncate, (*_FD, ("length", _INT))),
        Sysent(N.SYS_fsync, "fsync", S.rump_sys_fsync, _FD),
        Sysent(N.SYS_lseek, "lseek", S.rump_sys_lseek, (*_FD, ("offset", _INT), ("whence", _INT))),
        Sysent(N.SYS_getdents, "getdents", S.rump_sys_getdents, (*_FD, ("count", _INT))),
        Sysent(N.SYS_listdir, "listdir", S.rump_sys_listdir, _PATH),
        Sysent(N.SYS_chdir, "chdir", S.rump_sys_chdir, _PATH),
        Sysent(N.SYS_fchdir, "fchdir", S.rump_sys_fchdir, _FD),
        Sysent(N.SYS_getcwd, "getcwd", S.rump_sys_getcwd),
        Sysent(N.SYS_access, "access", S.rump_sys_access, (*_PATH, ("mode", _INT))),
        Sysent(N.SYS_statvfs, "statvfs", S.rump_sys_statvfs, _PATH),
        Sysent(
            N.SYS_mount,
            "mount",
            S.rump_sys_mount,
            (("fstype", _STR), *_PATH, ("flags", _INT), ("size", _INT)),
        ),
        Sysent(N.SYS_unmount, "unmount", S.rump_sys_unmount, (*_PATH, ("flags", _INT))),
    ]


SYSENT: dict[int, Sysent] = {
    e.num: e
    for e in (
        Sysent(N.SYS_getpid, "getpid", prot.rump_sys_getpid),
        Sysent(N.SYS_kill, "kill", signals.rump_sys_kill, (("pid", _INT), ("sig", _INT))),
        Sysent(N.SYS_setuid, "setuid", prot.rump_sys_setuid, (("uid", _INT),)),
        Sysent(N.SYS_getuid, "getuid", prot.rump_sys_getuid),
        Sysent(N.SYS_geteuid, "geteuid", prot.rump_sys_geteuid),
        Sysent(N.SYS_getppid, "getppid", prot.rump_sys_getppid),
        Sysent(N.SYS_getegid, "getegid", prot.rump_sys_getegid),
        Sysent(N.SYS_getgid, "getgid", prot.rump_sys_getgid),
        Sysent(N.SYS_getgroups, "getgroups", prot.rump_sys_getgroups),
        Sysent(N.SYS_setgroups, "setgroups", prot.rump_sys_setgroups, (("groups", (list, tuple)),)),
        Sysent(N.SYS_setgid, "setgid", prot.rump_sys_setgid, (("gid", _INT),)),
        Sysent(
            N.SYS___sysctl,
            "__sysctl",
            sysctl.rump_sys___sysctl,
            (("name", (str, tuple)), ("new", _ANY)),
        ),
        Sysent(
            N.SYS_modctl,
            "modctl",
            module.rump_sys_modctl,
            (("cmd", _INT), ("arg", _ANY)),
            mpsafe=False,
        ),
        Sysent(N.SYS_getrlimit, "getrlimit", resource.rump_sys_getrlimit, (("resource", _INT),)),
        Sysent(
            N.SYS_setrlimit,
            "setrlimit",
            resource.rump_sys_setrlimit,
            (("resource", _INT), ("soft", _INT), ("hard", _INT)),
        ),
        Sysent(
            N.SYS_reboot,
            "reboot",
            reboot.rump_sys_reboot,
            (("howto", _INT), ("bootstr", (str, type(None)))),
        ),
        *_file_calls(),
    )
}
BY_NAME = {e.name: e for e in SYSENT.values()}


def check_args(entry: Sysent, args: tuple[Any, ...]) -> None:
    """TypeError naming the parameter if ``args`` do not fit ``entry``."""
    if len(args) > len(entry.params):
        raise TypeError(f"{entry.name}() takes {len(entry.params)} arguments, not {len(args)}")
    for (name, types), value in zip(entry.params, args, strict=False):
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise TypeError(
                f"{entry.name}: {name} must be {_names(types)}, not {type(value).__name__}"
            )


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("anything" if t is object else t.__name__ for t in types)


def rump_syscall(num: int, args: tuple[Any, ...] = ()) -> Any:
    """Serve system call ``num`` with ``args`` in the calling lwp's process; its
    result, or OSError with the errno (never another exception)."""
    entry = SYSENT.get(num) if isinstance(num, int) and not isinstance(num, bool) else None
    if entry is None:
        raise OSError(errno.ENOSYS, f"no system call {num!r}")
    if not isinstance(args, (tuple, list)):  # (a tuple: "tuple | list" is built at each call)
        raise OSError(errno.EINVAL, f"{entry.name}: arguments must be a tuple")
    try:
        check_args(entry, tuple(args))
        if entry.mpsafe:
            return entry.func(*args)
        biglock.KERNEL_LOCK(1)
        try:
            return entry.func(*args)
        finally:
            biglock.KERNEL_UNLOCK_ONE()
    except OSError:
        raise
    except (TypeError, ValueError) as e:
        raise OSError(errno.EINVAL, f"{entry.name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a system call answers with an errno, always
        raise OSError(errno.EIO, f"{entry.name}: {type(e).__name__}: {e}") from None


def serve(num: int, args: tuple[Any, ...]) -> Any:
    """``rump_syscall`` for a caller in another address space (the host, a remote
    client): for a call that fills buffers, (its result, the buffers' contents).
    The time it takes counts as its process's (kern.proc2)."""
    start = clock.monotonic_ns()
    try:
        result = rump_syscall(num, args)
    finally:
        arena = _arena.current()
        arena.w[curproc_word(arena) + P_RTIME] += clock.monotonic_ns() - start
    if num not in N.FILLS:
        return result
    return result, [bytes(b) for b in args[N.FILLS[num]]]


def call_in(pid: int, num: int, args: tuple[Any, ...]) -> Any:
    """``serve`` in process ``pid``, in an lwp context of its own made for the call."""
    lwproc.rump_lwproc_newlwp(pid)
    try:
        return serve(num, args)
    finally:
        lwproc.rump_lwproc_releaselwp()


def new_process(flags: int, parent: int | None) -> tuple[int, int]:
    """A process for the host, a child of ``parent`` (None: of proc0): its pid and
    the lwp that keeps it alive between calls."""
    if parent is not None:
        lwproc.rump_lwproc_newlwp(parent)
    in_parent = lwproc.rump_lwproc_curlwp()  # None in the implicit context (proc0)
    try:
        lwproc.rump_lwproc_rfork(flags)
    except BaseException:
        if in_parent is not None:
            lwproc.rump_lwproc_releaselwp()
        raise
    pid, holder = prot.rump_sys_getpid(), lwproc.rump_lwproc_curlwp()
    lwproc.rump_lwproc_switch(in_parent)  # the child's lwp waits, idle, for calls
    if in_parent is not None:
        lwproc.rump_lwproc_releaselwp()  # the one made in the parent for this
    assert holder is not None
    return pid, holder


def end_process(holder: int) -> None:
    """Release the holder lwp: the process ends with it (if no call is in it)."""
    lwproc.rump_lwproc_switch(holder)
    lwproc.rump_lwproc_releaselwp()
