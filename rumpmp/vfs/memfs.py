"""The memory file system (tmpfs-like): its mounts, its component, and the
operations that change names (create, remove, rename, link).

Every file's data, every directory's entries and every node live in the kernel's
shared memory (``vnode``), so any CPU serves any call.  Instances are mounted on a
directory (``mount``), or at "/" by the component at boot; ``unmount`` fails with
EBUSY while a file of the instance is open, a process works in one of its
directories or another instance is mounted on one.

A directory change holds the directory's lock for writing, and the lock of the node
whose links change; a rename holds every lock it touches, plus the kernel's rename
lock, which keeps two directory moves from making a loop between them.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.file import table
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit, mutex_init_in
from rumpmp.rumpkern.locking.rwlock import RW_READER, RW_WRITER, krwlock_t
from rumpmp.rumpkern.mem.blob import blob_get, blob_put
from rumpmp.rumpkern.svc.module import rump_component
from rumpmp.sys import vnode as V
from rumpmp.sys.file import FH_RENAME, NOTE_RENAME
from rumpmp.sys.module import RUMP_COMPONENT_KERN_VFS
from rumpmp.vfs import namei, vnode
from rumpmp.vfs.namei import Cred
from rumpmp.vfs.vnode import mount_rec, rec


def _mount_root_at_boot() -> None:
    mount_root(_arena.current())


#: The RUMP_COMPONENT_KERN_VFS component that mounts a memory file system at "/" at
#: boot: an entry point of the group rumpmp.components of this project.
COMPONENT = rump_component(RUMP_COMPONENT_KERN_VFS, _mount_root_at_boot, "memfs")


def memfs_init(arena: Arena) -> None:
    """The rename lock (the host, at boot)."""
    blob_put(arena, mutex_init_in(arena, name="vfs_rename"), arena.region_word("file") + FH_RENAME)


def _new_mount(arena: Arena, covered: int, limit: int) -> int:
    w = arena.w
    lock_word = arena.region_word("vnode") + V.VH_LOCK
    m = table.claim(arena, lock_word, mount_rec(arena, 0), V.MOUNT_WORDS, V.NMOUNT, zero=False)
    if m < 0:
        raise OSError(errno.ENOSPC, "mount table full")
    r = mount_rec(arena, m)  # not zeroed: M_LOCK keeps its slot
    w[r + V.M_COVERED], w[r + V.M_LIMIT] = covered, limit
    w[r + V.M_USED] = w[r + V.M_NODES] = w[r + V.M_FLAGS] = 0
    root = vnode.node_alloc(arena, m, V.VDIR, 0o755, 0, 0)
    w[rec(arena, root) + V.V_PARENT] = root
    w[rec(arena, root) + V.V_NLINK] = 2
    w[r + V.M_ROOT] = root
    return m


def mount_root(arena: Arena, limit: int = 0) -> None:
    """Mount an instance at "/" (mount 0); EBUSY if one is there."""
    if arena.w[mount_rec(arena, 0) + V.M_STATE]:
        raise OSError(errno.EBUSY, "a file system is already mounted at /")
    if _new_mount(arena, 0, limit) != 0:
        raise OSError(errno.EBUSY, "/ must be the first mount")


def mount(arena: Arena, path: str, limit: int, cred: Cred) -> int:
    """mount(2) of a new instance on directory ``path``; its mount number.  EPERM
    unless root, ENOTDIR, EBUSY if something is mounted there or it is a root."""
    if cred[0] != 0:
        raise PermissionError(errno.EPERM, "mount: only root may mount")
    node, gen = namei.namei(arena, path, cred)
    held = vnode.vlock_nodes(arena, [node], RW_WRITER)
    try:
        r = vnode.check(arena, node, gen)
        if arena.w[r + V.V_TYPE] != V.VDIR:
            raise NotADirectoryError(errno.ENOTDIR, "mount point is not a directory")
        m_of = mount_rec(arena, arena.w[r + V.V_MOUNT])
        if arena.w[r + V.V_MOUNTED] or arena.w[m_of + V.M_ROOT] == node:
            raise OSError(errno.EBUSY, "mount point busy")
        m = _new_mount(arena, node, limit)
        arena.w[r + V.V_MOUNTED] = m + 1
        return m
    finally:
        vnode.vunlock(held)


def unmount(arena: Arena, path: str, flags: int, cred: Cred) -> None:
    """unmount(2) of the instance whose root ``path`` names.  EPERM unless root,
    EINVAL if it is not a mount's root (or is "/"), EBUSY while in use."""
    if cred[0] != 0:
        raise PermissionError(errno.EPERM, "unmount: only root may unmount")
    node, _ = namei.namei(arena, path, cred)
    w = arena.w
    m = w[rec(arena, node) + V.V_MOUNT]
    mr = mount_rec(arena, m)
    if w[mr + V.M_ROOT] != node or not w[mr + V.M_COVERED]:
        raise OSError(errno.EINVAL, f"{path} is not a mount point")
    covered = w[mr + V.M_COVERED]
    held = vnode.vlock_nodes(arena, [covered], RW_WRITER)
    try:
        nodes = [
            n
            for n in range(1, w[arena.region_word("vnode") + V.VH_HIGH] + 1)
            if w[rec(arena, n) + V.V_TYPE] and w[rec(arena, n) + V.V_MOUNT] == m
        ]
        if any(w[rec(arena, n) + V.V_USE] or w[rec(arena, n) + V.V_MOUNTED] for n in nodes):
            raise OSError(errno.EBUSY, f"{path}: file system busy")
        w[rec(arena, covered) + V.V_MOUNTED] = 0
        for n in nodes:  # nothing can reach them now: drop every link
            w[rec(arena, n) + V.V_NLINK] = 1
            vnode.link_count(arena, n, -1)
        w[mr + V.M_STATE] = 0
    finally:
        vnode.vunlock(held)


def rename_lock(arena: Arena) -> kmutex_t:
    return blob_get(arena, arena.region_word("file") + FH_RENAME, cache=True)


# -- names ----------------------------------------------------------------------------------


def _writable_dir(arena: Arena, d: int, dgen: int, cred: Cred) -> int:
    """The record of directory (d, dgen), checked for a change of its entries
    (the caller holds its lock): ENOENT if it has gone or been removed."""
    r = vnode.check(arena, d, dgen)
    if arena.w[r + V.V_TYPE] != V.VDIR:
        raise NotADirectoryError(errno.ENOTDIR, "not a directory")
    if not arena.w[r + V.V_NLINK]:
        raise FileNotFoundError(errno.ENOENT, "directory has been removed")
    vnode.vaccess(arena, d, V.W_OK | V.X_OK, cred)
    return r


def _special(name: str) -> None:
    if name in ("", ".", ".."):
        raise FileExistsError(errno.EEXIST, f"{name or '/'!r} exists")


def create(
    arena: Arena, d: int, dgen: int, name: str, vtype: int, mode: int, cred: Cred, target: str = ""
) -> tuple[int, int]:
    """VOP_CREATE/MKDIR/SYMLINK: a new node named ``name`` in (d, dgen); (node, gen).
    EEXIST if the name is taken, ENOSPC when memory is short."""
    _special(name)
    w = arena.w
    held = vnode.vlock_nodes(arena, [d], RW_WRITER)
    try:
        r = _writable_dir(arena, d, dgen, cred)
        entries = vnode.dir_entries(arena, d)
        if name in entries:
            raise FileExistsError(errno.EEXIST, f"{name!r} exists")
        node = vnode.node_alloc(arena, w[r + V.V_MOUNT], vtype, mode, cred[0], w[r + V.V_GID])
        nr = rec(arena, node)
        try:
            if target:
                vnode.write_data(arena, node, 0, target.encode())
            vnode.dir_store(arena, d, {**entries, name: node})
        except OSError:
            vnode.link_count(arena, node, 0)  # never linked: this frees it
            raise
        if vtype == V.VDIR:
            w[nr + V.V_PARENT] = d
            vnode.link_count(arena, node, 2)
            vnode.link_count(arena, d, 1)
        else:
            vnode.link_count(arena, node, 1)
        namei.cache_enter(arena, d, dgen, name, node)
        return node, w[nr + V.V_GEN]
    finally:
        vnode.vunlock(held)


def _lock_entry(
    arena: Arena, dirs: list[tuple[int, int, str]]
) -> tuple[list[krwlock_t], list[int]]:
    """Lock directories and the nodes their names name, all at once; (held, nodes),
    a node 0 for a name that is not there.  Retries if a name changed meanwhile."""
    while True:
        nodes = []
        for d, dgen, name in dirs:
            held = vnode.vlock_nodes(arena, [d], RW_READER)
            try:
                vnode.check(arena, d, dgen)
                nodes.append(vnode.dir_entries(arena, d).get(name, 0))
            finally:
                vnode.vunlock(held)
        held = vnode.vlock_nodes(
            arena, [d for d, _, _ in dirs] + [n for n in nodes if n], RW_WRITER
        )
        for d, dgen, _ in dirs:
            vnode.check(arena, d, dgen)
        now = [vnode.dir_entries(arena, d).get(name, 0) for d, _, name in dirs]
        if now == nodes:
            return held, nodes
        vnode.vunlock(held)


def _empty(arena: Arena, node: int) -> bool:
    return not vnode.dir_entries(arena, node)


#: What removing these names gives, as NetBSD answers rmdir("/"), "x/." and "x/..".
_REMOVE_SPECIAL = {"": errno.EBUSY, ".": errno.EINVAL, "..": errno.ENOTEMPTY}


def remove(arena: Arena, d: int, dgen: int, name: str, isdir: bool, cred: Cred) -> None:
    """VOP_REMOVE/RMDIR: remove ``name`` from (d, dgen).  ENOENT, EPERM (unlink of a
    directory), ENOTDIR, ENOTEMPTY, EBUSY (a mount point or a root), EINVAL (".")."""
    if name in _REMOVE_SPECIAL:
        raise OSError(_REMOVE_SPECIAL[name], f"cannot remove {name or '/'!r}")
    w = arena.w
    held, (node,) = _lock_entry(arena, [(d, dgen, name)])
    try:
        _writable_dir(arena, d, dgen, cred)
        if not node:
            raise FileNotFoundError(errno.ENOENT, f"{name!r}: no such file or directory")
        nr = rec(arena, node)
        is_dir = w[nr + V.V_TYPE] == V.VDIR
        if isdir and not is_dir:
            raise NotADirectoryError(errno.ENOTDIR, f"{name!r} is not a directory")
        if not isdir and is_dir:
            raise PermissionError(errno.EPERM, f"{name!r} is a directory")
        if is_dir and w[nr + V.V_MOUNTED]:
            raise OSError(errno.EBUSY, f"{name!r} is a mount point")
        if is_dir and not _empty(arena, node):
            raise OSError(errno.ENOTEMPTY, f"{name!r} is not empty")
        entries = dict(vnode.dir_entries(arena, d))
        del entries[name]
        vnode.dir_store(arena, d, entries)
        namei.cache_purge(arena, d, name)
        if is_dir:
            vnode.link_count(arena, d, -1)
            vnode.link_count(arena, node, -w[nr + V.V_NLINK])
        else:
            vnode.link_count(arena, node, -1)
    finally:
        vnode.vunlock(held)


def link(arena: Arena, node: int, gen: int, d: int, dgen: int, name: str, cred: Cred) -> None:
    """VOP_LINK: a new name for a file.  EPERM for a directory, EXDEV across file
    systems, EEXIST if the name is taken."""
    _special(name)
    w = arena.w
    held, (there,) = _lock_entry(arena, [(d, dgen, name)])
    try:
        r = _writable_dir(arena, d, dgen, cred)
        nr = vnode.check(arena, node, gen)
        if w[nr + V.V_TYPE] == V.VDIR:
            raise PermissionError(errno.EPERM, "link: a directory")
        if w[nr + V.V_MOUNT] != w[r + V.V_MOUNT]:
            raise OSError(errno.EXDEV, "link across file systems")
        if there:
            raise FileExistsError(errno.EEXIST, f"{name!r} exists")
        vnode.dir_store(arena, d, {**vnode.dir_entries(arena, d), name: node})
        vnode.link_count(arena, node, 1)
    finally:
        vnode.vunlock(held)


def rename(arena: Arena, src: tuple[int, int, str], dst: tuple[int, int, str], cred: Cred) -> None:
    """VOP_RENAME: move ``src`` (dir, gen, name) to ``dst``, atomically replacing a
    file there.  EXDEV across file systems, EINVAL (a directory into itself),
    EISDIR/ENOTDIR (a file over a directory or the reverse), ENOTEMPTY."""
    for _, _, name in (src, dst):
        if name in ("", ".", ".."):
            raise OSError(errno.EINVAL, f"rename: {name!r}")
    lock = rename_lock(arena)
    mutex_enter(lock)
    try:
        held, (node, there) = _lock_entry(arena, [src, dst])
        try:
            _rename_locked(arena, src, dst, node, there, cred)
        finally:
            vnode.vunlock(held)
    finally:
        mutex_exit(lock)


def _rename_locked(
    arena: Arena,
    src: tuple[int, int, str],
    dst: tuple[int, int, str],
    node: int,
    there: int,
    cred: Cred,
) -> None:
    w = arena.w
    (fd, fgen, fname), (td, tgen, tname) = src, dst
    fr, tr = _writable_dir(arena, fd, fgen, cred), _writable_dir(arena, td, tgen, cred)
    if not node:
        raise FileNotFoundError(errno.ENOENT, f"{fname!r}: no such file or directory")
    if w[fr + V.V_MOUNT] != w[tr + V.V_MOUNT]:
        raise OSError(errno.EXDEV, "rename across file systems")
    if node == there:
        return  # two names of one file: nothing to do
    is_dir = w[rec(arena, node) + V.V_TYPE] == V.VDIR
    if is_dir and w[rec(arena, node) + V.V_MOUNTED]:
        raise OSError(errno.EBUSY, "rename of a mount point")
    if there:
        there_dir = w[rec(arena, there) + V.V_TYPE] == V.VDIR
        if is_dir and not there_dir:
            raise NotADirectoryError(errno.ENOTDIR, f"{tname!r} is not a directory")
        if there_dir and not is_dir:
            raise IsADirectoryError(errno.EISDIR, f"{tname!r} is a directory")
        if there_dir and (not _empty(arena, there) or w[rec(arena, there) + V.V_MOUNTED]):
            raise OSError(errno.ENOTEMPTY, f"{tname!r} is not empty")
    if is_dir and fd != td:
        up = td
        while True:  # the rename lock keeps every directory's parent still
            if up == node:
                raise OSError(errno.EINVAL, "rename of a directory into itself")
            parent = w[rec(arena, up) + V.V_PARENT]
            if parent == up:
                break
            up = parent
    moved = {**vnode.dir_entries(arena, td), tname: node}
    if fd == td:
        del moved[fname]
        vnode.dir_store(arena, td, moved)
    else:
        vnode.dir_store(arena, td, moved)
        left = dict(vnode.dir_entries(arena, fd))
        del left[fname]
        vnode.dir_store(arena, fd, left)
    namei.cache_purge(arena, fd, fname)
    namei.cache_purge(arena, td, tname)
    if there:
        drop = w[rec(arena, there) + V.V_NLINK] if there_dir else 1
        if there_dir:
            vnode.link_count(arena, td, -1)
        vnode.link_count(arena, there, -drop)
    if is_dir and fd != td:
        w[rec(arena, node) + V.V_PARENT] = td
        vnode.link_count(arena, fd, -1)
        vnode.link_count(arena, td, 1)
    w[rec(arena, node) + V.V_CTIME] = vnode.now_ns()
    vnode.vn_knote(arena, node, NOTE_RENAME)
