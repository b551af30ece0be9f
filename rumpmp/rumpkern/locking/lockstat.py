"""lockstat(8): which locks are contended, how long lwps wait for them and hold them.

Switched on per kernel at boot (``boot(lockstat=True)`` or RUMP_LOCKSTAT=1).  Counted
per lock and kind of hold (adaptive mutex, spin mutex, rwlock reader, rwlock
writer): acquisitions, contended acquisitions, time waited (total, max), time held
(total, max) and spins.  Each CPU has its own table in the "lockstat" region,
written only by the lwp holding that CPU (as evcnt's slots), so counting takes no
lock; ``rows`` sums the tables.  An entry keeps the lock's name and where it was
initialised, so a lock destroyed before the read is still named.

Off, the locks' fast paths pay nothing: a lock handle folds "lockstat on" into the
flag they already test for LOCKDEBUG (``_slow``).

The trace (kernhist) names the locks in its events through the same tables, so
they exist when either is on; only lockstat counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hypercalls import clock, dl, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import kernhist
from rumpmp.rumpkern.base.arena import H_LOCKSTAT, Arena
from rumpmp.rumpkern.base.prf import kprintf
from rumpmp.sys import lockstat as S
from rumpmp.sys.kernhist import EV_LOCK


class LockStat(NamedTuple):
    """One lock's figures (one kind of hold), summed over every CPU."""

    name: str
    site: str  # where the lock was initialised (file:line)
    kind: str  # "adaptive", "spin", "rw reader" or "rw writer"
    acquisitions: int
    contended: int
    wait_ns: int
    wait_max_ns: int
    hold_ns: int
    hold_max_ns: int
    spins: int
    lock: int  # the lock's record (byte offset in the arena)


def enabled(arena: Arena) -> bool:
    """Whether lockstat counts (fixed at boot)."""
    return bool(arena.w[H_LOCKSTAT])


def named(arena: Arena) -> bool:
    """Whether locks are entered in the tables (lockstat or the trace is on)."""
    return bool(arena.w[arena.region_word("lockstat") + S.LS_CAP])


def lockstat_init(arena: Arena, on: bool, cap: int) -> None:
    """At boot: lockstat on or off; ``cap`` entries per CPU (0 if nothing names locks)."""
    arena.w[H_LOCKSTAT] = int(on)
    arena.w[arena.region_word("lockstat") + S.LS_CAP] = cap


def table_word(arena: Arena, cpu: int) -> int:
    base = arena.region_word("lockstat")
    return base + S.LS_HDR_WORDS + cpu * S.table_words(arena.w[base + S.LS_CAP])


def init_site() -> str:
    """Where the lock being initialised was asked for: the first caller outside the
    locking code (NetBSD's lockstat names the caller's return address)."""
    return dl.caller_site(__file__.rsplit("/", 1)[0])


class _Table:
    """This CPU's table, and which entry each lock has in it."""

    def __init__(self, arena: Arena, cpu: int) -> None:
        self.arena, self.w = arena, arena.w
        self.t = table_word(arena, cpu)
        self.cap = arena.w[arena.region_word("lockstat") + S.LS_CAP]
        self.index: dict[tuple[int, int, int], int] = {}

    def add(self, key: tuple[int, int, int], name: str, site: str) -> int:
        w, t = self.w, self.t
        n = w[t + S.T_USED]
        if n >= self.cap:
            if not w[t + S.T_DROPPED]:
                kprintf(self.arena, f"lockstat: cpu{_arena.here.cpu}'s table is full "
                        f"({self.cap} locks): the locks it meets next are not counted\n")  # fmt: skip
            w[t + S.T_DROPPED] += 1
            return -1
        e = t + S.T_HDR_WORDS + n * S.E_WORDS
        w[e : e + S.E_WORDS] = memoryview(bytes(S.E_WORDS * 8)).cast("q")
        w[e + S.E_OFF], w[e + S.E_GEN], w[e + S.E_KIND] = key
        self.arena.set_str((e + S.E_TEXT) * 8, S.TEXT_BYTES, f"{name}\n{site}")
        w[t + S.T_USED] = n + 1
        return e


def _table(arena: Arena) -> _Table:
    cpu = _arena.here.cpu
    return arena.attached(("lockstat", cpu), lambda: _Table(arena, cpu))


def entries() -> list[int]:
    """A lock handle's cache of its entries in this CPU's table, by kind (0: not
    looked up yet, -1: the table was full).  A handle lives in one process."""
    return [0] * len(S.KIND_NAMES)


def entry(lock: object, kind: int) -> int:
    """The word index of this CPU's entry for ``lock`` (a kernel lock handle) held as
    ``kind``, made on first use; -1 if the table is full."""
    e: int = lock._ls[kind]  # type: ignore[attr-defined]
    if e:
        return e
    arena, rec = lock.arena, lock.rec  # type: ignore[attr-defined]
    t = _table(arena)
    key = (rec.offset, rec.gen, kind)
    e = t.index.get(key) or t.add(key, lock.name, lock.site)  # type: ignore[attr-defined]
    t.index[key] = lock._ls[kind] = e  # type: ignore[attr-defined]
    return e


_now = clock.monotonic_ns


def traced_wait(lock: object, kind: int, lwp: int, waited: int) -> None:
    """The trace's record of a contended acquisition that waited ``waited`` ns (the
    lock entered in this CPU's table, which names it, even with lockstat off)."""
    entry(lock, kind)
    kernhist.emit(EV_LOCK, lwp, lock.rec.offset, waited)  # type: ignore[attr-defined]


def acquired(lock: object, kind: int, waited: int = 0, spins: int = 0) -> None:
    """Count an acquisition that waited ``waited`` ns (0: it did not) and spun
    ``spins`` times; an exclusive hold starts its clock."""
    e = entry(lock, kind)
    if e < 0:
        return
    w = lock.arena.w  # type: ignore[attr-defined]
    w[e + S.E_ACQ] += 1
    if waited:
        w[e + S.E_CONT] += 1
        w[e + S.E_WAIT] += waited
        if waited > w[e + S.E_WAITMAX]:
            w[e + S.E_WAITMAX] = waited
    if spins:
        w[e + S.E_SPIN] += spins
    if kind == S.LS_RW_READER:  # readers overlap: each thread keeps its own starts
        _read_starts(lock).append(_now())
    else:
        w[e + S.E_SINCE] = _now()


_reads = thread.local()


def _read_starts(lock: object) -> list[int]:
    starts: dict[Any, list[int]] = vars(_reads)
    return starts.setdefault(lock.rec.offset, [])  # type: ignore[attr-defined]


def released(lock: object, kind: int) -> None:
    """Count the end of a hold (its time, from where ``acquired`` started it)."""
    e = entry(lock, kind)
    if e < 0:
        return
    w = lock.arena.w  # type: ignore[attr-defined]
    if kind == S.LS_RW_READER:
        starts = _read_starts(lock)
        since = starts.pop() if starts else 0
        if not starts:
            del vars(_reads)[lock.rec.offset]  # type: ignore[attr-defined]
    else:
        since, w[e + S.E_SINCE] = w[e + S.E_SINCE], 0
    if since:
        held = _now() - since
        w[e + S.E_HOLD] += held
        if held > w[e + S.E_HOLDMAX]:
            w[e + S.E_HOLDMAX] = held


def _entries(arena: Arena) -> list[tuple[list[int], str, str]]:
    """(words, name, site) of every entry of every CPU."""
    out = []
    for cpu in range(arena.ncpu):
        t = table_word(arena, cpu)
        for n in range(arena.w[t + S.T_USED]):
            e = t + S.T_HDR_WORDS + n * S.E_WORDS
            name, _, site = arena.get_str((e + S.E_TEXT) * 8, S.TEXT_BYTES).partition("\n")
            out.append((arena.w[e : e + S.E_TEXT].tolist(), name, site))
    return out


def lock_names(arena: Arena) -> dict[int, str]:
    """The name of every lock a CPU has entered, by record offset (for the trace)."""
    return {words[S.E_OFF]: name for words, name, _ in _entries(arena)}


def rows(arena: Arena) -> list[LockStat]:
    """Every lock counted, summed over the CPUs, most time waited first."""
    sums: dict[tuple[int, int, int], list[Any]] = {}
    for words, name, site in _entries(arena):
        key = (words[S.E_OFF], words[S.E_GEN], words[S.E_KIND])
        row = sums.setdefault(key, [name, site, S.KIND_NAMES[key[2]], 0, 0, 0, 0, 0, 0, 0])
        row[3] += words[S.E_ACQ]
        row[4] += words[S.E_CONT]
        row[5] += words[S.E_WAIT]
        row[6] = max(row[6], words[S.E_WAITMAX])
        row[7] += words[S.E_HOLD]
        row[8] = max(row[8], words[S.E_HOLDMAX])
        row[9] += words[S.E_SPIN]
    out = [LockStat._make([*row, key[0]]) for key, row in sums.items() if row[3]]
    return sorted(out, key=lambda r: (-r.wait_ns, -r.contended, -r.acquisitions, r.name))
