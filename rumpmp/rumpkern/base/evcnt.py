"""evcnt(9): event counters (subr_evcnt.c), counted per CPU without a shared lock.

The "evcnt" region holds a table of NEVCNT descriptors (type, parent, group, name)
and the counts themselves as per-CPU slots: each CPU owns a contiguous,
cache-line-aligned block of NEVCNT words, plus one block for the host.  Counting
adds to the calling CPU's own slot, which only that CPU's running lwp (or its
hardclock, for the clock counter) writes, so no lock and no shared cache line is
involved; reading sums every block.  Attaching and detaching take one spin lock.

The kernel's own counters (scheduler, cross-calls, softints, callouts, hardclock)
are evcnts attached at boot with fixed indices, so their hot paths count with one
shared-memory word operation (``count_word``).

rumpmp differs from NetBSD in the call shape: ``evcnt_attach_dynamic`` returns the
counter, and code counts with ``evcnt_inc(ev)`` where NetBSD writes
``ev.ev_count++``: a Python property could not add to the calling CPU's slot.
"""

from __future__ import annotations

import errno

from hypercalls import sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import kprintf, panic_in

EVCNT_TYPE_ANY = 0
EVCNT_TYPE_MISC = 1
EVCNT_TYPE_INTR = 2
EVCNT_TYPE_TRAP = 3

NEVCNT = 128
STR_LEN = 32

# header words
G_LOCK = 0
_HDR_WORDS = 8
# descriptor words
E_LIVE = 0
E_TYPE = 1
E_PARENT = 2  # parent index + 1, 0 if none
E_GROUP = 4  # STR_LEN bytes
E_NAME = 8  # STR_LEN bytes
_DESC_WORDS = 12

#: The kernel's counters, attached at boot in this order: (group, name).
KERNEL_COUNTERS = [
    ("sched", "nswtch"),
    ("sched", "fast"),
    ("sched", "slow"),
    ("sched", "steals"),
    ("sched", "started"),
    ("xcall", "unicast"),
    ("xcall", "broadcast"),
    ("xcall", "highpri"),
    ("softint", "clock"),
    ("softint", "bio"),
    ("softint", "net"),
    ("softint", "serial"),
    ("callout", "fired"),
    ("clock", "hardclock"),
]
(
    EV_NSWTCH,
    EV_FAST,
    EV_SLOW,
    EV_STEALS,
    EV_STARTED,
    EV_XC_UNICAST,
    EV_XC_BROADCAST,
    EV_XC_HIGHPRI,
    EV_SOFTINT,  # + level
    _,
    _,
    _,
    EV_CALLOUT,
    EV_HARDCLOCK,
) = range(len(KERNEL_COUNTERS))


def _table_words() -> int:
    return _HDR_WORDS + NEVCNT * _DESC_WORDS


def region(ncpu: int) -> tuple[str, int]:
    return ("evcnt", (_table_words() + (ncpu + 1) * NEVCNT) * 8)


def _desc(arena: Arena, index: int) -> int:
    return arena.region_word("evcnt") + _HDR_WORDS + index * _DESC_WORDS


def block(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s block of counts (``arena.ncpu``: the host's)."""
    return arena.region_word("evcnt") + _table_words() + cpu * NEVCNT


def count_word(arena: Arena, cpu: int, index: int) -> int:
    """Word index of ``cpu``'s slot of counter ``index``: hot paths add to it."""
    return block(arena, cpu) + index


def _lock(arena: Arena) -> sync.Mutex:
    return arena.spin_lock(arena.region_word("evcnt") + G_LOCK)


class evcnt_t(Handle):
    """An event counter; pickles by reference."""

    __slots__ = ("arena", "index")

    def __init__(self, arena: Arena, index: int) -> None:
        self.arena, self.index = arena, index

    def _args(self) -> tuple:
        return (self.arena, self.index)

    def _what(self) -> str:
        return f"{self.ev_group}/{self.ev_name}"

    @property
    def ev_count(self) -> int:
        """The count: the sum of every CPU's slot."""
        return count_of(self.arena, self.index)

    @property
    def ev_type(self) -> int:
        return self.arena.w[_desc(self.arena, self.index) + E_TYPE]

    @property
    def ev_group(self) -> str:
        return self.arena.get_str((_desc(self.arena, self.index) + E_GROUP) * 8, STR_LEN)

    @property
    def ev_name(self) -> str:
        return self.arena.get_str((_desc(self.arena, self.index) + E_NAME) * 8, STR_LEN)

    @property
    def ev_parent(self) -> evcnt_t | None:
        parent = self.arena.w[_desc(self.arena, self.index) + E_PARENT]
        return evcnt_t(self.arena, parent - 1) if parent else None


def count_of(arena: Arena, index: int) -> int:
    return sum(arena.w[block(arena, cpu) + index] for cpu in range(arena.ncpu + 1))


def attach_in(arena: Arena, ev_type: int, parent: evcnt_t | None, group: str, name: str) -> evcnt_t:
    """evcnt_attach_dynamic on a given kernel (boot uses it from the host)."""
    w = arena.w
    lock = _lock(arena)
    lock.enter_nowrap()
    try:
        index = next((i for i in range(NEVCNT) if not w[_desc(arena, i) + E_LIVE]), -1)
        if index < 0:
            raise OSError(errno.ENOSPC, f"evcnt_attach: all {NEVCNT} counters in use")
        d = _desc(arena, index)
        w[d + E_TYPE] = ev_type
        w[d + E_PARENT] = parent.index + 1 if parent else 0
        arena.set_str((d + E_GROUP) * 8, STR_LEN, group)
        arena.set_str((d + E_NAME) * 8, STR_LEN, name)
        for cpu in range(arena.ncpu + 1):
            w[block(arena, cpu) + index] = 0
        w[d + E_LIVE] = 1
    finally:
        lock.exit()
    return evcnt_t(arena, index)


def evcnt_init(arena: Arena) -> None:
    """evcnt_init: the table's lock and the kernel's own counters (at boot)."""
    arena.w[arena.region_word("evcnt") + G_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    for i, (group, name) in enumerate(KERNEL_COUNTERS):
        assert attach_in(arena, EVCNT_TYPE_MISC, None, group, name).index == i


def evcnt_attach_dynamic(ev_type: int, parent: evcnt_t | None, group: str, name: str) -> evcnt_t:
    """evcnt_attach_dynamic(9): a new counter, starting at 0.  OSError(ENOSPC) when
    the table is full."""
    return attach_in(_arena.current(), ev_type, parent, group, name)


def evcnt_detach(ev: evcnt_t) -> None:
    """evcnt_detach(9): remove the counter.  Detaching twice panics."""
    arena = ev.arena
    d = _desc(arena, ev.index)
    lock = _lock(arena)
    lock.enter_nowrap()
    live = arena.w[d + E_LIVE]
    arena.w[d + E_LIVE] = 0
    lock.exit()
    if not live:
        panic_in(arena, f"evcnt_detach: counter {ev.index} is not attached")


def evcnt_inc(ev: evcnt_t, n: int = 1) -> None:
    """Add ``n`` to the calling CPU's slot of ``ev``.

    Only the lwp holding a CPU may touch that CPU's slot without a lock.  Any other
    thread (the host's, a host thread of a CPU process, an lwp that released its
    CPU) adds to the host's slot, which every such thread shares, so under the
    table's lock: a read-add-write of a shared word is not atomic even within one
    process.
    """
    arena = ev.arena
    if _arena.here.arena is arena and _arena.curcpu_scheduled():
        arena.w[block(arena, _arena.here.cpu) + ev.index] += n
        return
    lock = _lock(arena)
    lock.enter_nowrap()
    arena.w[block(arena, arena.ncpu) + ev.index] += n
    lock.exit()


def evcnt_list(arena: Arena) -> list[tuple[str, str, int]]:
    """(group, name, count) of every attached counter, in attach order."""
    out = []
    for i in range(NEVCNT):
        d = _desc(arena, i)
        if arena.w[d + E_LIVE]:
            ev = evcnt_t(arena, i)
            out.append((ev.ev_group, ev.ev_name, count_of(arena, i)))
    return out


def rump_printevcnts() -> None:
    """rump_printevcnts: every counter as "group / name: count", on the console."""
    arena = _arena.current()
    for group, name, count in evcnt_list(arena):
        kprintf(arena, f"{group} / {name}: {count}\n")
