"""Path lookup (vfs_lookup.c) and the name cache (vfs_cache.c).

``namei`` walks a path a component at a time from the root or the process's
working directory.  It holds one directory's lock at a time, for reading, and
carries (node, generation) between components, so a directory removed under it
ends the walk with ENOENT rather than in another file.  ``..`` at the root of a
mounted file system goes to the directory it covers; a node with a file system
mounted on it is that file system's root.  Symbolic links are followed (the last
component only when asked), at most MAXSYMLINKS of them (ELOOP).

The name cache maps (directory, name) to a node in shared memory, so a lookup
after another CPU changed the directory need not read its entries again.  Like
NetBSD's it keeps names up to NCHNAMLEN bytes; entries are removed with the name.
"""

from __future__ import annotations

import errno
import zlib

from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word
from rumpmp.rumpkern.locking.rwlock import RW_READER, rw_enter, rw_exit
from rumpmp.sys import vnode as V
from rumpmp.sys.proc import P_CWD
from rumpmp.vfs import vnode
from rumpmp.vfs.vnode import rec

Cred = tuple[int, int, list[int]]


# -- the name cache -----------------------------------------------------------------------------


def _nc_entry(arena: Arena, d: int, name: bytes) -> tuple[int, int]:
    """The word of the (only) entry (d, name) may have, and its lock's word."""
    base = arena.region_word("namecache")
    bucket = zlib.crc32(name, d & 0xFFFFFFFF) % V.NCACHE
    return base + V.NC_HDR + bucket * V.NC_WORDS, base + bucket % V.NC_LOCKS


def _nc_name(name: bytes) -> bytes:
    return bytes([len(name)]) + name + bytes(V.NCHNAMLEN - len(name))


def cache_lookup(arena: Arena, d: int, dgen: int, name: str) -> int:
    """The node the cache has for ``name`` in (d, dgen), 0 if none."""
    raw = name.encode()
    if len(raw) > V.NCHNAMLEN:
        return 0
    w = arena.w
    e, lock_word = _nc_entry(arena, d, raw)
    lock = arena.spin_lock(lock_word)
    lock.enter_nowrap()
    hit = w[e + V.NC_DIR] == d and w[e + V.NC_DGEN] == dgen
    hit = hit and arena.buf[(e + V.NC_NAME) * 8 : (e + V.NC_NAME + 4) * 8] == _nc_name(raw)
    node, ngen = (w[e + V.NC_NODE], w[e + V.NC_NGEN]) if hit else (0, 0)
    lock.exit()
    return node if node and vnode.valid(arena, node, ngen) else 0


def cache_enter(arena: Arena, d: int, dgen: int, name: str, node: int) -> None:
    """Remember that ``name`` in (d, dgen) is ``node`` (the caller holds d's lock)."""
    raw = name.encode()
    if len(raw) > V.NCHNAMLEN:
        return
    w = arena.w
    e, lock_word = _nc_entry(arena, d, raw)
    lock = arena.spin_lock(lock_word)
    lock.enter_nowrap()
    w[e + V.NC_DIR], w[e + V.NC_DGEN] = d, dgen
    w[e + V.NC_NODE], w[e + V.NC_NGEN] = node, w[rec(arena, node) + V.V_GEN]
    arena.buf[(e + V.NC_NAME) * 8 : (e + V.NC_NAME + 4) * 8] = _nc_name(raw)
    lock.exit()


def cache_purge(arena: Arena, d: int, name: str) -> None:
    """Forget ``name`` in ``d`` (the caller holds d's lock for writing)."""
    raw = name.encode()
    if len(raw) > V.NCHNAMLEN:
        return
    e, lock_word = _nc_entry(arena, d, raw)
    lock = arena.spin_lock(lock_word)
    lock.enter_nowrap()
    if arena.w[e + V.NC_DIR] == d:
        arena.w[e + V.NC_DIR] = 0
    lock.exit()


# -- lookup ----------------------------------------------------------------------------------------


def root(arena: Arena) -> tuple[int, int]:
    """The root directory: the root of mount 0."""
    node = arena.w[vnode.mount_rec(arena, 0) + V.M_ROOT]
    if not node:
        raise FileNotFoundError(errno.ENOENT, "no file system is mounted")
    return node, arena.w[rec(arena, node) + V.V_GEN]


def cwd(arena: Arena) -> tuple[int, int]:
    """The calling process's working directory."""
    p = curproc_word(arena)
    node = arena.w[p + P_CWD]
    return (node, arena.w[p + P_CWD + 1]) if node else root(arena)


def find_entry(arena: Arena, d: int, dgen: int, name: str) -> int:
    """The node ``name`` names in directory d, 0 if none (the caller holds d's lock)."""
    entries = vnode.cached_entries(arena, d)
    if entries is not None:
        return entries.get(name, 0)
    node = cache_lookup(arena, d, dgen, name)
    if not node:
        node = vnode.dir_entries(arena, d).get(name, 0)
        if node:
            cache_enter(arena, d, dgen, name, node)
    return node


def _dotdot(arena: Arena, d: int) -> int:
    w = arena.w
    m = vnode.mount_rec(arena, w[rec(arena, d) + V.V_MOUNT])
    if w[m + V.M_ROOT] == d and w[m + V.M_COVERED]:
        d = w[m + V.M_COVERED]  # the root of a mounted file system: its ".." is the cover's
    return w[rec(arena, d) + V.V_PARENT]


def lookup(arena: Arena, d: int, dgen: int, name: str, cred: Cred) -> tuple[int, int]:
    """VOP_LOOKUP: (node, gen) of ``name`` in directory (d, dgen), crossing into a
    file system mounted there.  ENOTDIR, EACCES (no search permission), ENOENT."""
    w = arena.w
    lock = vnode.vlock(arena, d)
    rw_enter(lock, RW_READER)
    try:
        r = vnode.check(arena, d, dgen)
        if w[r + V.V_TYPE] != V.VDIR:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        vnode.vaccess(arena, d, V.X_OK, cred)
        if name == ".":
            node = d
        elif name == "..":
            node = _dotdot(arena, d)
        else:
            node = find_entry(arena, d, dgen, name)
            if not node:
                raise FileNotFoundError(errno.ENOENT, "no such file or directory")
        mounted = w[rec(arena, node) + V.V_MOUNTED]
        if mounted and name != "..":
            node = w[vnode.mount_rec(arena, mounted - 1) + V.M_ROOT]
        return node, w[rec(arena, node) + V.V_GEN]
    finally:
        rw_exit(lock)


def _components(path: object) -> tuple[list[str], bool]:
    if not isinstance(path, str):
        raise TypeError(f"path must be str, not {type(path).__name__}")
    if not path:
        raise FileNotFoundError(errno.ENOENT, "empty path")
    size = len(path.encode())
    if size >= V.MAXPATHLEN or "\0" in path:
        raise OSError(errno.ENAMETOOLONG if "\0" not in path else errno.EINVAL, "bad path")
    comps = [c for c in path.split("/") if c]
    if size > V.MAXNAMLEN:  # (a shorter path has no name too long)
        for c in comps:
            if len(c.encode()) > V.MAXNAMLEN:
                raise OSError(errno.ENAMETOOLONG, f"name too long: {c[:20]}...")
    return comps, path.endswith("/")


def _walk(arena: Arena, path: str, follow: bool, parent: bool, cred: Cred) -> tuple[int, int, str]:
    comps, slash = _components(path)
    node, gen = root(arena) if path.startswith("/") else cwd(arena)
    links = 0
    i = 0
    while i < len(comps):
        name, last = comps[i], i == len(comps) - 1
        if last and parent:
            if arena.w[rec(arena, node) + V.V_TYPE] != V.VDIR:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
            return node, gen, name
        child, cgen = lookup(arena, node, gen, name, cred)
        r = rec(arena, child)
        if arena.w[r + V.V_TYPE] == V.VLNK and (not last or follow or slash):
            links += 1
            if links > V.MAXSYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = readlink(arena, child, cgen)
            if not target:
                raise FileNotFoundError(errno.ENOENT, "empty symbolic link")
            if target.startswith("/"):
                node, gen = root(arena)
            comps = [c for c in target.split("/") if c] + comps[i + 1 :]
            i = 0
            continue
        node, gen = child, cgen
        i += 1
    if slash and arena.w[rec(arena, node) + V.V_TYPE] != V.VDIR:
        raise NotADirectoryError(errno.ENOTDIR, "not a directory")
    return node, gen, ""


def namei(arena: Arena, path: str, cred: Cred, follow: bool = True) -> tuple[int, int]:
    """(node, gen) of ``path``; the last component's link followed if ``follow``."""
    node, gen, _ = _walk(arena, path, follow, False, cred)
    return node, gen


def namei_parent(arena: Arena, path: str, cred: Cred) -> tuple[int, int, str]:
    """(directory, gen, last name) for calls that make or remove a name; the name is
    "" for "/" (and the directory is the root)."""
    return _walk(arena, path, False, True, cred)


def readlink(arena: Arena, node: int, gen: int) -> str:
    """A symbolic link's target."""
    lock = vnode.vlock(arena, node)
    rw_enter(lock, RW_READER)
    try:
        r = vnode.check(arena, node, gen)
        if arena.w[r + V.V_TYPE] != V.VLNK:
            raise OSError(errno.EINVAL, "not a symbolic link")
        return vnode.read_data(arena, node, 0, arena.w[r + V.V_SIZE]).decode()
    finally:
        rw_exit(lock)
