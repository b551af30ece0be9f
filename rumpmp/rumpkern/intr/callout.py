"""callout(9): run a function after a number of ticks (kern_timeout.c).

Each CPU owns a queue of pending callouts in shared memory, sorted by due tick and
guarded by the CPU's own spin lock, so scheduling a callout on one CPU never
contends with another.  A callout is a record in the kernel heap (state, due tick,
owning CPU, handler blob, queue link); its state is protected by the lock of the
CPU that owns it, found the way NetBSD's callout_lock does: read the owner, lock
it, check the owner did not change meanwhile.

A callout fires on the CPU where it was scheduled (or the CPU it is bound to): that
CPU's hardclock sees the head of its queue due and schedules the CPU's clock
softint, whose lwp runs every expired handler.  A handler never runs before its
tick; under load it may run late.  rumpmp differs from NetBSD in that
``callout_init`` returns the handle (pickled by reference, usable on every CPU)
instead of initialising caller storage.  A handler without CALLOUT_MPSAFE runs
holding the big kernel lock.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import sync, thread, waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import clock, entry, evcnt, kernhist
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.intr import softint
from rumpmp.rumpkern.locking import biglock, lockdebug
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit
from rumpmp.rumpkern.locking.sleepq import tsleep, wakeup
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.sys.kernhist import EV_CALLOUT, EV_TICK

CALLOUT_MPSAFE = 0x0100

# callout state bits
CALLOUT_PENDING = 0x02
CALLOUT_FIRED = 0x04
CALLOUT_INVOKING = 0x08

# per-CPU record words
CC_LOCK = 0  # pool slot of the CPU's callout lock
CC_HEAD = 1  # and 2: a waitq list of pending callout records, sorted by due tick
CC_RUNNING = 3  # record offset of the handler running now, 0 if none
CC_LATE = 5  # ticks handlers ran after their due tick, summed
RECORD_WORDS = 64  # one record per CPU, cache-line separated

# global words, after the per-CPU records
G_SIH = 0  # the clock softint's handle index

# callout record words
C_MAGIC = 0
C_FLAGS = 1  # callout_init flags
C_STATE = 2
C_DUE = 3  # tick at which it fires
C_CPU = 4  # owning CPU: whose queue it is on, or where it last ran
C_BOUND = 5  # callout_bind CPU, -1 if none
C_NEXT = 6  # waitq link in the owner's queue
C_FUNC = 7  # 3 words: blob of (func, arg)
C_WAITERS = 10  # lwps in callout_halt
C_STAGED = 11  # 3 words: a new handler blob, before it replaces C_FUNC
C_WORDS = 16
C_BYTES = C_WORDS * 8
CALLOUT_MAGIC = 0x63616C6C6F  # "callo"


def region(ncpu: int) -> tuple[str, int]:
    return ("callout", (ncpu + 1) * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("callout") + cpu * RECORD_WORDS


def _cc_lock(arena: Arena, cpu: int) -> sync.Mutex:
    return arena.spin_lock(record(arena, cpu) + CC_LOCK)


class callout_t(Handle):
    """A callout handle; pickles by reference, usable from every CPU."""

    __slots__ = ("_c", "arena", "rec")

    def __init__(self, arena: Arena, rec: kmem.KBuf) -> None:
        self.arena = arena
        self.rec = rec
        self._c = rec.offset // 8

    def _args(self) -> tuple:
        return (self.arena, self.rec)

    def _what(self) -> str:
        return f"at {self.rec.offset:#x}"


# -- boot ---------------------------------------------------------------------------


def callout_init_cpu(arena: Arena, cpu: int) -> None:
    """callout_init_cpu: this CPU's queue, its lock and its hardclock (per-CPU boot)."""
    arena.w[record(arena, cpu) + CC_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    clock.start_hardclock(arena, cpu, lambda tick: _hardclock(arena, cpu, tick))


def callout_startup(arena: Arena) -> None:
    """callout_startup: the clock softint that runs expired callouts (at boot, once
    the CPUs are up)."""
    sih = softint.softint_establish_in(
        arena, softint.SOFTINT_CLOCK | softint.SOFTINT_MPSAFE, _softclock, None
    )
    arena.w[record(arena, arena.ncpu) + G_SIH] = sih.index + 1


def _hardclock(arena: Arena, cpu: int, tick: int) -> None:
    """One tick of ``cpu``'s hardclock: if its first callout is due, run the softclock."""
    w = arena.w
    r = record(arena, cpu)
    w[evcnt.count_word(arena, cpu, evcnt.EV_HARDCLOCK)] += 1
    if kernhist.state.on:
        kernhist.emit(EV_TICK, 0, tick)
    head = w[r + CC_HEAD]
    sih = w[record(arena, arena.ncpu) + G_SIH]
    if head and sih and w[head + C_DUE] <= tick:
        softint.schedule_in(arena, softint.softint_t(arena, sih - 1), cpu)


# -- queue operations (caller holds the owning CPU's lock) ----------------------------


def _insert(arena: Arena, cpu: int, c: int) -> None:
    """Put record ``c`` (a word index) in ``cpu``'s queue, after those due no later."""
    w = arena.w
    waitq.insert_sorted(w, record(arena, cpu) + CC_HEAD, c, C_NEXT, lambda e: w[e + C_DUE])


def _remove(arena: Arena, cpu: int, c: int) -> None:
    waitq.remove(arena.w, record(arena, cpu) + CC_HEAD, c, C_NEXT)


def _lock_owner(c: callout_t, also: int = -1) -> tuple[int, list[sync.Mutex]]:
    """Lock the CPU that owns ``c`` (and CPU ``also``, in index order so two callers
    never deadlock); returns the owner and the locks taken."""
    arena = c.arena
    _check(c)
    while True:
        owner = arena.w[c._c + C_CPU]
        cpus = sorted({owner, also} - {-1})
        locks = [_cc_lock(arena, cpu) for cpu in cpus]
        for lock in locks:
            lock.enter_nowrap()
        if arena.w[c._c + C_CPU] == owner:
            return owner, locks
        for lock in reversed(locks):
            lock.exit()


def _unlock(locks: list[sync.Mutex]) -> None:
    for lock in reversed(locks):
        lock.exit()


def _check(c: callout_t) -> None:
    arena = c.arena
    if not kmem.is_live(arena, c.rec) or arena.w[c._c + C_MAGIC] != CALLOUT_MAGIC:
        panic_in(arena, f"callout: {c!r} is not initialised (destroyed?)")


# -- callout(9) -------------------------------------------------------------------------


def callout_init(flags: int = 0) -> callout_t:
    """callout_init(9): a new callout, owned by the calling CPU until it is scheduled."""
    arena = _arena.current()
    rec = kmem.kmem_zalloc_in(arena, C_BYTES)
    w, c = arena.w, rec.offset // 8
    w[c + C_FLAGS] = flags
    w[c + C_CPU] = _arena.here.cpu
    w[c + C_BOUND] = -1
    w[c + C_MAGIC] = CALLOUT_MAGIC
    return callout_t(arena, rec)


def callout_setfunc(c: callout_t, func: Callable[[object], None], arg: object) -> None:
    """callout_setfunc(9): the handler ``func(arg)`` for later callout_schedule calls."""
    _check(c)
    arena, w = c.arena, c.arena.w
    key = ("callout.func", c.rec.offset)
    mine: tuple[object, object, tuple[int, ...]] | None = arena.cache.get(key)  # type: ignore[assignment]
    current = tuple(w[c._c + C_FUNC : c._c + C_FUNC + 3])
    if mine and mine[0] is func and mine[1] is arg and mine[2] == current:
        return  # the blob this process stored last is still the handler: keep it
    blob_put(arena, (func, arg), c._c + C_STAGED)  # pickling may block: not under the lock
    _, locks = _lock_owner(c)
    old = w[c._c + C_FUNC : c._c + C_FUNC + 3].tobytes()
    w[c._c + C_FUNC : c._c + C_FUNC + 3] = w[c._c + C_STAGED : c._c + C_STAGED + 3]
    w[c._c + C_STAGED : c._c + C_STAGED + 3] = memoryview(old).cast("q")
    _unlock(locks)
    arena.cache[key] = (func, arg, tuple(w[c._c + C_FUNC : c._c + C_FUNC + 3]))
    if w[c._c + C_STAGED]:  # the softclock unpickles under the lock: nobody reads it now
        blob_free(arena, c._c + C_STAGED)


def callout_schedule(c: callout_t, ticks: int) -> None:
    """callout_schedule(9): fire in ``ticks`` ticks (at least one) on this CPU, or
    on the bound CPU; a pending callout is moved.  A callout whose handler is
    running now stays on the CPU that runs it, as in NetBSD."""
    arena = c.arena
    w = arena.w
    if not w[c._c + C_FUNC]:
        raise OSError(errno.EINVAL, "callout_schedule: no function set (callout_setfunc)")
    _arena.current()  # only code on a CPU schedules callouts
    bound = w[c._c + C_BOUND]
    target = bound if bound >= 0 else _arena.here.cpu
    owner, locks = _lock_owner(c, target)
    if w[c._c + C_STATE] & CALLOUT_PENDING:
        _remove(arena, owner, c._c)
    if w[record(arena, owner) + CC_RUNNING] == c.rec.offset and bound < 0:
        target = owner
    w[c._c + C_DUE] = clock.ticks_in(arena) + max(ticks, 1)
    w[c._c + C_STATE] = (w[c._c + C_STATE] & ~CALLOUT_FIRED) | CALLOUT_PENDING
    w[c._c + C_CPU] = target
    _insert(arena, target, c._c)
    _unlock(locks)


def callout_reset(c: callout_t, ticks: int, func: Callable[[object], None], arg: object) -> None:
    """callout_reset(9): callout_setfunc then callout_schedule."""
    callout_setfunc(c, func, arg)
    callout_schedule(c, ticks)


def _stop_locked(c: callout_t, owner: int) -> bool:
    w = c.arena.w
    state = w[c._c + C_STATE]
    if state & CALLOUT_PENDING:
        _remove(c.arena, owner, c._c)
    w[c._c + C_STATE] = state & ~(CALLOUT_PENDING | CALLOUT_FIRED)
    return bool(state & CALLOUT_FIRED)


def callout_stop(c: callout_t) -> bool:
    """callout_stop(9): cancel a pending callout.  Returns whether it had already
    expired (fired).  Does not wait for a handler that is running: see callout_halt."""
    owner, locks = _lock_owner(c)
    expired = _stop_locked(c, owner)
    _unlock(locks)
    return expired


def callout_halt(c: callout_t, interlock: kmutex_t | None = None) -> bool:
    """callout_halt(9): callout_stop, then wait until a running handler has returned.
    ``interlock`` (a kmutex) is released while waiting and taken back before return.
    Returns whether the callout had expired."""

    arena = c.arena
    w = arena.w
    owner, locks = _lock_owner(c)
    expired = _stop_locked(c, owner)
    running = w[record(arena, owner) + CC_RUNNING] == c.rec.offset
    if running and owner == _arena.here.cpu and _in_softclock():
        _unlock(locks)  # called from its own handler: waiting would never end
        return expired
    _unlock(locks)
    if not running:
        return expired
    if interlock is not None:
        mutex_exit(interlock)
    while True:
        owner, locks = _lock_owner(c)
        if w[record(arena, owner) + CC_RUNNING] != c.rec.offset:
            _unlock(locks)
            break
        w[c._c + C_WAITERS] += 1
        _unlock(locks)
        tsleep(c.rec, 0, "callout", 1)  # woken when the handler returns; 1 tick bound
        owner, locks = _lock_owner(c)
        w[c._c + C_WAITERS] -= 1
        _unlock(locks)
    if interlock is not None:
        mutex_enter(interlock)
    return expired


def _in_softclock() -> bool:
    """Whether the calling lwp is a clock softint lwp."""

    arena = _arena.current()
    lid = thread.curlwp()
    r = softint.record(arena, _arena.here.cpu)
    return arena.w[r + softint.SI_LWP + softint.SOFTINT_CLOCK] == lid


def callout_destroy(c: callout_t) -> None:
    """callout_destroy(9): free the callout.  Under LOCKDEBUG, destroying a pending
    callout panics, as NetBSD's KASSERT does; otherwise it is stopped first."""
    arena = c.arena
    _check(c)
    if arena.w[c._c + C_STATE] & CALLOUT_PENDING and lockdebug.enabled(arena):
        panic_in(arena, f"callout_destroy: {c!r} is pending")
    callout_halt(c)
    w = arena.w
    w[c._c + C_MAGIC] = 0
    if w[c._c + C_FUNC]:
        blob_free(arena, c._c + C_FUNC)
    kmem.kmem_free_in(arena, c.rec, C_BYTES)


def callout_pending(c: callout_t) -> bool:
    """callout_pending(9): scheduled and not yet fired."""
    _check(c)
    return bool(c.arena.w[c._c + C_STATE] & CALLOUT_PENDING)


def callout_expired(c: callout_t) -> bool:
    """callout_expired(9): fired since it was last scheduled."""
    _check(c)
    return bool(c.arena.w[c._c + C_STATE] & CALLOUT_FIRED)


def callout_active(c: callout_t) -> bool:
    """callout_active(9): pending or expired (scheduled and not stopped)."""
    _check(c)
    return bool(c.arena.w[c._c + C_STATE] & (CALLOUT_PENDING | CALLOUT_FIRED))


def callout_invoking(c: callout_t) -> bool:
    """callout_invoking(9): the handler was called and has not acknowledged it."""
    _check(c)
    return bool(c.arena.w[c._c + C_STATE] & CALLOUT_INVOKING)


def callout_ack(c: callout_t) -> None:
    """callout_ack(9): clear the invoking state (from the handler)."""
    _, locks = _lock_owner(c)
    c.arena.w[c._c + C_STATE] &= ~CALLOUT_INVOKING
    _unlock(locks)


def callout_bind(c: callout_t, ci: int) -> None:
    """callout_bind(9): always fire on CPU ``ci`` (an index; NetBSD takes a
    cpu_info).  Must not be called while the callout is pending."""
    arena = c.arena
    if not 0 <= ci < arena.ncpu:
        raise OSError(errno.EINVAL, f"callout_bind: no cpu{ci}")
    _, locks = _lock_owner(c, ci)
    if arena.w[c._c + C_STATE] & CALLOUT_PENDING:
        _unlock(locks)
        panic_in(arena, f"callout_bind: {c!r} is pending")
    arena.w[c._c + C_BOUND] = ci
    arena.w[c._c + C_CPU] = ci
    _unlock(locks)


# -- the clock softint ----------------------------------------------------------------


def _pop_due(arena: Arena, cpu: int, now: int) -> int:
    """Take the first callout due by ``now`` off ``cpu``'s queue and mark it running
    (caller holds the lock); its record offset, or 0."""
    w = arena.w
    r = record(arena, cpu)
    head = w[r + CC_HEAD]
    if not head or w[head + C_DUE] > now:
        return 0
    c = waitq.pop(w, r + CC_HEAD, C_NEXT)
    w[c + C_STATE] = (w[c + C_STATE] & ~CALLOUT_PENDING) | CALLOUT_FIRED | CALLOUT_INVOKING
    w[r + CC_RUNNING] = c * 8
    w[r + CC_LATE] += now - w[c + C_DUE]
    return c * 8


def _softclock(_: object) -> None:
    """The clock softint of this CPU: run every callout that is due, in due order."""

    arena = _arena.current()
    cpu = _arena.here.cpu
    w = arena.w
    r = record(arena, cpu)
    lock = _cc_lock(arena, cpu)
    now = clock.ticks_in(arena)
    while True:
        lock.enter_nowrap()
        off = _pop_due(arena, cpu, now)
        if off:  # unpickle under the lock: callout_setfunc cannot free it meanwhile
            func, arg = blob_get(arena, off // 8 + C_FUNC, cache=True)
            mpsafe = w[off // 8 + C_FLAGS] & CALLOUT_MPSAFE
        lock.exit()
        if not off:
            return
        try:
            start = kernhist.now() if kernhist.state.on else 0
            ok, e = biglock.call(mpsafe, func, arg)
            if start:
                kernhist.emit(EV_CALLOUT, thread.curlwp(), off, kernhist.now() - start)
            if not ok:  # nobody waits for a callout: dmesg says what it raised
                entry.report(arena, f"callout handler {func!r} on cpu{cpu}", e)  # type: ignore[arg-type]
        finally:
            lock.enter_nowrap()
            w[r + CC_RUNNING] = 0
            w[evcnt.count_word(arena, cpu, evcnt.EV_CALLOUT)] += 1
            waiters = w[off // 8 + C_WAITERS]
            lock.exit()
            if waiters:
                wakeup(off)


def callout_stats(arena: Arena, cpu: int) -> dict[str, int]:
    """Ticks seen, callouts fired and total lateness (ticks) on ``cpu``."""
    r = record(arena, cpu)
    w = arena.w
    ticks, fired = (
        evcnt.count_word(arena, cpu, ev) for ev in (evcnt.EV_HARDCLOCK, evcnt.EV_CALLOUT)
    )
    return {"ticks": w[ticks], "fired": w[fired], "late": w[r + CC_LATE]}
