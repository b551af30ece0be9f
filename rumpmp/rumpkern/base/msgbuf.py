"""The kernel message buffer (initmsgbuf, dmesg): a 16 KiB ring in shared memory.

Every CPU writes to the same ring under one spin lock, so ``dmesg`` shows the
messages of all CPUs in the order they were written.
"""

from __future__ import annotations

from hypercalls import sync
from rumpmp.rumpkern.base.arena import Arena

MSGBUFSIZE = 16 * 1024  # the seed's rump_msgbuf
_HDR = 64
M_POS = 0  # total bytes ever written; the ring holds the last MSGBUFSIZE of them
M_LOCK = 1  # pool slot of the spin lock

REGION = ("msgbuf", _HDR + MSGBUFSIZE)


def initmsgbuf(arena: Arena) -> None:
    """Set up the ring and its lock (at boot, before any CPU writes)."""
    base = arena.region_word("msgbuf")
    lock = sync.Mutex(arena.pool, sync.MTX_SPIN)
    arena.w[base + M_LOCK] = lock.slot


def _lock(arena: Arena) -> sync.Mutex:
    return arena.spin_lock(arena.region_word("msgbuf") + M_LOCK)


#: Longest wait for the message buffer's lock.  Its holder may have been a CPU that
#: died, and the last messages of a dying kernel matter more than their order.
LOCK_PATIENCE = 1.0


def msgbuf_write(arena: Arena, text: str) -> None:
    """Append text to the ring, overwriting the oldest bytes when it is full."""
    data = text.encode(errors="replace")[-MSGBUFSIZE:]
    off, _ = arena.region("msgbuf")
    ring = off + _HDR
    base = off // 8
    lock = _lock(arena)
    locked = lock.enter_nowrap_within(LOCK_PATIENCE)  # a spin lock: printf keeps its CPU
    try:
        pos = arena.w[base + M_POS]
        start = pos % MSGBUFSIZE
        first = min(len(data), MSGBUFSIZE - start)
        arena.buf[ring + start : ring + start + first] = data[:first]
        arena.buf[ring : ring + len(data) - first] = data[first:]
        arena.w[base + M_POS] = pos + len(data)
    finally:
        if locked:
            lock.exit()


def msgbuf_read(arena: Arena) -> str:
    """The contents of the ring, oldest first."""
    off, _ = arena.region("msgbuf")
    ring = off + _HDR
    pos = arena.w[off // 8 + M_POS]
    if pos <= MSGBUFSIZE:
        data = bytes(arena.buf[ring : ring + pos])
    else:
        start = pos % MSGBUFSIZE
        data = bytes(arena.buf[ring + start : ring + MSGBUFSIZE]) + bytes(
            arena.buf[ring : ring + start]
        )
    return data.decode(errors="replace")
