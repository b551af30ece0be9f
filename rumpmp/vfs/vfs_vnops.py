"""The file operations of a vnode (vfs_vnops.c), and what the file system adds to a
process (its working directory).

The core's generic calls (read, write, poll, fstat, kevent, close) reach a file that
opens a vnode through ``VNOPS``; a FIFO's file (its second word set) goes on to
``fifofs``; a process's working directory is taken and let go
by ``cwd_hold`` and ``cwd_release``.  ``rump_vfs`` hands both to the core when the
file system is linked; they run only where a vnode exists, so a kernel booted
without the file system never calls them.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.file import descrip, objlock, pipe
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.rumpkern.locking.rwlock import RW_READER, RW_WRITER
from rumpmp.sys import file as F
from rumpmp.sys import vnode as V
from rumpmp.sys.proc import P_CWD
from rumpmp.sys.vnode import Stat
from rumpmp.vfs import fifofs, vnode

T = TypeVar("T")


def _at_offset(arena: Arena, f: int, node: int, op: int, io: Callable[[int], tuple[T, int]]) -> T:
    """``io(offset)`` at file ``f``'s offset, under the node's lock; the offset then
    moves to where ``io`` says.  One call at a time moves a file's offset."""
    r = descrip.frec(arena, f)
    lock = objlock.objlock(arena, objlock.FILE, f)
    mutex_enter(lock)
    try:

        def body() -> T:
            result, moved = io(arena.w[r + F.F_OFFSET])
            arena.w[r + F.F_OFFSET] = moved
            return result

        return vnode.vlocked(arena, node, op, body)
    finally:
        mutex_exit(lock)


def vn_read(arena: Arena, f: int, size: int, offset: int | None) -> bytes:
    _, flag, node, fifo = descrip.file_info(arena, f)
    if fifo:
        return fifofs.fifo_read(fifo, size, offset, bool(flag & F.O_NONBLOCK))
    if arena.w[vnode.rec(arena, node) + V.V_TYPE] == V.VDIR:
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    if offset is not None:
        return vnode.vlocked(
            arena, node, RW_READER, lambda: vnode.read_data(arena, node, offset, size)
        )

    def read_at(off: int) -> tuple[bytes, int]:
        out = vnode.read_data(arena, node, off, size)
        return out, off + len(out)

    return _at_offset(arena, f, node, RW_READER, read_at)


def vn_write(arena: Arena, f: int, data: memoryview, offset: int | None) -> int:
    _, flag, node, fifo = descrip.file_info(arena, f)
    if fifo:
        return fifofs.fifo_write(arena, fifo, data, offset, bool(flag & F.O_NONBLOCK))
    if offset is not None:
        return vnode.vlocked(
            arena, node, RW_WRITER, lambda: vnode.write_data(arena, node, offset, data)
        )

    def write_at(off: int) -> tuple[int, int]:
        at = arena.w[vnode.rec(arena, node) + V.V_SIZE] if flag & F.O_APPEND else off
        n = vnode.write_data(arena, node, at, data)
        return n, at + n

    return _at_offset(arena, f, node, RW_WRITER, write_at)


def _nread(arena: Arena, f: int) -> int:
    _, _, node, fifo = descrip.file_info(arena, f)
    if fifo:
        return pipe.pipe_nread(arena, fifofs.fifo_pipe(fifo)[0])
    size = arena.w[vnode.rec(arena, node) + V.V_SIZE]
    return max(0, size - arena.w[descrip.frec(arena, f) + F.F_OFFSET])


def _poll(arena: Arena, node: int, fifo: int, events: int) -> int:
    """Files are always ready, as genfs_poll says; a FIFO as its pipe is."""
    if fifo:
        return fifofs.fifo_poll(arena, fifo, events)
    return events & (F.POLLIN | F.POLLOUT | F.POLLRDNORM | F.POLLWRNORM)


def vn_statfile(arena: Arena, f: int) -> Stat:
    node = descrip.file_info(arena, f)[2]
    return vnode.vlocked(arena, node, RW_READER, lambda: vnode.getattr_(arena, node))


def _kqfilter(
    arena: Arena, node: int, fifo: int, offset: int, filt: int, record: bool
) -> descrip.KqState:
    if fifo:
        return fifofs.fifo_kqfilter(arena, fifo, offset, filt, record)
    if filt == F.EVFILT_VNODE:  # the event counts: kevent reports those that moved
        return True, 0, 0, vnode.vnode_notes(arena, node, record)
    if filt == F.EVFILT_WRITE:
        return True, 0, 0, 0
    data, seq = vnode.file_state(arena, node, offset, record)
    return data > 0, data, 0, seq


def _close(arena: Arena, node: int, fifo: int) -> None:
    if fifo:
        fifofs.fifo_close(arena, node, fifo)
    vnode.vrele(arena, node)


def cwd_hold(arena: Arena, p: int) -> None:
    """A new process uses its parent's working directory (the parent holds it, so
    this cannot fail)."""
    if arena.w[p + P_CWD]:
        vnode.vget(arena, arena.w[p + P_CWD], arena.w[p + P_CWD + 1])


def cwd_release(arena: Arena, cwd: int) -> None:
    if cwd:
        vnode.vrele(arena, cwd)


#: What the core's generic calls do with a file that opens a vnode.
VNOPS = descrip.Fileops(
    close=_close,
    read=vn_read,
    write=vn_write,
    nread=_nread,
    poll=_poll,
    stat=vn_statfile,
    kqfilter=_kqfilter,
)
