"""A kernel booted without the file system (issue 22, point 2): ``boot(vfs=False)``
is a rump kernel without rumpvfs.  The core's calls work, across CPUs; the file
system's answer ENOSYS, whichever way they are called (the host's ``k.sys``, a
number through ``rump_syscall``, ``rumpmp.kern``'s functions, a remote client), as
rump's stubs do when rumpvfs is not linked; and a kernel booted with it in the same
program is unchanged."""

from __future__ import annotations

import errno
import threading

import pytest

from rumpmp import rumpclient
from rumpmp.kern import (
    EV_ADD,
    EVFILT_READ,
    O_CREAT,
    O_RDWR,
    POLLIN,
    RUMP_COMPONENT_KERN_VFS,
    rump_component_count,
    rump_sys_open,
    rump_syscall,
    vfs_attach,
)
from rumpmp.sys import syscall as N
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(120)


def test_the_core_calls_work_and_the_file_calls_are_enosys(rump_boot):
    k = rump_boot(6, vfs=False)  # more virtual CPUs than the host's cores
    s = k.sys
    assert s.getpid() > 1 and s.__sysctl("hw.ncpu") == 6
    assert s.__sysctl("kern.ostype") == "NetBSD"
    r, w = s.pipe()
    kq = s.kqueue()
    s.kevent(kq, [(r, EVFILT_READ, EV_ADD, 0, 0, None)], 0, 0)
    assert s.poll([(r, POLLIN)], 0) == []
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(s.read(r, 5)))  # blocks in the kernel
    reader.start()
    assert s.write(w, b"hello") == 5
    reader.join(30)
    assert got == [b"hello"] and not reader.is_alive()
    s.write(w, b"again")
    assert s.poll([(r, POLLIN)], 0) == [(r, POLLIN)]
    assert s.kevent(kq, None, 1, 5)[0][:2] == (r, EVFILT_READ)
    assert s.fstat(r).st_size == 5
    for call, args in (("open", ("/f", O_CREAT | O_RDWR, 0o644)), ("mkdir", ("/d", 0o755))):
        assert errno_of(getattr(s, call), *args) == errno.ENOSYS, call
    assert errno_of(s.stat, "/") == errno.ENOSYS
    for fd in (r, w, kq):
        s.close(fd)


def test_kernel_code_gets_enosys_for_the_file_system(rump_boot):
    k = rump_boot(3, vfs=False)
    assert errno_of(lambda: k.run(rump_syscall, N.SYS_open, ("/x", O_CREAT, 0o644))) == (
        errno.ENOSYS
    )
    assert errno_of(lambda: k.run(rump_sys_open, "/x", O_CREAT, 0o644)) == errno.ENOSYS
    assert errno_of(lambda: k.run(vfs_attach, "newfs")) == errno.ENOSYS
    assert k.run(rump_syscall, N.SYS_getpid, ()) >= 0
    # rump runs the file system's components from rump_vfs_init: here, none ran
    assert k.run(rump_component_count, RUMP_COMPONENT_KERN_VFS) == 0


def test_processes_fork_and_exit_without_a_working_directory(rump_boot):
    k = rump_boot(3, vfs=False)
    with k.process() as parent:
        r, w = parent.sys.pipe()
        with parent.fork() as child:  # RUMP_RFFDG: the child names the same pipe
            child.sys.write(w, b"from the child")
        assert parent.sys.read(r, 100) == b"from the child"


def test_a_remote_client_gets_enosys_for_the_file_system(rump_boot, tmp_path):
    k = rump_boot(3, vfs=False)
    server = k.listen(f"unix://{tmp_path}/sock")
    try:
        c = rumpclient.connect(f"unix://{tmp_path}/sock")
        r, w = c.sys.pipe()
        assert c.sys.write(w, b"x") == 1 and c.sys.read(r, 1) == b"x"
        assert errno_of(lambda: c.sys.open("/f", O_CREAT | O_RDWR, 0o644)) == errno.ENOSYS
        c.close()
    finally:
        server.close()


def test_a_kernel_with_the_file_system_is_unchanged_beside_one_without(rump_boot):
    without = rump_boot(2, vfs=False)
    with_vfs = rump_boot(2)
    fd = with_vfs.sys.open("/f", O_CREAT | O_RDWR, 0o644)
    assert with_vfs.sys.write(fd, b"data") == 4
    assert with_vfs.run(rump_component_count, RUMP_COMPONENT_KERN_VFS) == 1
    assert errno_of(lambda: without.sys.open("/f", O_CREAT | O_RDWR, 0o644)) == errno.ENOSYS


def test_vfs_must_be_a_bool(rump_boot):
    with pytest.raises(TypeError, match="vfs"):
        rump_boot(1, vfs="no")
