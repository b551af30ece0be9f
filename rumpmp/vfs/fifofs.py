"""FIFOs (miscfs/fifofs): named pipes in the memory file system.

A FIFO node (VFIFO, made by mkfifo or mknod) has no data of its own: while it is
open, a pipe carries its bytes.  The first open makes the pipe (with no reader
nor writer yet) and records it in the node (``V_FIFO``); every open counts the
ends it takes in the pipe, every close gives them back, and the pipe goes with the
last one (unread bytes with it).  The node's lock serialises that, so an open
never finds a pipe that is going.

An open for reading waits until the FIFO has been opened for writing, and the
other way round, unless it takes both ends or is O_NONBLOCK (for writing, with no
reader: ENXIO).  It waits for the other side's count of opens ever to move, not
for the other side to be open now: a writer that opens and closes at once still
lets the waiting reader through, and so does a signal that comes after it (PR
kern/59578).

A FIFO's file is a vnode file whose second word says which pipe and which ends it
holds (``fifo_data2``); ``vfs_vnops`` hands such files to the functions here.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.file import objlock, pipe
from rumpmp.rumpkern.file.pipe import READ_END, WRITE_END
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.rumpkern.locking.rwlock import RW_WRITER
from rumpmp.rumpkern.locking.sleepq import PCATCH, mtsleep, wakeup
from rumpmp.sys import file as F
from rumpmp.sys import vnode as V
from rumpmp.vfs import vnode

#: For each end: (its count of open files, its count of opens ever).
_COUNTS = {READ_END: (F.PI_READERS, F.PI_ROPENS), WRITE_END: (F.PI_WRITERS, F.PI_WOPENS)}


def fifo_data2(n: int, fflag: int) -> int:
    """A FIFO file's second word: pipe ``n`` and the ends (FREAD/FWRITE) it holds."""
    return (n + 1) << 2 | fflag & (F.FREAD | F.FWRITE)


def fifo_pipe(data2: int) -> tuple[int, list[int]]:
    """(pipe, its ends held) of a FIFO file's second word."""
    ends = [end for end, bit in ((READ_END, F.FREAD), (WRITE_END, F.FWRITE)) if data2 & bit]
    return (data2 >> 2) - 1, ends


def fifo_open(arena: Arena, node: int, fflag: int, nonblock: bool) -> int:
    """Open FIFO ``node`` (held by the caller) for the ends ``fflag`` names; the
    file's second word.  Waits for the other side as the module says; EINTR for a
    signal, ENXIO for a non-blocking writer with no reader."""
    data2 = vnode.vlocked(arena, node, RW_WRITER, lambda: _attach(arena, node, fflag))
    n, ends = fifo_pipe(data2)
    if len(ends) == 2:
        return data2
    (end,) = ends
    other = READ_END if end == WRITE_END else WRITE_END
    err = _wait_for(arena, n, other, nonblock)
    if err == errno.EAGAIN and end == READ_END:  # a reader does not wait
        return data2
    if err:
        fifo_close(arena, node, data2)
        if err == errno.EAGAIN:
            raise OSError(errno.ENXIO, "open: no reader on the FIFO")
        raise InterruptedError(err, "open: interrupted while waiting for the FIFO's other side")
    return data2


def _attach(arena: Arena, node: int, fflag: int) -> int:
    """Under the node's lock: the FIFO's pipe (made by the first open), the
    ends of this open counted, the other side's waiting opens woken."""
    w, r = arena.w, vnode.rec(arena, node)
    if not w[r + V.V_FIFO]:
        w[r + V.V_FIFO] = pipe.pipe_create(arena, ends=0) + 1
    n = w[r + V.V_FIFO] - 1
    data2 = fifo_data2(n, fflag)
    p = pipe.pipe_rec(arena, n)
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    for end in fifo_pipe(data2)[1]:
        count, opens = _COUNTS[end]
        w[p + count] += 1
        w[p + opens] += 1
        wakeup(p * 8 + opens)
    mutex_exit(lock)
    return data2


def _wait_for(arena: Arena, n: int, other: int, nonblock: bool) -> int:
    """Wait until the ``other`` end of pipe ``n`` is open or has been opened since
    this call began; 0, or EAGAIN (``nonblock`` and not yet) or EINTR."""
    w, p = arena.w, pipe.pipe_rec(arena, n)
    count, opens = _COUNTS[other]
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    try:
        seen = w[p + opens]
        while not w[p + count] and w[p + opens] == seen:
            if nonblock:
                return errno.EAGAIN
            rc = mtsleep(p * 8 + opens, PCATCH, "fifoow", 0, lock)
            if rc == errno.EINTR and w[p + opens] == seen:
                return errno.EINTR
        return 0
    finally:
        mutex_exit(lock)


def fifo_close(arena: Arena, node: int, data2: int) -> None:
    """A FIFO file's last reference went: its ends are given back; with the last
    end of all, the pipe goes and the node forgets it."""
    n, ends = fifo_pipe(data2)

    def detach() -> None:
        gone = [pipe.pipe_close(arena, n, end) for end in ends]
        if any(gone):
            arena.w[vnode.rec(arena, node) + V.V_FIFO] = 0

    vnode.vlocked(arena, node, RW_WRITER, detach)


def fifo_read(data2: int, size: int, offset: int | None, nonblock: bool) -> bytes:
    n, ends = fifo_pipe(data2)
    if offset is not None:
        raise OSError(errno.ESPIPE, "a FIFO has no offset")
    if READ_END not in ends:
        raise OSError(errno.EBADF, "FIFO not open for reading")
    return pipe.pipe_read(n, size, nonblock)


def fifo_write(
    arena: Arena, data2: int, data: memoryview, offset: int | None, nonblock: bool
) -> int:
    n, ends = fifo_pipe(data2)
    if offset is not None:
        raise OSError(errno.ESPIPE, "a FIFO has no offset")
    if WRITE_END not in ends:
        raise OSError(errno.EBADF, "FIFO not open for writing")
    return pipe.pipe_write_file(arena, n, data, nonblock)


def fifo_poll(arena: Arena, data2: int, events: int) -> int:
    n, ends = fifo_pipe(data2)
    revents = 0
    for end in ends:
        revents |= pipe.pipe_poll(arena, n, end, events)
    return revents


def fifo_kqfilter(
    arena: Arena, data2: int, offset: int, filt: int, record: bool
) -> tuple[bool, int, int, int]:
    n, ends = fifo_pipe(data2)
    end = READ_END if filt == F.EVFILT_READ else WRITE_END
    if filt not in (F.EVFILT_READ, F.EVFILT_WRITE) or end not in ends:
        return False, 0, 0, 0
    return pipe.pipe_kqfilter(arena, n, end, offset, filt, record)
