"""vfs_attach(9) (vfs_init.c): the file-system types mount(2) knows, per kernel.

rumpmp has one file system, memfs; a type is the name a mount asks for.  "memfs"
and "tmpfs" are attached at boot (rump's rumpfs and tmpfs, both in memory); a
module may attach another name when it loads and detach it when it unloads, as a
NetBSD file-system module's modcmd does (t_modcmd).  Detaching a type does not
touch what is mounted with it (NetBSD refuses with EBUSY; rumpmp's mounts are all
memfs and stay usable).
"""

from __future__ import annotations

import errno

from hypercalls import sync
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.sys import vnode as V
from rumpmp.vfs.vnode import vfs_arena

BUILTIN = ("memfs", "tmpfs")


def vfsops_init(arena: Arena) -> None:
    """The table's lock and the built-in types (the host, at boot)."""
    r = arena.region_word("vfsops")
    arena.w[r] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    for name in BUILTIN:
        vfs_attach_in(arena, name)


def _entries(arena: Arena) -> list[int]:
    base = arena.region("vfsops")[0] + V.VFSOPS_HDR
    return [base + i * V.VFSOPS_NAME for i in range(V.NVFSOPS)]


def _name_at(arena: Arena, off: int) -> str:
    return bytes(arena.buf[off : off + V.VFSOPS_NAME]).rstrip(b"\0").decode()


def _encoded(name: object, func: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"{func}: name must be a str, not {type(name).__name__}")
    raw = name.encode()
    if not raw or len(raw) >= V.VFSOPS_NAME or b"\0" in raw:
        raise OSError(errno.EINVAL, f"{func}: bad file system name {name!r}")
    return raw


def vfs_attach_in(arena: Arena, name: str) -> None:
    """vfs_attach on a given kernel."""
    raw = _encoded(name, "vfs_attach")
    lock = arena.spin_lock(arena.region_word("vfsops"))
    lock.enter_nowrap()
    try:
        offs = _entries(arena)
        if any(_name_at(arena, off) == name for off in offs):
            raise OSError(errno.EEXIST, f"vfs_attach: {name} is attached already")
        free = next((off for off in offs if not arena.buf[off]), None)
        if free is None:
            raise OSError(errno.ENOSPC, f"vfs_attach: all {V.NVFSOPS} types are in use")
        arena.buf[free : free + V.VFSOPS_NAME] = raw.ljust(V.VFSOPS_NAME, b"\0")
    finally:
        lock.exit()


def vfs_attach(name: str) -> None:
    """vfs_attach(9): mount(2) accepts ``name`` from now on (EEXIST if it does;
    ENOSYS in a kernel booted without the file system)."""
    vfs_attach_in(vfs_arena(), name)


def vfs_detach(name: str) -> None:
    """vfs_detach(9): mount(2) no longer accepts ``name`` (ENOENT if it did not)."""
    arena = vfs_arena()
    _encoded(name, "vfs_detach")
    lock = arena.spin_lock(arena.region_word("vfsops"))
    lock.enter_nowrap()
    try:
        for off in _entries(arena):
            if _name_at(arena, off) == name:
                arena.buf[off : off + V.VFSOPS_NAME] = bytes(V.VFSOPS_NAME)
                return
        raise OSError(errno.ENOENT, f"vfs_detach: {name} is not attached")
    finally:
        lock.exit()


def vfs_known(arena: Arena, name: str) -> bool:
    """Whether mount(2) accepts ``name`` on this kernel."""
    return any(_name_at(arena, off) == name for off in _entries(arena))
