"""The descriptor system calls (sys_generic.c, kern_descrip.c, sys_pipe.c,
kern_event.c, sys_select.c): read and write in all their forms, ioctl, close, dup,
fcntl, fstat, pipe, kqueue and kevent, poll and select.

Arguments and results are Python values: ``read`` returns bytes, ``write`` takes a
bytes-like object, ``readv`` and ``preadv`` fill the buffers they are given,
``poll`` takes and returns (fd, events) pairs and ``select`` returns three lists, as
Python's ``os`` and ``select`` modules do.  Errors are OSError with NetBSD's errno.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypercalls import clock
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.file import descrip, event, objlock, pipe
from rumpmp.rumpkern.file.select import selwait
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.sys import file as F
from rumpmp.sys.vnode import Stat

T = TypeVar("T")
_IOV_MAX = 1024


def _nonneg(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if value < 0:
        raise OSError(errno.EINVAL, f"{name} must not be negative")
    return value


def _with_file(fd: int, use: Callable[[Arena, int], T]) -> T:
    """``use(arena, file)`` with the file ``fd`` names held."""
    arena = _arena.current()
    f = descrip.fd_getfile(arena, fd)
    try:
        return use(arena, f)
    finally:
        descrip.fd_putfile(arena, f)


# -- read and write ---------------------------------------------------------------------


def _read(arena: Arena, f: int, size: int, offset: int | None) -> bytes:
    ftype, flag, _, _ = descrip.file_info(arena, f)
    if not flag & F.FREAD:
        raise OSError(errno.EBADF, "not open for reading")
    read = descrip.fileops(ftype).read
    if read is None:
        raise OSError(errno.EINVAL, "not readable")
    return read(arena, f, size, offset)


def _write(arena: Arena, f: int, data: Any, offset: int | None) -> int:
    ftype, flag, _, _ = descrip.file_info(arena, f)
    if not flag & F.FWRITE:
        raise OSError(errno.EBADF, "not open for writing")
    write = descrip.fileops(ftype).write
    if write is None:
        raise OSError(errno.EINVAL, "not writable")
    return write(arena, f, memoryview(data).cast("B"), offset)


def rump_sys_read(fd: int, size: int) -> bytes:
    """read(2): up to ``size`` bytes (b"" at end of file)."""
    size = _nonneg(size, "size")
    return _with_file(fd, lambda arena, f: _read(arena, f, size, None))


def rump_sys_pread(fd: int, size: int, offset: int) -> bytes:
    """pread(2): read at ``offset`` without moving the file's offset."""
    size, offset = _nonneg(size, "size"), _nonneg(offset, "offset")
    return _with_file(fd, lambda arena, f: _read(arena, f, size, offset))


def rump_sys_write(fd: int, data: Any) -> int:
    """write(2): the bytes written."""
    return _with_file(fd, lambda arena, f: _write(arena, f, data, None))


def rump_sys_pwrite(fd: int, data: Any, offset: int) -> int:
    """pwrite(2): write at ``offset`` without moving the file's offset."""
    offset = _nonneg(offset, "offset")
    return _with_file(fd, lambda arena, f: _write(arena, f, data, offset))


def _iov(buffers: Sequence[Any]) -> list[memoryview]:
    if len(buffers) > _IOV_MAX:
        raise OSError(errno.EINVAL, f"more than {_IOV_MAX} buffers")
    return [memoryview(b).cast("B") for b in buffers]


def rump_sys_readv(fd: int, buffers: list[Any]) -> int:
    """readv(2): fill ``buffers`` (writable bytes-like objects) in order with one
    read; the bytes read."""
    views = _iov(buffers)
    data = rump_sys_read(fd, sum(len(v) for v in views))
    at = 0
    for v in views:
        k = min(len(v), len(data) - at)
        v[:k] = data[at : at + k]
        at += k
    return len(data)


def rump_sys_writev(fd: int, buffers: list[Any]) -> int:
    """writev(2): write ``buffers`` in order as one write (atomic up to PIPE_BUF on
    a pipe); the bytes written."""
    return rump_sys_write(fd, b"".join(bytes(v) for v in _iov(buffers)))


# -- descriptors ------------------------------------------------------------------------------


def rump_sys_close(fd: int) -> None:
    """close(2)."""
    descrip.fd_close(_arena.current(), fd)


def rump_sys_dup(fd: int) -> int:
    """dup(2): the lowest free descriptor, naming the same file (offset and flags
    shared); FD_CLOEXEC clear."""
    arena = _arena.current()
    f = descrip.fd_getfile(arena, fd)
    try:
        return descrip.fd_alloc(arena, f)
    except OSError:
        descrip.fd_putfile(arena, f)
        raise


def rump_sys_dup2(fd: int, newfd: int) -> int:
    """dup2(2): make ``newfd`` name ``fd``'s file, closing what it named."""
    return _dup2(fd, newfd, False, same_ok=True)


def rump_sys_dup3(fd: int, newfd: int, flags: int) -> int:
    """dup3(2): dup2 with O_CLOEXEC in ``flags``; EINVAL if ``fd == newfd``."""
    if flags & ~F.O_CLOEXEC:
        raise OSError(errno.EINVAL, f"dup3: bad flags {flags:#x}")
    return _dup2(fd, newfd, bool(flags & F.O_CLOEXEC), same_ok=False)


def _dup2(fd: int, newfd: int, cloexec: bool, same_ok: bool) -> int:
    arena = _arena.current()
    f = descrip.fd_getfile(arena, fd)
    if fd == newfd:
        descrip.fd_putfile(arena, f)
        if not same_ok:
            raise OSError(errno.EINVAL, "dup3: the descriptors are the same")
        return newfd
    try:
        descrip.fd_dup2(arena, f, newfd, cloexec)
    except OSError:
        descrip.fd_putfile(arena, f)
        raise
    return newfd


def rump_sys_fcntl(fd: int, cmd: int, arg: int = 0) -> int:
    """fcntl(2): F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL."""
    arena = _arena.current()
    if cmd in (F.F_DUPFD, F.F_DUPFD_CLOEXEC):
        if _nonneg(arg, "arg") >= descrip.fd_limit(arena):
            raise OSError(errno.EINVAL, f"fcntl: {arg} is past the open-files limit")
        f = descrip.fd_getfile(arena, fd)
        try:
            return descrip.fd_alloc(arena, f, arg, cmd == F.F_DUPFD_CLOEXEC)
        except OSError:
            descrip.fd_putfile(arena, f)
            raise
    if cmd == F.F_GETFD:
        return descrip.fd_flags(arena, fd)
    if cmd == F.F_SETFD:
        descrip.fd_flags(arena, fd, bool(arg & F.FD_CLOEXEC))
        return 0
    if cmd in (F.F_GETFL, F.F_SETFL):
        return _with_file(fd, lambda arena, f: _flags(arena, f, cmd, arg))
    raise OSError(errno.EINVAL, f"fcntl: bad command {cmd}")


def _flags(arena: Arena, f: int, cmd: int, arg: int) -> int:
    r = descrip.frec(arena, f)
    lock = objlock.objlock(arena, objlock.FILE, f)
    mutex_enter(lock)
    try:
        if cmd == F.F_SETFL:
            flag = arena.w[r + F.F_FLAG]
            arena.w[r + F.F_FLAG] = flag & ~F.FCNTLFLAGS | arg & F.FCNTLFLAGS
            return 0
        flag = arena.w[r + F.F_FLAG]
        return (flag & (F.FREAD | F.FWRITE)) - 1 | flag & F.FCNTLFLAGS
    finally:
        mutex_exit(lock)


def rump_sys_fstat(fd: int) -> Stat:
    """fstat(2)."""
    return _with_file(fd, descrip.fstat_file)


def rump_sys_ioctl(fd: int, cmd: int, arg: int = 0) -> int:
    """ioctl(2): FIONREAD (the bytes ready to read) and FIONBIO (``arg`` sets or
    clears O_NONBLOCK); ENOTTY for anything else."""
    if cmd == F.FIONBIO:
        return _with_file(
            fd, lambda arena, f: _flags(arena, f, F.F_SETFL, _fionbio(arena, f, bool(arg)))
        )
    if cmd == F.FIONREAD:
        return _with_file(fd, _nread)
    raise OSError(errno.ENOTTY, f"ioctl: unknown request {cmd:#x}")


def _fionbio(arena: Arena, f: int, on: bool) -> int:
    flag = arena.w[descrip.frec(arena, f) + F.F_FLAG] & F.FCNTLFLAGS
    return flag | F.O_NONBLOCK if on else flag & ~F.O_NONBLOCK


def _nread(arena: Arena, f: int) -> int:
    return descrip.fileops(descrip.file_info(arena, f)[0]).nread(arena, f)


# -- pipes and kqueues ---------------------------------------------------------------------------


def rump_sys_pipe() -> tuple[int, int]:
    """pipe(2): (read end, write end)."""
    return rump_sys_pipe2(0)


def rump_sys_pipe2(flags: int) -> tuple[int, int]:
    """pipe2(2): ``flags`` may have O_NONBLOCK and O_CLOEXEC."""
    if flags & ~(F.O_NONBLOCK | F.O_CLOEXEC):
        raise OSError(errno.EINVAL, f"pipe2: bad flags {flags:#x}")
    arena = _arena.current()
    n = pipe.pipe_create(arena)
    nb, cloexec = flags & F.O_NONBLOCK, bool(flags & F.O_CLOEXEC)
    files: list[int] = []
    fds: list[int] = []
    try:
        for end, mode in ((pipe.READ_END, F.FREAD), (pipe.WRITE_END, F.FWRITE)):
            try:
                files.append(descrip.falloc(arena, F.DTYPE_PIPE, mode | nb, n, end))
            except OSError:
                pipe.pipe_close(arena, n, end)
                raise
            fds.append(descrip.fd_alloc(arena, files[-1], cloexec=cloexec))
    except OSError:
        for fd in fds:
            descrip.fd_close(arena, fd)
        for f in files[len(fds) :]:
            descrip.closef(arena, f)
        if not files:
            pipe.pipe_close(arena, n, pipe.WRITE_END)
        raise
    return fds[0], fds[1]


def rump_sys_kqueue() -> int:
    """kqueue(2): a new kqueue's descriptor."""
    arena = _arena.current()
    kq = event.kqueue_create(arena)
    try:
        f = descrip.falloc(arena, F.DTYPE_KQUEUE, F.FREAD | F.FWRITE, kq)
    except OSError:
        event.kqueue_close(arena, kq)
        raise
    try:
        return descrip.fd_alloc(arena, f)
    except OSError:
        descrip.closef(arena, f)
        raise


def _timeout_ns(timeout: float | None, name: str = "timeout") -> int | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number or None, not {type(timeout).__name__}")
    if timeout < 0:
        raise OSError(errno.EINVAL, f"{name} must not be negative")
    return int(timeout * 1e9)


class _Holds:
    """Files held for one scan, by descriptor; all let go at the end."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.files: dict[int, int] = {}

    def get(self, fd: int) -> int | None:
        if fd not in self.files:
            try:
                self.files[fd] = descrip.fd_getfile(self.arena, fd)
            except OSError:
                return None
        return self.files[fd]

    def resolve(self, fd: int) -> tuple[int, int, int, int] | None:
        f = self.get(fd)
        if f is None:
            return None
        ftype, _, data, end = descrip.file_info(self.arena, f)
        return ftype, data, end, self.arena.w[descrip.frec(self.arena, f) + F.F_OFFSET]

    def release(self) -> None:
        for f in self.files.values():
            descrip.fd_putfile(self.arena, f)
        self.files.clear()


def rump_sys_kevent(
    kq: int, changes: list[tuple] | None, nevents: int, timeout: float | None = None
) -> list[tuple]:
    """kevent(2): apply ``changes`` (tuples ident, filter, flags, fflags, data,
    udata), then wait up to ``timeout`` seconds (None: no limit) for at most
    ``nevents`` events; the events, as the same tuples.  A change that fails comes
    back as an event with EV_ERROR and the errno in data, if there is room."""
    arena = _arena.current()
    nevents = _nonneg(nevents, "nevents")
    limit = _timeout_ns(timeout)
    changes = [_change(c) for c in changes or ()]
    f = descrip.fd_getfile(arena, kq)
    holds = _Holds(arena)
    try:
        ftype, _, q, _ = descrip.file_info(arena, f)
        if ftype != F.DTYPE_KQUEUE:
            raise OSError(errno.EBADF, "not a kqueue")
        out: list[tuple] = []
        for change, err in event.kevent_register(arena, q, changes, holds.resolve):
            if len(out) >= nevents:
                raise OSError(err, f"kevent: change {change!r} failed")
            out.append(event._error(change, err))
        if out or not nevents:
            return out
        return _kevent_wait(arena, q, nevents, holds, limit)
    finally:
        holds.release()
        descrip.fd_putfile(arena, f)


def _kevent_wait(
    arena: Arena, q: int, nevents: int, holds: _Holds, limit: int | None
) -> list[tuple]:
    """Scan until events fire or ``limit`` ns pass, sleeping no longer than to the
    nearest timer (looked at again when a knote added meanwhile changes it)."""
    deadline = None if limit is None else clock.monotonic_ns() + limit
    timer: int | None = None

    def scan() -> list[tuple] | None:
        events, nearest = event.kevent_scan(arena, q, nevents, holds.resolve, record=True)
        if events or nearest != timer:  # ([] for a timer added meanwhile: a new bound)
            return events
        return None

    while True:
        events, timer = event.kevent_scan(arena, q, nevents, holds.resolve, record=False)
        if events:
            return events
        now = clock.monotonic_ns()
        if deadline is not None and deadline <= now:
            return []
        ends = [t for t in (deadline, timer) if t is not None]
        found = selwait(scan, max(0, min(ends) - now) if ends else None)
        if found:
            return found


def _change(c: object) -> tuple:
    if not isinstance(c, tuple | list) or not 2 <= len(c) <= 6:
        raise TypeError("a kevent change is (ident, filter, flags, fflags, data, udata)")
    full = (*c, 0, 0, 0, None)[:6] if len(c) < 6 else tuple(c)
    for value, name in zip(full[:5], ("ident", "filter", "flags", "fflags", "data"), strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"kevent: {name} must be int, not {type(value).__name__}")
    return full


# -- poll and select ------------------------------------------------------------------------------


def _poll_one(arena: Arena, holds: _Holds, fd: int, events: int) -> int:
    f = holds.get(fd)
    if f is None:
        return F.POLLNVAL
    ftype, _, data, data2 = descrip.file_info(arena, f)
    return descrip.fileops(ftype).poll(arena, data, data2, events)


def _poll(fds: Sequence[tuple[int, int]], limit: int | None) -> list[tuple[int, int]]:
    arena = _arena.current()
    pairs = []
    for item in fds:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError("poll: fds must be (fd, events) pairs")
        pairs.append((int(item[0]), int(item[1])))
    holds = _Holds(arena)

    def scan() -> list[tuple[int, int]] | None:
        ready = [
            (fd, rev) for fd, ev in pairs if fd >= 0 and (rev := _poll_one(arena, holds, fd, ev))
        ]
        return ready or None

    try:
        return selwait(scan, limit) or []
    finally:
        holds.release()


def rump_sys_poll(fds: list[tuple[int, int]], timeout: int = -1) -> list[tuple[int, int]]:
    """poll(2): wait up to ``timeout`` milliseconds (negative: no limit) for one of
    the (fd, events) pairs; the (fd, revents) pairs with something to report, as
    ``select.poll().poll()`` returns them (POLLNVAL for a closed descriptor)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise TypeError(f"timeout must be int, not {type(timeout).__name__}")
    return _poll(fds, None if timeout < 0 else timeout * 1_000_000)


def rump_sys_pollts(fds: list[tuple[int, int]], timeout: float | None) -> list[tuple[int, int]]:
    """pollts(2): poll with a timeout in seconds (None: no limit)."""
    return _poll(fds, _timeout_ns(timeout))


def rump_sys_select(
    rlist: list[int], wlist: list[int], xlist: list[int], timeout: float | None = None
) -> tuple[list[int], list[int], list[int]]:
    """select(2), as ``select.select``: the ready descriptors of each list.  EBADF
    for a descriptor that is not open."""
    limit = _timeout_ns(timeout)
    arena = _arena.current()
    for fd in {*rlist, *wlist, *xlist}:
        descrip.fd_putfile(arena, descrip.fd_getfile(arena, fd))  # EBADF now, not POLLNVAL
    want: dict[int, int] = {}
    for fds, bits in ((rlist, F.POLLIN), (wlist, F.POLLOUT), (xlist, F.POLLPRI)):
        for fd in fds:
            want[fd] = want.get(fd, 0) | bits
    ready = dict(_poll(list(want.items()), limit))
    hup = F.POLLHUP | F.POLLERR
    return (
        [fd for fd in rlist if ready.get(fd, 0) & (F.POLLIN | hup)],
        [fd for fd in wlist if ready.get(fd, 0) & (F.POLLOUT | hup)],
        [fd for fd in xlist if ready.get(fd, 0) & F.POLLPRI],
    )
