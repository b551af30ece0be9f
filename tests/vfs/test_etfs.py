"""etfs (rump_etfs(3)): a host file in the kernel's namespace (issue 14's optional
part).  NetBSD's tests/rump/rumpvfs/t_etfs.c for regular files (reregister_reg,
key): a key reads and writes the host file, from any CPU; it can be removed and
registered again; errors."""

from __future__ import annotations

import errno

import pytest

from rumpmp.kern import O_RDWR, O_TRUNC, O_WRONLY, RUMP_ETFS_REG
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(60)


def register(key, hostpath, ftype=RUMP_ETFS_REG):
    from rumpmp.kern import rump_pub_etfs_register

    rump_pub_etfs_register(key, hostpath, ftype)


def remove(key):
    from rumpmp.kern import rump_pub_etfs_remove

    rump_pub_etfs_remove(key)


def test_a_host_file_reads_and_writes_through_the_kernel(rump_kernel, tmp_path):
    """t_etfs:reregister_reg: the kernel's file is the host's bytes, both ways, its
    size follows the host file; removed, the key may be registered again."""
    host = tmp_path / "hosts"
    host.write_bytes(b"127.0.0.1 localhost\n")
    s = rump_kernel.sys
    s.mkdir("/etc", 0o755)
    rump_kernel.run(register, "/etc/hosts", str(host))
    fd = s.open("/etc/hosts", O_RDWR)
    assert s.read(fd, 100) == b"127.0.0.1 localhost\n"
    assert s.write(fd, b"::1 localhost\n") == 14
    assert host.read_bytes() == b"127.0.0.1 localhost\n::1 localhost\n"
    host.write_bytes(b"changed by the host, and longer than before\n")
    assert s.fstat(fd).st_size == 44  # the host's size, as it is now
    assert s.pread(fd, 7, 0) == b"changed"
    for cpu in range(rump_kernel.ncpu):  # every CPU reaches the host file
        got = rump_kernel.run(_read_all, "/etc/hosts", cpu=cpu)
        assert got == b"changed by the host, and longer than before\n"
    s.close(s.open("/etc/hosts", O_WRONLY | O_TRUNC))
    assert host.read_bytes() == b""
    rump_kernel.run(remove, "/etc/hosts")
    assert s.listdir("/etc") == []
    assert host.exists()  # the mapping goes, the host file stays
    host.write_bytes(b"again")
    rump_kernel.run(register, "/etc/hosts", str(host))
    assert rump_kernel.run(_read_all, "/etc/hosts") == b"again"


def _read_all(path):
    from rumpmp.kern import O_RDONLY, rump_sys_close, rump_sys_open, rump_sys_read

    fd = rump_sys_open(path, O_RDONLY)
    try:
        return rump_sys_read(fd, 1 << 16)
    finally:
        rump_sys_close(fd)


def test_errors(rump_kernel, tmp_path):
    host = tmp_path / "f"
    host.write_bytes(b"x")

    def err(fn, *args):
        try:
            rump_kernel.run(fn, *args)
        except OSError as e:
            return e.errno
        return 0

    assert err(register, "/k", str(tmp_path / "missing")) == errno.ENOENT
    assert err(register, "/k", str(tmp_path)) == errno.EINVAL  # a directory
    assert err(register, "/k", str(host), 3) == errno.EOPNOTSUPP  # RUMP_ETFS_DIR
    assert err(register, "/nodir/k", str(host)) == errno.ENOENT
    assert err(register, "/k", str(host)) == 0
    assert err(register, "/k", str(host)) == errno.EEXIST
    rump_kernel.sys.mkdir("/plain")
    assert err(remove, "/plain") == errno.EINVAL
    assert errno_of(rump_kernel.sys.rmdir, "/k") == errno.ENOTDIR
