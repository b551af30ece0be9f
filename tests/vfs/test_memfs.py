"""The memory file system (issue 14): names, links, renames, attributes,
permissions, sizes and mounts.  Ports of NetBSD's tests/fs/tmpfs (t_mkdir, t_dots,
t_rmdir, t_remove, t_link, t_rename, t_symlink, t_setattr, t_times, t_truncate,
t_sizes, t_statvfs, t_readdir, t_trail_slash, t_mount, t_read_write, t_vnode_leak)
and tests/lib/libc/sys (t_mkdir, t_link, t_unlink, t_rename, t_stat) where they map.
"""

from __future__ import annotations

import errno

import pytest

from rumpmp.kern import (
    EV_ADD,
    EVFILT_READ,
    O_APPEND,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    R_OK,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    W_OK,
    X_OK,
)
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(60)


def _write(s, path, data, flags=O_CREAT | O_WRONLY | O_TRUNC):
    fd = s.open(path, flags, 0o644)
    s.write(fd, data)
    s.close(fd)


def _read(s, path):
    fd = s.open(path, O_RDONLY)
    try:
        return s.read(fd, 1 << 20)
    finally:
        s.close(fd)


def test_the_component_mounted_a_root_at_boot(rump_kernel):
    from rumpmp.kern import RUMP_COMPONENT_KERN_VFS
    from rumpmp.rumpkern.svc.module import rump_component_count

    assert rump_kernel.run(rump_component_count, RUMP_COMPONENT_KERN_VFS) >= 1
    st = rump_kernel.sys.stat("/")
    assert st.st_mode & S_IFMT == S_IFDIR and st.st_nlink == 2
    assert rump_kernel.sys.listdir("/") == []


def test_mkdir_nested_links_and_errors(rump_kernel):
    """t_mkdir (tmpfs single, nested, attrs; libc mkdir_err, mkdir_trail)."""
    s = rump_kernel.sys
    s.mkdir("/a", 0o755)
    s.mkdir("/a/b/", 0o700)  # a trailing slash is allowed
    s.mkdir("/a/b/c")
    assert s.stat("/a").st_nlink == 3  # ".", its entry in /, and b's ".."
    assert s.stat("/a/b").st_mode == S_IFDIR | 0o700
    assert s.stat("/").st_nlink == 3
    assert errno_of(s.mkdir, "/a") == errno.EEXIST
    assert errno_of(s.mkdir, "/nope/x") == errno.ENOENT
    _write(s, "/file", b"")
    assert errno_of(s.mkdir, "/file/x") == errno.ENOTDIR
    assert errno_of(s.mkdir, "/" + "n" * 256) == errno.ENAMETOOLONG
    assert errno_of(s.mkdir, "/") == errno.EEXIST


def test_dots(rump_kernel):
    """t_dots: "." and ".." in every position, including above the root."""
    s = rump_kernel.sys
    s.mkdir("/a")
    s.mkdir("/a/b")
    _write(s, "/a/b/f", b"x")
    assert _read(s, "/a/./b/../b/./f") == b"x"
    assert _read(s, "/../../a/b/f") == b"x"
    assert s.stat("/a/b/..").st_ino == s.stat("/a").st_ino
    assert s.stat("/..").st_ino == s.stat("/").st_ino


def test_rmdir(rump_kernel):
    """t_rmdir: single, nested, non_empty, dots, curdir, non_existent."""
    s = rump_kernel.sys
    s.mkdir("/a")
    s.mkdir("/a/b")
    assert errno_of(s.rmdir, "/a") == errno.ENOTEMPTY
    assert errno_of(s.rmdir, "/a/b/.") == errno.EINVAL
    assert errno_of(s.rmdir, "/a/b/..") == errno.ENOTEMPTY
    assert errno_of(s.rmdir, "/nope") == errno.ENOENT
    _write(s, "/a/f", b"")
    assert errno_of(s.rmdir, "/a/f") == errno.ENOTDIR
    s.unlink("/a/f")
    s.chdir("/a/b")
    s.rmdir("/a/b")  # the working directory may go; it is then empty and unreachable
    assert errno_of(s.getcwd) == errno.ENOENT
    assert errno_of(s.open, "x", O_CREAT | O_WRONLY, 0o644) == errno.ENOENT
    s.chdir("/")
    assert s.stat("/a").st_nlink == 2
    s.rmdir("/a")
    assert s.listdir("/") == []


def test_unlink_keeps_open_files_alive(rump_kernel):
    """t_remove / libc unlink_basic: the data stays until the last close."""
    s = rump_kernel.sys
    _write(s, "/f", b"still here")
    fd = s.open("/f", O_RDONLY)
    s.unlink("/f")
    assert errno_of(s.stat, "/f") == errno.ENOENT
    assert s.fstat(fd).st_nlink == 0
    assert s.read(fd, 100) == b"still here"
    s.close(fd)
    s.mkdir("/d")
    assert errno_of(s.unlink, "/d") == errno.EPERM
    assert errno_of(s.unlink, "/nope") == errno.ENOENT


def test_link_counts_and_errors(rump_kernel):
    """t_link (tmpfs basic, subdirs; libc link_count, link_err, link_stat)."""
    s = rump_kernel.sys
    _write(s, "/f", b"data")
    s.mkdir("/d")
    s.link("/f", "/d/g")
    assert s.stat("/f").st_nlink == s.stat("/d/g").st_nlink == 2
    assert s.stat("/f").st_ino == s.stat("/d/g").st_ino
    assert _read(s, "/d/g") == b"data"
    s.unlink("/f")
    assert s.stat("/d/g").st_nlink == 1
    assert errno_of(s.link, "/d/g", "/d/g") == errno.EEXIST
    assert errno_of(s.link, "/nope", "/x") == errno.ENOENT
    assert errno_of(s.link, "/d", "/e") == errno.EPERM


def test_rename(rump_kernel):
    """t_rename: basic, across directories, over a file, dir_to_emptydir,
    dir_to_fulldir, dir_to_file, file_to_dir, dots, into itself."""
    s = rump_kernel.sys
    s.mkdir("/a")
    s.mkdir("/b")
    _write(s, "/a/f", b"one")
    _write(s, "/b/g", b"two")
    s.rename("/a/f", "/b/g")  # over an existing file, atomically
    assert s.listdir("/a") == [] and s.listdir("/b") == ["g"]
    assert _read(s, "/b/g") == b"one"
    s.mkdir("/a/sub")
    s.rename("/a/sub", "/b/sub")  # a directory across directories: ".." follows
    assert s.stat("/b/sub/..").st_ino == s.stat("/b").st_ino
    assert (s.stat("/a").st_nlink, s.stat("/b").st_nlink) == (2, 3)
    s.mkdir("/a/empty")
    s.rename("/b/sub", "/a/empty")  # over an empty directory
    s.mkdir("/a/full")
    _write(s, "/a/full/x", b"")
    assert errno_of(s.rename, "/a/empty", "/a/full") == errno.ENOTEMPTY
    assert errno_of(s.rename, "/a/empty", "/b/g") == errno.ENOTDIR
    assert errno_of(s.rename, "/b/g", "/a/full") == errno.EISDIR
    assert errno_of(s.rename, "/a", "/a/full/inside") == errno.EINVAL
    assert errno_of(s.rename, "/a/.", "/c") == errno.EINVAL
    assert errno_of(s.rename, "/nope", "/c") == errno.ENOENT
    s.link("/b/g", "/b/h")
    s.rename("/b/g", "/b/h")  # two names of one file: nothing happens
    assert sorted(s.listdir("/b")) == ["g", "h"]


def test_symlinks(rump_kernel):
    """t_symlink: to a file and a directory, relative and absolute; lstat; loops
    are ELOOP; O_NOFOLLOW."""
    s = rump_kernel.sys
    s.mkdir("/d")
    _write(s, "/d/f", b"target")
    s.symlink("f", "/d/rel")
    s.symlink("/d", "/abs")
    assert _read(s, "/d/rel") == b"target"
    assert _read(s, "/abs/rel") == b"target"
    assert s.readlink("/d/rel") == "f"
    assert s.lstat("/abs").st_mode & S_IFMT == S_IFLNK
    assert s.stat("/abs").st_mode & S_IFMT == S_IFDIR
    assert s.lstat("/abs").st_size == 2
    s.symlink("/loop2", "/loop1")
    s.symlink("/loop1", "/loop2")
    assert errno_of(s.stat, "/loop1") == errno.ELOOP
    assert errno_of(s.open, "/d/rel", O_RDONLY | O_NOFOLLOW) == errno.ELOOP
    assert errno_of(s.readlink, "/d/f") == errno.EINVAL
    s.symlink("/nowhere", "/dangling")
    assert errno_of(s.stat, "/dangling") == errno.ENOENT
    assert s.lstat("/dangling").st_size == len("/nowhere")


def test_open_flags(rump_kernel):
    """O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY (t_create, t_read_write)."""
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_EXCL | O_RDWR, 0o600)
    s.write(fd, b"abcdef")
    s.close(fd)
    assert s.stat("/f").st_mode == S_IFREG | 0o600
    assert errno_of(s.open, "/f", O_CREAT | O_EXCL | O_RDWR, 0o600) == errno.EEXIST
    assert errno_of(s.open, "/g", O_RDONLY) == errno.ENOENT
    _write(s, "/f", b"xy", O_WRONLY | O_APPEND)
    assert _read(s, "/f") == b"abcdefxy"
    s.close(s.open("/f", O_WRONLY | O_TRUNC))
    assert s.stat("/f").st_size == 0
    assert errno_of(s.open, "/f", O_RDONLY | O_DIRECTORY) == errno.ENOTDIR
    s.mkdir("/d")
    assert errno_of(s.open, "/d", O_WRONLY) == errno.EISDIR
    fd = s.open("/d", O_RDONLY | O_DIRECTORY)
    s.fchdir(fd)
    assert s.getcwd() == "/d"
    assert errno_of(s.open, "/f/", O_RDONLY) == errno.ENOTDIR  # t_trail_slash


def test_readdir_and_getdents(rump_kernel):
    """t_readdir: dots, types, many."""
    s = rump_kernel.sys
    s.mkdir("/d")
    for i in range(100):
        _write(s, f"/d/f{i:03}", b"")
    s.mkdir("/d/sub")
    s.symlink("f000", "/d/ln")
    assert sorted(s.listdir("/d")) == sorted([f"f{i:03}" for i in range(100)] + ["sub", "ln"])
    fd = s.open("/d", O_RDONLY)
    seen = []
    while chunk := s.getdents(fd, 7):
        seen += chunk
    names = [name for _, _, name in seen]
    assert names[:2] == [".", ".."] and len(names) == 104
    types = {name: t for _, t, name in seen}
    assert (types["sub"], types["ln"], types["f050"]) == (4, 10, 8)  # DT_DIR, DT_LNK, DT_REG
    assert s.stat("/d").st_size == 102


def test_setattr_and_times(rump_kernel):
    """t_setattr (chmod, chown) and t_times."""
    s = rump_kernel.sys
    _write(s, "/f", b"")
    s.chmod("/f", 0o4751)
    assert s.stat("/f").st_mode == S_IFREG | 0o4751
    s.chown("/f", 1000, 100)
    st = s.stat("/f")
    assert (st.st_uid, st.st_gid) == (1000, 100)
    s.chown("/f", -1, 7)
    assert s.stat("/f").st_uid == 1000
    s.utimes("/f", (1_000_000.5, 2_000_000.25))
    st = s.stat("/f")
    assert st.st_atime_ns == 1_000_000_500_000_000 and st.st_mtime == 2_000_000.25
    before = s.stat("/f").st_mtime_ns
    _write(s, "/f", b"x", O_WRONLY)
    assert s.stat("/f").st_mtime_ns > before
    s.utimes("/f", None)
    assert s.stat("/f").st_atime > 2_000_000


def test_permissions_for_a_user(rump_kernel):
    """libc t_mkdir:mkdir_perm, t_link:link_perm, t_unlink:unlink_perm,
    t_stat:stat_perm: a user who may not gets EACCES (or EPERM)."""
    s = rump_kernel.sys
    s.mkdir("/root", 0o700)
    _write(s, "/root/secret", b"s")
    s.mkdir("/pub", 0o777)
    _write(s, "/pub/ro", b"r")
    s.chmod("/pub/ro", 0o644)
    with rump_kernel.process() as p:
        u = p.sys
        u.setgid(100)
        u.setuid(1000)
        assert errno_of(u.stat, "/root/secret") == errno.EACCES  # no search permission
        assert errno_of(u.listdir, "/root") == errno.EACCES
        assert errno_of(u.mkdir, "/root/x") == errno.EACCES
        assert errno_of(u.open, "/pub/ro", O_WRONLY) == errno.EACCES
        assert u.read(u.open("/pub/ro", O_RDONLY), 10) == b"r"
        assert errno_of(u.chmod, "/pub/ro", 0o777) == errno.EPERM
        assert errno_of(u.chown, "/pub/ro", 1000, 100) == errno.EPERM
        assert errno_of(u.truncate, "/pub/ro", 0) == errno.EACCES
        assert errno_of(u.access, "/pub/ro", W_OK) == errno.EACCES
        u.access("/pub/ro", R_OK)
        u.mkdir("/pub/mine", 0o700)
        assert s.stat("/pub/mine").st_uid == 1000
        u.chmod("/pub/mine", 0o755)
        assert errno_of(u.mount, "tmpfs", "/pub/mine", 0, 0) == errno.EPERM
    s.access("/root/secret", R_OK | W_OK)  # root may
    assert errno_of(s.access, "/root/secret", X_OK) == errno.EACCES  # but not execute
    assert errno_of(s.access, "/nope", 0) == errno.ENOENT


def test_truncate(rump_kernel):
    """t_truncate: grow with zeros, shrink, ftruncate."""
    s = rump_kernel.sys
    _write(s, "/f", b"abcdef")
    s.truncate("/f", 3)
    assert _read(s, "/f") == b"abc"
    s.truncate("/f", 6)
    assert _read(s, "/f") == b"abc\0\0\0"
    fd = s.open("/f", O_RDWR)
    s.ftruncate(fd, 1)
    assert s.fstat(fd).st_size == 1
    s.fsync(fd)
    s.mkdir("/d")
    assert errno_of(s.truncate, "/d", 0) == errno.EISDIR
    assert errno_of(s.truncate, "/f", -1) == errno.EINVAL


def test_sizes_enospc_and_the_kernel_survives(rump_boot, monkeypatch):
    """t_sizes: a file system with a size limit fills with ENOSPC; freeing the
    space makes room again; the heap running dry is ENOSPC too, not a panic."""
    monkeypatch.setenv("RUMP_MEMLIMIT", "8M")
    k = rump_boot(2)
    s = k.sys
    s.mkdir("/small")
    s.mount("tmpfs", "/small", 0, 256 * 1024)
    fd = s.open("/small/f", O_CREAT | O_WRONLY, 0o644)
    written = 0
    with pytest.raises(OSError) as info:
        while True:
            written += s.write(fd, b"z" * 16384)
    assert info.value.errno == errno.ENOSPC and 100_000 <= written <= 256 * 1024
    vfs = s.statvfs("/small")
    assert vfs.f_blocks == 64 and vfs.f_bfree < 64
    s.close(fd)
    s.unlink("/small/f")
    _write(s, "/small/g", b"y" * 100_000)  # room again
    big = s.open("/big", O_CREAT | O_WRONLY, 0o644)
    with pytest.raises(OSError) as info:
        while True:
            s.write(big, b"q" * 65536)
    assert info.value.errno == errno.ENOSPC  # the heap is full: still only an errno
    s.close(big)
    s.unlink("/big")
    assert k.state == "running"
    assert s.getpid() > 0 and _read(s, "/small/g") == b"y" * 100_000


def test_mount_unmount_and_busy(rump_kernel):
    """t_mount: mount on a directory, cross into it and back with "..", EBUSY
    while a file is open or a process works in it, then unmount."""
    s = rump_kernel.sys
    s.mkdir("/mnt")
    _write(s, "/mnt/hidden", b"")
    s.mount("tmpfs", "/mnt", 0, 0)
    assert s.listdir("/mnt") == []  # the new root covers the directory
    assert s.stat("/mnt").st_dev != s.stat("/").st_dev
    _write(s, "/mnt/f", b"in the mount")
    assert s.stat("/mnt/..").st_ino == s.stat("/").st_ino
    assert errno_of(s.rename, "/mnt/f", "/g") == errno.EXDEV
    assert errno_of(s.link, "/mnt/f", "/g") == errno.EXDEV
    fd = s.open("/mnt/f", O_RDONLY)
    assert errno_of(s.unmount, "/mnt", 0) == errno.EBUSY
    s.close(fd)
    s.chdir("/mnt")
    assert s.getcwd() == "/mnt"
    assert errno_of(s.unmount, "/mnt", 0) == errno.EBUSY
    s.chdir("/")
    assert errno_of(s.rmdir, "/mnt") == errno.EBUSY
    assert errno_of(s.mount, "tmpfs", "/mnt", 0, 0) == errno.EBUSY
    assert errno_of(s.mount, "ffs", "/", 0, 0) == errno.ENODEV
    assert errno_of(s.unmount, "/", 0) == errno.EINVAL
    s.unmount("/mnt", 0)
    assert s.listdir("/mnt") == ["hidden"]


def test_no_node_is_left_behind(rump_kernel):
    """t_vnode_leak: making and removing files returns every node and every byte."""
    from rumpmp.sys.vnode import VH_NODES

    def nodes():
        from rumpmp.rumpkern.base.arena import current

        a = current()
        return a.w[a.region_word("vnode") + VH_NODES]

    s = rump_kernel.sys

    def churn():
        for i in range(50):
            s.mkdir(f"/d{i}")
            _write(s, f"/d{i}/f", b"x" * 5000)
            s.symlink("f", f"/d{i}/l")
            s.rename(f"/d{i}/f", f"/d{i}/g")
            s.unlink(f"/d{i}/g")
            s.unlink(f"/d{i}/l")
            s.rmdir(f"/d{i}")

    before = rump_kernel.run(nodes)
    churn()  # the first round fills the CPUs' kmem caches and the host's fd table
    heap = rump_kernel.kmem_stats()[1]
    for _ in range(3):
        churn()
    assert rump_kernel.run(nodes) == before
    # A block lost per file would be 150 blocks; the CPUs' caches vary by a few.
    assert rump_kernel.kmem_stats()[1] <= heap + 2048


def test_a_kqueue_sees_a_write_to_a_file(rump_kernel):
    """t_read_write:kqueue."""
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    kq = s.kqueue()
    s.kevent(kq, [(fd, EVFILT_READ, EV_ADD, 0, 0, None)], 0, 0)
    _write(s, "/f", b"abc", O_WRONLY)
    assert s.kevent(kq, None, 1, 1)[0][4] == 3
