"""copy(9) and uiomove(9): moving data between the kernel and a caller's memory.

A system call's user space is the caller's buffers, mapped for the call into a
window of addresses (``user_space``): each buffer gets a base address, and
``copyin``/``copyout``/``copyinstr``/``copyoutstr`` reach the caller's bytes through
it.  An address or length outside the mapped buffers is EFAULT; a string without its
NUL within the limit is ENAMETOOLONG.  The remote-client server implements the same
four by asking the client, as rump's sysproxy does.

A ``uio_t`` (``rump_uio_setup``) describes one buffer and a file offset for I/O;
``uiomove`` moves data between kernel memory and it in the direction the uio says.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypercalls import thread

#: The first address of a window; 0 is never mapped, so a NULL pointer faults.
USER_BASE = 0x10000
#: Room between two buffers of a window, so that running off one faults.
USER_GAP = 0x1000

UIO_READ, UIO_WRITE = 0, 1

_window = thread.local()  # .segments: [(base, buffer)] of the calling lwp's syscall


@contextlib.contextmanager
def user_space(*buffers: bytes | bytearray) -> Iterator[list[int]]:
    """Map ``buffers`` as the calling thread's user space for one call; the base
    address of each.  bytes are read-only (copyout to them faults), bytearrays
    writable; the caller sees what copyout wrote in its bytearrays afterwards."""
    bases, segments, base = [], [], USER_BASE
    for buf in buffers:
        if not isinstance(buf, bytes | bytearray):
            raise TypeError(f"user_space: buffers are bytes or bytearray, not {type(buf).__name__}")
        bases.append(base)
        segments.append((base, buf))
        base += (len(buf) + USER_GAP) // USER_GAP * USER_GAP + USER_GAP
    saved = getattr(_window, "segments", None)
    _window.segments = segments
    try:
        yield bases
    finally:
        _window.segments = saved


def _segment(uaddr: int, length: int, write: bool = False) -> tuple[bytes | bytearray, int]:
    """The buffer holding [uaddr, uaddr + length) and the offset of uaddr in it."""
    if (
        isinstance(uaddr, bool)
        or not isinstance(uaddr, int)
        or not isinstance(length, int)
        or length < 0
    ):
        raise OSError(errno.EFAULT, f"bad address {uaddr!r} or length {length!r}")
    for base, buf in getattr(_window, "segments", None) or ():
        if base <= uaddr and uaddr + length <= base + len(buf):
            if write and isinstance(buf, bytes):
                break  # a read-only buffer
            return buf, uaddr - base
    raise OSError(errno.EFAULT, f"bad address {uaddr:#x} (+{length})")


def copyin(uaddr: int, length: int) -> bytes:
    """copyin(9): ``length`` bytes of the caller's memory at ``uaddr``."""
    buf, off = _segment(uaddr, length)
    return bytes(buf[off : off + length])


def copyout(data: bytes | bytearray, uaddr: int) -> None:
    """copyout(9): write ``data`` to the caller's memory at ``uaddr``."""
    buf, off = _segment(uaddr, len(data), write=True)
    buf[off : off + len(data)] = data  # type: ignore[index]


def copyinstr(uaddr: int, maxlen: int) -> str:
    """copyinstr(9): the NUL-terminated string at ``uaddr``, at most ``maxlen`` bytes
    with its NUL (ENAMETOOLONG if there is none within them, EFAULT past the buffer)."""
    if isinstance(maxlen, bool) or not isinstance(maxlen, int):
        raise TypeError(f"copyinstr: maxlen must be an int, not {type(maxlen).__name__}")
    buf, off = _segment(uaddr, 0)
    if maxlen <= 0:
        raise OSError(errno.ENAMETOOLONG, "copyinstr: no room for a string")
    end = buf.find(b"\0", off, off + maxlen)
    if end < 0:
        if off + maxlen > len(buf):
            raise OSError(
                errno.EFAULT, f"copyinstr: no NUL before the end of the buffer at {uaddr:#x}"
            )
        raise OSError(errno.ENAMETOOLONG, f"copyinstr: no NUL within {maxlen} bytes")
    return bytes(buf[off:end]).decode("utf-8", "surrogateescape")


def copyoutstr(text: str | bytes, uaddr: int, maxlen: int) -> int:
    """copyoutstr(9): write ``text`` (str or bytes) and its NUL at ``uaddr``; the
    bytes written (ENAMETOOLONG if they exceed ``maxlen``: nothing is written then)."""
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogateescape") + b"\0"
    elif isinstance(text, bytes | bytearray):
        data = bytes(text) + b"\0"
    else:
        raise TypeError(f"copyoutstr: text must be a str or bytes, not {type(text).__name__}")
    if len(data) > maxlen:
        raise OSError(errno.ENAMETOOLONG, f"copyoutstr: {len(data)} bytes do not fit in {maxlen}")
    copyout(data, uaddr)
    return len(data)


def copystr(src: str | bytes, dst: object, maxlen: int) -> int:
    """copystr(9): copy the kernel string ``src`` and its NUL into the kernel buffer
    ``dst`` (a KBuf, a bytearray), at most ``maxlen`` bytes; the bytes copied with
    the NUL.  ENAMETOOLONG if they do not fit (``dst`` then holds the first
    ``maxlen`` bytes, as NetBSD's does)."""
    if isinstance(src, str):
        data = src.encode("utf-8", "surrogateescape") + b"\0"
    elif isinstance(src, bytes | bytearray):
        data = bytes(src).split(b"\0", 1)[0] + b"\0"
    else:
        raise TypeError(f"copystr: src must be a str or bytes, not {type(src).__name__}")
    if isinstance(maxlen, bool) or not isinstance(maxlen, int):
        raise TypeError(f"copystr: maxlen must be an int, not {type(maxlen).__name__}")
    try:
        view = memoryview(dst).cast("B")  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"copystr: dst must be a writable buffer, not {type(dst).__name__}"
        ) from None
    n = min(len(data), maxlen, len(view))
    view[:n] = data[:n]
    if n < len(data):
        raise OSError(errno.ENAMETOOLONG, f"copystr: {len(data)} bytes do not fit in {maxlen}")
    return n


# -- uio ----------------------------------------------------------------------------------------


@dataclass
class uio_t:
    """One buffer and a file offset for I/O (struct uio with one iovec)."""

    buf: bytearray
    offset: int
    rw: int
    pos: int = field(default=0)

    @property
    def resid(self) -> int:
        return len(self.buf) - self.pos


def rump_uio_setup(buf: bytearray | int, offset: int, rw: int) -> uio_t:
    """rump_uio_setup(3): a uio over ``buf`` (or a fresh buffer of that many bytes)
    at file offset ``offset``, UIO_READ (the kernel fills it) or UIO_WRITE."""
    if rw not in (UIO_READ, UIO_WRITE):
        raise OSError(errno.EINVAL, f"rump_uio_setup: bad direction {rw!r}")
    if isinstance(buf, int) and not isinstance(buf, bool):
        buf = bytearray(buf)
    if not isinstance(buf, bytearray):
        raise TypeError(
            f"rump_uio_setup: buf must be a bytearray or a size, not {type(buf).__name__}"
        )
    return uio_t(buf, offset, rw)


def uiomove(data: bytearray | bytes, n: int, uio: uio_t) -> int:
    """uiomove(9): move up to ``n`` bytes between ``data`` (kernel memory) and the
    uio, in the uio's direction; advances it; 0 (errno style, as NetBSD)."""
    n = min(n, uio.resid, len(data))
    if uio.rw == UIO_READ:
        uio.buf[uio.pos : uio.pos + n] = data[:n]
    elif isinstance(data, bytes):
        raise OSError(errno.EFAULT, "uiomove: a write needs writable kernel memory")
    else:
        data[:n] = uio.buf[uio.pos : uio.pos + n]
    uio.pos += n
    uio.offset += n
    return 0


def rump_uio_getresid(uio: uio_t) -> int:
    """rump_uio_getresid(3): bytes not yet moved."""
    return uio.resid


def rump_uio_getoff(uio: uio_t) -> int:
    """rump_uio_getoff(3): the file offset now."""
    return uio.offset


def rump_uio_free(uio: uio_t) -> int:
    """rump_uio_free(3): let it go; the bytes not moved (the residue, as rump's
    accessors.c returns)."""
    return uio.resid
