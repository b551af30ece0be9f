"""percpu(9): per-CPU storage in shared memory (subr_percpu.c).

Every CPU has an area of PERCPU_BYTES in the arena.  An allocation takes the same
offset in every CPU's area, rounded up to whole cache lines so that two
allocations never share one, and starts zeroed on every CPU.  An lwp reaches its
own CPU's slot with ``percpu_getref`` and must not block or yield until
``percpu_putref`` (under LOCKDEBUG, sleeping in between panics), so nothing else
runs on that CPU meanwhile and the slot needs no lock.

rumpmp differs from NetBSD in that ``percpu_getref`` returns a writable
memoryview of the slot instead of a pointer, and callbacks get a CPU index where
NetBSD passes a cpu_info.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.intr import xcall
from rumpmp.rumpkern.locking import lockdebug

PERCPU_BYTES = 64 * 1024
LINE = 64
NPERCPU = 254  # allocations at once

# header words: the lock, then (offset, size) per allocation (size 0: free entry)
P_LOCK = 0
P_TABLE = 2
_HDR_BYTES = (P_TABLE + 2 * NPERCPU) * 8


def region(ncpu: int) -> tuple[str, int]:
    return ("percpu", _HDR_BYTES + ncpu * PERCPU_BYTES)


def area(arena: Arena, cpu: int) -> int:
    """Byte offset of ``cpu``'s percpu area."""
    off, _ = arena.region("percpu")
    return off + _HDR_BYTES + cpu * PERCPU_BYTES


def percpu_init(arena: Arena) -> None:
    """percpu_init: the allocation table's lock (at boot, in the host)."""
    arena.w[arena.region_word("percpu") + P_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


def percpu_init_cpu(arena: Arena, cpu: int) -> None:
    """percpu_init_cpu: this CPU's area starts zeroed."""
    start = area(arena, cpu)
    arena.buf[start : start + PERCPU_BYTES] = bytes(PERCPU_BYTES)


class percpu_t(Handle):
    """A per-CPU allocation: the same offset in every CPU's area.  Pickles by
    reference."""

    __slots__ = ("arena", "entry", "offset", "size")

    def __init__(self, arena: Arena, entry: int, offset: int, size: int) -> None:
        self.arena, self.entry, self.offset, self.size = arena, entry, offset, size

    def _args(self) -> tuple:
        return (self.arena, self.entry, self.offset, self.size)

    def _what(self) -> str:
        return f"{self.size} bytes at +{self.offset:#x}"


def _lock(arena: Arena) -> sync.Mutex:
    return arena.spin_lock(arena.region_word("percpu") + P_LOCK)


def _first_fit(arena: Arena, need: int) -> tuple[int, int]:
    """(free table entry, offset) for ``need`` bytes (caller holds the lock)."""
    w, t = arena.w, arena.region_word("percpu") + P_TABLE
    used = sorted((w[t + 2 * i], w[t + 2 * i + 1]) for i in range(NPERCPU) if w[t + 2 * i + 1])
    entry = next((i for i in range(NPERCPU) if not w[t + 2 * i + 1]), -1)
    if entry < 0:
        raise OSError(errno.ENOMEM, f"percpu_alloc: all {NPERCPU} allocations in use")
    offset = 0
    for start, size in used:
        if start - offset >= need:
            break
        offset = start + size
    if offset + need > PERCPU_BYTES:
        raise OSError(errno.ENOMEM, f"percpu_alloc: no room for {need} bytes")
    return entry, offset


def percpu_alloc(size: int) -> percpu_t:
    """percpu_alloc(9): ``size`` bytes on every CPU, zeroed.  ENOMEM when the
    per-CPU areas are full (NetBSD grows them; rumpmp's are fixed at boot)."""
    arena = _arena.current()
    if size <= 0:
        raise OSError(errno.EINVAL, f"percpu_alloc: bad size {size}")
    need = -(-size // LINE) * LINE
    lock = _lock(arena)
    lock.enter_nowrap()
    try:
        entry, offset = _first_fit(arena, need)
        t = arena.region_word("percpu") + P_TABLE + 2 * entry
        arena.w[t], arena.w[t + 1] = offset, need
    finally:
        lock.exit()
    for cpu in range(arena.ncpu):
        start = area(arena, cpu) + offset
        arena.buf[start : start + need] = bytes(need)
    return percpu_t(arena, entry, offset, size)


def percpu_free(pc: percpu_t, size: int) -> None:
    """percpu_free(9): give the allocation back; ``size`` must match."""
    arena = pc.arena
    t = arena.region_word("percpu") + P_TABLE + 2 * pc.entry
    lock = _lock(arena)
    lock.enter_nowrap()
    live = arena.w[t] == pc.offset and arena.w[t + 1] >= size > 0
    if live and size == pc.size:
        arena.w[t + 1] = 0
    lock.exit()
    if not live or size != pc.size:
        panic_in(arena, f"percpu_free: {pc!r} freed with size {size} (or twice)")


def _slot(pc: percpu_t, cpu: int) -> memoryview:
    start = area(pc.arena, cpu) + pc.offset
    return pc.arena.buf[start : start + pc.size]


def percpu_getref(pc: percpu_t) -> memoryview:
    """percpu_getref(9): this CPU's slot, writable.  The caller keeps its CPU until
    percpu_putref: it must not block or yield in between."""
    _arena.current()
    if not _arena.curcpu_scheduled():
        panic_in(pc.arena, "percpu_getref: the caller does not hold a CPU")
    lockdebug.percpu_ref(+1)
    return _slot(pc, _arena.here.cpu)


def percpu_putref(pc: percpu_t) -> None:
    """percpu_putref(9): done with the slot percpu_getref returned."""
    lockdebug.percpu_ref(-1)


def percpu_foreach(
    pc: percpu_t, func: Callable[[memoryview, object, int], None], arg: object
) -> None:
    """percpu_foreach(9): ``func(slot, arg, cpu)`` for every CPU's slot, in CPU order,
    from the calling lwp (the slots are shared memory, so nothing moves)."""
    for cpu in range(pc.arena.ncpu):
        func(_slot(pc, cpu), arg, cpu)


def percpu_foreach_xcall(
    pc: percpu_t, xcflags: int, func: Callable[[memoryview, object, int], None], arg: object
) -> None:
    """percpu_foreach_xcall(9): ``func(slot, arg, cpu)`` run on each CPU for its own
    slot, by a cross-call, in parallel; returns when all have run."""
    xcall.xc_wait(xcall.xc_broadcast(xcflags, _run_on_own_slot, pc, (func, arg)))


def _run_on_own_slot(pc: percpu_t, call: tuple[Callable, object]) -> None:
    func, arg = call
    cpu = _arena.here.cpu
    func(_slot(pc, cpu), arg, cpu)
