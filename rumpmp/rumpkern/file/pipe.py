"""Pipes (sys_pipe.c): a bounded ring buffer in shared memory with two ends.

A pipe's record (layout in ``sys.file``) counts the bytes ever written (tail) and
ever read (head); the bytes between live in a PIPE_SIZE block of the kernel heap.
Both ends use the pipe's object lock.  A reader with nothing to read and a writer
with no room sleep on the pipe's two channels; whoever changes the buffer wakes the
other side, on whatever CPU it sleeps, and notifies the end's selinfo for poll and
kevent.  A write of at most PIPE_BUF bytes goes in whole or waits: records from
several writers never interleave.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word
from rumpmp.rumpkern.cred import signals
from rumpmp.rumpkern.file import descrip, objlock, table
from rumpmp.rumpkern.file.select import selnotify, selrecord
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.rumpkern.locking.sleepq import PCATCH, mtsleep, wakeup
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys.file import (
    DTYPE_PIPE,
    EV_EOF,
    EVFILT_READ,
    EVFILT_WRITE,
    FH_LOCK,
    NPIPE,
    O_NONBLOCK,
    PI_BUF,
    PI_GEN,
    PI_HEAD,
    PI_READERS,
    PI_RSEL,
    PI_RWAIT,
    PI_STATE,
    PI_TAIL,
    PI_WRITERS,
    PI_WSEL,
    PI_WWAIT,
    PIPE_BUF,
    PIPE_SIZE,
    PIPE_WORDS,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLRDNORM,
    POLLWRNORM,
)
from rumpmp.sys.proc import P_PID
from rumpmp.sys.vnode import S_IFIFO, Stat

READ_END, WRITE_END = 0, 1
SIGPIPE = 13


def pipe_rec(arena: Arena, n: int) -> int:
    return arena.region_word("pipe") + n * PIPE_WORDS


def pipe_create(arena: Arena, ends: int = 1) -> int:
    """A new pipe with ``ends`` readers and as many writers (a FIFO's starts with
    none); its number.  ENFILE when the pipe table is full, ENOMEM when the heap has
    no room for its buffer."""
    buf = kmem.kmem_alloc_in(arena, PIPE_SIZE, kmem.KM_NOSLEEP)
    if buf is None:
        raise OSError(errno.ENOMEM, "pipe: no memory for the buffer")
    w = arena.w
    n = table.claim(
        arena, arena.region_word("file") + FH_LOCK, pipe_rec(arena, 0), PIPE_WORDS, NPIPE
    )
    if n < 0:
        kmem.kmem_free_in(arena, buf, PIPE_SIZE)
        raise OSError(errno.ENFILE, "pipe: the pipe table is full")
    p = pipe_rec(arena, n)
    w[p + PI_BUF], w[p + PI_GEN] = buf.offset, buf.gen
    w[p + PI_READERS] = w[p + PI_WRITERS] = ends
    return n


def _wake(arena: Arena, p: int, sel: int, wait: int, chan: int) -> None:
    """The other side may go on: notify its selinfo and wake its sleepers."""
    selnotify(arena, p + sel)
    if arena.w[p + wait]:
        wakeup(chan)


def pipe_write(n: int, data: bytes | memoryview, nonblock: bool) -> int:
    """Write ``data``; the bytes written.  Blocks for room unless ``nonblock``
    (EAGAIN if nothing fits); EPIPE once no reader is left; EINTR for a signal."""
    arena = _arena.current()
    w, p = arena.w, pipe_rec(arena, n)
    view = memoryview(data).cast("B")
    size, done = len(view), 0
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    try:
        while True:
            if not w[p + PI_READERS]:
                if done:
                    return done
                raise BrokenPipeError(errno.EPIPE, "write on a pipe with no reader")
            room = PIPE_SIZE - (w[p + PI_TAIL] - w[p + PI_HEAD])
            fits = room >= size if size <= PIPE_BUF else room > 0
            if fits:
                k = min(room, size - done)
                _copy_in(arena, p, view[done : done + k])
                w[p + PI_TAIL] += k
                done += k
                _wake(arena, p, PI_RSEL, PI_RWAIT, p * 8 + PI_HEAD)
                if done == size:
                    return done
                continue
            if nonblock:
                if done:
                    return done
                raise BlockingIOError(errno.EAGAIN, "pipe full")
            w[p + PI_WWAIT] += 1
            rc = mtsleep(p * 8 + PI_TAIL, PCATCH, "pipewr", 0, lock)
            w[p + PI_WWAIT] -= 1
            if rc == errno.EINTR:
                if done:
                    return done
                raise InterruptedError(errno.EINTR, "pipe write interrupted")
    finally:
        mutex_exit(lock)


def pipe_read(n: int, size: int, nonblock: bool) -> bytes:
    """Up to ``size`` bytes; b"" at end of file (no writer left).  Blocks for data
    unless ``nonblock`` (EAGAIN); EINTR for a signal."""
    arena = _arena.current()
    w, p = arena.w, pipe_rec(arena, n)
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    try:
        while True:
            avail = w[p + PI_TAIL] - w[p + PI_HEAD]
            if avail and size:
                data = _copy_out(arena, p, min(avail, size))
                w[p + PI_HEAD] += len(data)
                _wake(arena, p, PI_WSEL, PI_WWAIT, p * 8 + PI_TAIL)
                return data
            if not w[p + PI_WRITERS] or not size:
                return b""
            if nonblock:
                raise BlockingIOError(errno.EAGAIN, "pipe empty")
            w[p + PI_RWAIT] += 1
            rc = mtsleep(p * 8 + PI_HEAD, PCATCH, "piperd", 0, lock)
            w[p + PI_RWAIT] -= 1
            if rc == errno.EINTR:
                raise InterruptedError(errno.EINTR, "pipe read interrupted")
    finally:
        mutex_exit(lock)


def _copy_in(arena: Arena, p: int, data: memoryview) -> None:
    base, at, k = arena.w[p + PI_BUF], arena.w[p + PI_TAIL] % PIPE_SIZE, len(data)
    first = min(k, PIPE_SIZE - at)
    arena.buf[base + at : base + at + first] = data[:first]
    if k > first:
        arena.buf[base : base + k - first] = data[first:]


def _copy_out(arena: Arena, p: int, k: int) -> bytes:
    base, at = arena.w[p + PI_BUF], arena.w[p + PI_HEAD] % PIPE_SIZE
    first = min(k, PIPE_SIZE - at)
    data = bytes(arena.buf[base + at : base + at + first])
    if k > first:
        data += bytes(arena.buf[base : base + k - first])
    return data


def pipe_close(arena: Arena, n: int, end: int) -> bool:
    """The last file of one end is closed: the other side sees end of file (or
    EPIPE); the pipe goes with its last end (then True)."""
    w, p = arena.w, pipe_rec(arena, n)
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    w[p + (PI_READERS if end == READ_END else PI_WRITERS)] -= 1
    gone = not w[p + PI_READERS] and not w[p + PI_WRITERS]
    _wake(arena, p, PI_RSEL, PI_RWAIT, p * 8 + PI_HEAD)
    _wake(arena, p, PI_WSEL, PI_WWAIT, p * 8 + PI_TAIL)
    buf = kmem.kbuf_at(arena, w[p + PI_BUF], PIPE_SIZE, w[p + PI_GEN]) if gone else None
    mutex_exit(lock)
    if buf is not None:
        kmem.kmem_free_in(arena, buf, PIPE_SIZE)
        w[p + PI_STATE] = 0
    return buf is not None


def pipe_state(arena: Arena, n: int, end: int, record: bool) -> tuple[bool, int, bool, int]:
    """(ready, data, eof, seq) of one end, as kevent's filters see it: the bytes to
    read or the room to write, whether the other side is gone, and the end's
    notification count.  With ``record``, an end not ready records the caller."""
    w, p = arena.w, pipe_rec(arena, n)
    lock = objlock.objlock(arena, objlock.PIPE, n)
    mutex_enter(lock)
    try:
        used = w[p + PI_TAIL] - w[p + PI_HEAD]
        if end == READ_END:
            eof, data, sel = not w[p + PI_WRITERS], used, PI_RSEL
            ready = data > 0 or eof
        else:
            eof, data, sel = not w[p + PI_READERS], PIPE_SIZE - used, PI_WSEL
            ready = data >= PIPE_BUF or eof
        if record and not ready:
            selrecord(arena, p + sel)
        return ready, data, eof, w[p + sel]
    finally:
        mutex_exit(lock)


def pipe_poll(arena: Arena, n: int, end: int, events: int) -> int:
    """poll(2)'s revents for one end (recording the caller if it is not ready)."""
    ready, _, eof, _ = pipe_state(arena, n, end, record=True)
    mask = (POLLIN | POLLRDNORM) if end == READ_END else (POLLOUT | POLLWRNORM)
    return (events & mask if ready else 0) | (POLLHUP if eof else 0)


def pipe_nread(arena: Arena, n: int) -> int:
    """FIONREAD: bytes waiting to be read."""
    w, p = arena.w, pipe_rec(arena, n)
    return w[p + PI_TAIL] - w[p + PI_HEAD]


# -- the file operations of a pipe's ends --------------------------------------------


def _end(arena: Arena, f: int, offset: int | None) -> tuple[int, bool]:
    """(pipe, non-blocking) of held file ``f``; ESPIPE for an offset."""
    if offset is not None:
        raise OSError(errno.ESPIPE, "a pipe has no offset")
    _, flag, n, _ = descrip.file_info(arena, f)
    return n, bool(flag & O_NONBLOCK)


def _fo_read(arena: Arena, f: int, size: int, offset: int | None) -> bytes:
    n, nonblock = _end(arena, f, offset)
    return pipe_read(n, size, nonblock)


def _fo_write(arena: Arena, f: int, data: memoryview, offset: int | None) -> int:
    n, nonblock = _end(arena, f, offset)
    return pipe_write_file(arena, n, data, nonblock)


def pipe_write_file(arena: Arena, n: int, data: memoryview, nonblock: bool) -> int:
    """write(2) on a pipe or FIFO: ``pipe_write``, and SIGPIPE for the writer's
    process when no reader is left."""
    try:
        return pipe_write(n, data, nonblock)
    except BrokenPipeError:
        signals.psignal(arena.w[curproc_word(arena) + P_PID], SIGPIPE)
        raise


def _fo_nread(arena: Arena, f: int) -> int:
    return pipe_nread(arena, descrip.file_info(arena, f)[2])


def _fo_stat(arena: Arena, f: int) -> Stat:
    size = _fo_nread(arena, f)
    return Stat(S_IFIFO | 0o600, 0, 0, 1, 0, 0, size, 0.0, 0.0, 0.0, 0, 0, 0, PIPE_BUF, 0)


def pipe_kqfilter(
    arena: Arena, n: int, end: int, offset: int, filt: int, record: bool
) -> tuple[bool, int, int, int]:
    """EVFILT_READ/EVFILT_WRITE on one end of a pipe (filt_piperead/write)."""
    if filt not in (EVFILT_READ, EVFILT_WRITE) or end != (
        READ_END if filt == EVFILT_READ else WRITE_END
    ):
        return False, 0, 0, 0
    ready, data, eof, seq = pipe_state(arena, n, end, record)
    if eof and end == WRITE_END:  # filt_pipewrite: the reader has gone, nothing fits
        return True, 0, EV_EOF, seq
    return ready, data, EV_EOF if eof else 0, seq


descrip.fileops_establish(
    DTYPE_PIPE,
    descrip.Fileops(
        close=pipe_close,
        read=_fo_read,
        write=_fo_write,
        nread=_fo_nread,
        poll=pipe_poll,
        stat=_fo_stat,
        kqfilter=pipe_kqfilter,
    ),
)
