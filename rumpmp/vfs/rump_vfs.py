"""The file system as a component of the kernel (rump's rumpvfs, rump_vfs.c).

Importing ``rumpmp.vfs`` links it: the core's weak hooks (``init.rump_vfs_init``
and its regions, ``lwproc.rump_proc_vfs_init``/``release``) and the vnode file
operations are set, as linking librumpvfs resolves the seed's weak symbols.  A
kernel booted with the file system (the default) lays out the vnode, mount and
name-cache regions, initialises them and memfs, and establishes the file system's
system calls in its table; one booted with ``vfs=False`` has none of it.
"""

from __future__ import annotations

from rumpmp.rumpkern import init
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.file import descrip
from rumpmp.rumpkern.sched import lwproc
from rumpmp.rumpkern.syscall.sysent import (
    FD,
    INT,
    LIST,
    PATH,
    STR,
    Sysent,
    rump_syscall_boot_establish,
    syscall_establish,
)
from rumpmp.sys import syscall as N
from rumpmp.sys import vnode as vnode_layout
from rumpmp.sys.file import DTYPE_VNODE
from rumpmp.vfs import memfs, vfs_init, vfs_vnops, vnode
from rumpmp.vfs import vfs_syscalls as S

#: The file system's system calls.
VFS_CALLS = (
    Sysent(N.SYS_open, "open", S.rump_sys_open, (*PATH, ("flags", INT), ("mode", INT))),
    Sysent(N.SYS_mkdir, "mkdir", S.rump_sys_mkdir, (*PATH, ("mode", INT))),
    Sysent(N.SYS_mkfifo, "mkfifo", S.rump_sys_mkfifo, (*PATH, ("mode", INT))),
    Sysent(N.SYS_mknod, "mknod", S.rump_sys_mknod, (*PATH, ("mode", INT), ("dev", INT))),
    Sysent(N.SYS_rmdir, "rmdir", S.rump_sys_rmdir, PATH),
    Sysent(N.SYS_unlink, "unlink", S.rump_sys_unlink, PATH),
    Sysent(N.SYS_rename, "rename", S.rump_sys_rename, (("src", STR), ("dst", STR))),
    Sysent(N.SYS_link, "link", S.rump_sys_link, (("src", STR), ("dst", STR))),
    Sysent(N.SYS_symlink, "symlink", S.rump_sys_symlink, (("target", STR), *PATH)),
    Sysent(N.SYS_readlink, "readlink", S.rump_sys_readlink, PATH),
    Sysent(N.SYS_stat, "stat", S.rump_sys_stat, PATH),
    Sysent(N.SYS_lstat, "lstat", S.rump_sys_lstat, PATH),
    Sysent(N.SYS_chmod, "chmod", S.rump_sys_chmod, (*PATH, ("mode", INT))),
    Sysent(N.SYS_fchmod, "fchmod", S.rump_sys_fchmod, (*FD, ("mode", INT))),
    Sysent(N.SYS_chown, "chown", S.rump_sys_chown, (*PATH, ("uid", INT), ("gid", INT))),
    Sysent(N.SYS_lchown, "lchown", S.rump_sys_lchown, (*PATH, ("uid", INT), ("gid", INT))),
    Sysent(N.SYS_fchown, "fchown", S.rump_sys_fchown, (*FD, ("uid", INT), ("gid", INT))),
    Sysent(N.SYS_utimes, "utimes", S.rump_sys_utimes, (*PATH, ("times", (*LIST, type(None))))),
    Sysent(N.SYS_truncate, "truncate", S.rump_sys_truncate, (*PATH, ("length", INT))),
    Sysent(N.SYS_ftruncate, "ftruncate", S.rump_sys_ftruncate, (*FD, ("length", INT))),
    Sysent(N.SYS_fsync, "fsync", S.rump_sys_fsync, FD),
    Sysent(N.SYS_lseek, "lseek", S.rump_sys_lseek, (*FD, ("offset", INT), ("whence", INT))),
    Sysent(N.SYS_getdents, "getdents", S.rump_sys_getdents, (*FD, ("count", INT))),
    Sysent(N.SYS_listdir, "listdir", S.rump_sys_listdir, PATH),
    Sysent(N.SYS_chdir, "chdir", S.rump_sys_chdir, PATH),
    Sysent(N.SYS_fchdir, "fchdir", S.rump_sys_fchdir, FD),
    Sysent(N.SYS_getcwd, "getcwd", S.rump_sys_getcwd),
    Sysent(N.SYS_access, "access", S.rump_sys_access, (*PATH, ("mode", INT))),
    Sysent(N.SYS_statvfs, "statvfs", S.rump_sys_statvfs, PATH),
    Sysent(
        N.SYS_mount,
        "mount",
        S.rump_sys_mount,
        (("fstype", STR), *PATH, ("flags", INT), ("size", INT)),
    ),
    Sysent(N.SYS_unmount, "unmount", S.rump_sys_unmount, (*PATH, ("flags", INT))),
)


def rump_vfs_init(arena: Arena) -> None:
    """The file system's part of a boot (the host, before the CPUs start)."""
    vnode.vfs_init(arena)
    vfs_init.vfsops_init(arena)
    memfs.memfs_init(arena)
    rump_syscall_boot_establish(arena, VFS_CALLS)


syscall_establish(VFS_CALLS)
init.rump_vfs_regions = vnode_layout.REGIONS
init.rump_vfs_init = rump_vfs_init
lwproc.rump_proc_vfs_init = vfs_vnops.cwd_hold
lwproc.rump_proc_vfs_release = vfs_vnops.cwd_release
descrip.fileops_establish(DTYPE_VNODE, vfs_vnops.VNOPS)
