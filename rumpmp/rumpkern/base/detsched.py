"""Deterministic scheduling of a stress run's lwps (``stress --deterministic``).

In a deterministic run exactly one *participant* (a torture lwp) runs kernel code at
a time, across all CPUs: it holds the baton.  At every hand-over point (taking a
kernel mutex, ``preempt``, the end of a step) the holder picks the next participant
from the seed, with PCT (Burckhardt et al., ASPLOS 2010): each participant has a
random priority, the highest runnable one runs, and at a few random steps (the
change points) the running one drops below all others.  A participant that must
wait (a busy mutex, ``tsleep``/``mtsleep``/``kpause``) is *blocked* on a key and
gives the baton away (so does a condvar or rwlock wait); ``mutex_exit``, ``rw_exit``,
``wakeup`` and ``cv_signal``/``cv_broadcast`` make the waiters on their key runnable
again.  Time is virtual: a tick every ``K`` steps, and when nobody is
runnable but some sleep with a deadline, the clock jumps to the earliest one; when
nobody is runnable and none has a deadline, that is a deadlock.  The run ends at a
virtual time, not the host's, so one seed gives one schedule and one result
whatever the host is doing; a digest of every choice made identifies it.

Waiting for the baton releases the CPU, so the next participant may be on the same
CPU.  Kernel threads that are not participants (softints, cross-calls, callouts) run
as always, so a type that relies on them is not deterministic.

The record lives in the kernel heap; the arena header word H_DET holds its offset
while a deterministic run is under way, and ``state.on`` is set in every CPU
process by a cross-call.
"""

from __future__ import annotations

import random

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.lwp import L_PARK

# Record words.
D_LOCK = 0  # pool slot of the record's spin lock
D_N = 1  # participants
D_NREG = 2  # participants registered so far
D_TURN = 3  # the participant holding the baton (-1: none)
D_STEP = 4  # choices made
D_VNOW = 5  # virtual ticks
D_END = 6  # virtual tick at which the run stops
D_STOPW = 7  # arena word the run's stop flag is in
D_DEAD = 8  # 1 once nobody can run and some wait: a deadlock
D_DIGEST = 9
D_K = 10  # steps per virtual tick
D_NCHANGE = 11
D_REPLAY = 12  # 1: follow the overrides given (else choose with PCT and log them)
D_NPICK = 13  # choices made so far (the overrides' index)
D_NOVER = 14  # overrides logged (PCT) or given (replay)
D_OVERFLOW = 15  # 1 if more were made than MAX_OVER (the log is incomplete)
D_CHANGES = 16  # the change points (steps)
MAX_CHANGES = 8
D_PART = 24  # the participants' records, then the overrides
MAX_OVER = 4096
P_STATUS = 0
P_KEY = 1  # what a blocked participant waits for
P_DEADLINE = 2  # virtual tick it wakes at by itself, -1 for none
P_PRIO = 3
P_PARK = 4  # its park slot
P_TIMEDOUT = 5  # 1 if its last block ended at its deadline
P_LID = 6
P_WORDS = 8
RUNNABLE, BLOCKED, DONE = 0, 1, 2
_MASK = (1 << 62) - 1


class _State:
    on = False  # a deterministic run is under way in this process's kernel


state = _State()
_me = thread.local()  # .i: this thread's participant index


# A schedule is written as the choices that differ from a plain policy: keep the
# lwp that holds the baton while it can run, else take the lowest-numbered runnable
# one.  Those *overrides* (choice number, lwp) are what PCT's choices add to it; a
# run given them (replay) makes exactly the same choices, and a subset of them is a
# schedule with fewer preemptions (what --minimize searches).


def record_words(n: int) -> int:
    return D_PART + n * P_WORDS + 2 * MAX_OVER


def _over(r: int, n: int) -> int:
    return r + D_PART + n * P_WORDS


def create(
    arena: Arena,
    rec: int,
    n: int,
    seed: int,
    end: int,
    stop_word: int,
    overrides: list[tuple[int, int]] | None = None,
) -> None:
    """Lay out a deterministic run of ``n`` participants in the record at word
    ``rec``: PCT priorities and change points from ``seed`` (or, given
    ``overrides``, exactly that schedule), the end at virtual tick ``end``, the stop
    flag at arena word ``stop_word``."""
    w = arena.w
    if overrides is not None:
        if len(overrides) > MAX_OVER:
            raise ValueError(f"a schedule has at most {MAX_OVER} overrides")
        w[rec + D_REPLAY], w[rec + D_NOVER] = 1, len(overrides)
        o = _over(rec, n)
        for j, (pick, lwp) in enumerate(sorted(overrides)):
            w[o + 2 * j], w[o + 2 * j + 1] = pick, lwp
    rng = random.Random(f"rumpmp-det:{seed}")
    k = 10
    w[rec + D_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    w[rec + D_N], w[rec + D_TURN], w[rec + D_END], w[rec + D_STOPW] = n, -1, end, stop_word
    w[rec + D_K] = k
    changes = sorted(rng.sample(range(1, max(2, end * k)), min(3, max(1, end * k - 1))))
    w[rec + D_NCHANGE] = len(changes)
    for j, step in enumerate(changes[:MAX_CHANGES]):
        w[rec + D_CHANGES + j] = step
    prios = rng.sample(range(MAX_CHANGES + 1, MAX_CHANGES + 1 + n), n)
    for i in range(n):
        p = rec + D_PART + i * P_WORDS
        w[p + P_PRIO], w[p + P_DEADLINE] = prios[i], -1
    arena.w[_arena.H_DET] = rec


def switch(on: bool) -> None:
    """This process takes part in (or leaves) the kernel's deterministic run."""
    state.on = on


def participant() -> int | None:
    return getattr(_me, "i", None)


class _Run:
    """This process's view of the run's record."""

    def __init__(self, arena: Arena) -> None:
        self.arena, self.w = arena, arena.w
        self.r = arena.w[_arena.H_DET]
        self.lock = sync.Mutex.attach(arena.pool, self.w[self.r + D_LOCK], sync.MTX_SPIN)

    def p(self, i: int) -> int:
        return self.r + D_PART + i * P_WORDS


def _run() -> _Run:
    arena = _arena.current()
    return arena.attached(("det", arena.w[_arena.H_DET]), lambda: _Run(arena))


def register(i: int) -> None:
    """Torture lwp ``i`` joins; it waits for the baton (which the last to join hands
    to the highest priority, so that start order does not matter)."""
    run = _run()
    w, p = run.w, run.p(i)
    _me.i = i
    lid = thread.curlwp()
    run.lock.enter_nowrap()
    w[p + P_PARK] = w[tables(run.arena).lwp(lid) + L_PARK]
    w[p + P_LID] = lid
    w[run.r + D_NREG] += 1
    nxt = _pick(run) if w[run.r + D_NREG] == w[run.r + D_N] else -1
    run.lock.exit()
    _hand_to(run, i, nxt)


def point() -> None:
    """A hand-over point: the baton may go to another participant."""
    i = participant()
    if i is None:
        return
    run = _run()
    run.lock.enter_nowrap()
    _advance(run, i)
    nxt = _pick(run)
    run.lock.exit()
    _hand_to(run, i, nxt)


def block(key: int, ticks: int) -> bool:
    """The caller waits for ``key`` (or ``ticks`` virtual ticks, 0 for no limit):
    the baton goes on until someone unblocks it; whether it timed out."""
    i = participant()
    assert i is not None
    run = _run()
    w, p = run.w, run.p(i)
    run.lock.enter_nowrap()
    w[p + P_STATUS], w[p + P_KEY], w[p + P_TIMEDOUT] = BLOCKED, key, 0
    w[p + P_DEADLINE] = w[run.r + D_VNOW] + ticks if ticks > 0 else -1
    _advance(run, i)
    nxt = _pick(run)
    run.lock.exit()
    _hand_to(run, i, nxt)
    return bool(w[p + P_TIMEDOUT])


def unblock(key: int, one: bool = False) -> None:
    """Every participant blocked on ``key`` may run again (after mutex_exit, wakeup,
    cv_broadcast), or with ``one`` the lowest-numbered of them (cv_signal)."""
    run = _run()
    w = run.w
    run.lock.enter_nowrap()
    for j in range(w[run.r + D_N]):
        p = run.p(j)
        if w[p + P_STATUS] == BLOCKED and w[p + P_KEY] == key:
            w[p + P_STATUS], w[p + P_DEADLINE] = RUNNABLE, -1
            if one:
                break
    run.lock.exit()


def finish() -> None:
    """The caller is done: the baton goes on for good."""
    i = participant()
    if i is None:
        return
    run = _run()
    run.lock.enter_nowrap()
    run.w[run.p(i) + P_STATUS] = DONE
    nxt = _pick(run)
    run.lock.exit()
    _me.i = None
    _hand_to(run, -1, nxt)


def schedule(arena: Arena) -> dict[str, object]:
    """The run's schedule (the host reads it at the end): steps, choices, digest,
    whether it deadlocked, and its overrides (see above)."""
    w, r = arena.w, arena.w[_arena.H_DET]
    o = _over(r, w[r + D_N])
    return {
        "steps": w[r + D_STEP],
        "choices": w[r + D_NPICK],
        "digest": f"{w[r + D_DIGEST]:016x}",
        "deadlock": bool(w[r + D_DEAD]),
        "complete": not w[r + D_OVERFLOW],
        "overrides": [[w[o + 2 * j], w[o + 2 * j + 1]] for j in range(w[r + D_NOVER])],
    }


# -- the scheduler (caller holds the record's lock) ---------------------------------


def _advance(run: _Run, i: int) -> None:
    """One step: virtual time, deadlines reached, a change point, the end."""
    w, r = run.w, run.r
    w[r + D_STEP] += 1
    step = w[r + D_STEP]
    _set_time(run, max(w[r + D_VNOW], step // w[r + D_K]))
    changes = w[r + D_CHANGES : r + D_CHANGES + w[r + D_NCHANGE]]
    if step in changes.tolist():
        low = min(w[run.p(j) + P_PRIO] for j in range(w[r + D_N]))
        w[run.p(i) + P_PRIO] = low - 1


def _set_time(run: _Run, now: int) -> None:
    w, r = run.w, run.r
    w[r + D_VNOW] = now
    for j in range(w[r + D_N]):
        p = run.p(j)
        if w[p + P_STATUS] == BLOCKED and 0 <= w[p + P_DEADLINE] <= now:
            w[p + P_STATUS], w[p + P_DEADLINE], w[p + P_TIMEDOUT] = RUNNABLE, -1, 1
    if now >= w[r + D_END]:
        w[w[r + D_STOPW]] = 1  # the run is over: its lwps finish their steps


def _pick(run: _Run) -> int:
    """The next holder of the baton (-1 if nobody can run), recorded in the digest."""
    w, r, n = run.w, run.r, run.w[run.r + D_N]
    runnable = [j for j in range(n) if w[run.p(j) + P_STATUS] == RUNNABLE]
    if not runnable:
        deadlines = [
            w[run.p(j) + P_DEADLINE]
            for j in range(n)
            if w[run.p(j) + P_STATUS] == BLOCKED and w[run.p(j) + P_DEADLINE] >= 0
        ]
        if deadlines:
            _set_time(run, min(deadlines))
            runnable = [j for j in range(n) if w[run.p(j) + P_STATUS] == RUNNABLE]
    if not runnable:
        if any(w[run.p(j) + P_STATUS] == BLOCKED for j in range(n)):
            w[r + D_DEAD] = 1
        w[r + D_TURN] = -1
        return -1
    holder = w[r + D_TURN]
    plain = holder if holder in runnable else runnable[0]
    pick = w[r + D_NPICK]
    w[r + D_NPICK] = pick + 1
    if w[r + D_REPLAY]:
        nxt = _override(run, pick, runnable, plain)
    else:
        nxt = max(runnable, key=lambda j: (w[run.p(j) + P_PRIO], -j))
        if nxt != plain:
            _log_override(run, pick, nxt)
    w[r + D_DIGEST] = (w[r + D_DIGEST] * 1000003 ^ (pick << 8 | nxt)) & _MASK
    w[r + D_TURN] = nxt
    return nxt


def _override(run: _Run, pick: int, runnable: list[int], plain: int) -> int:
    """Replay: the given choice for this pick, if there is one it can take."""
    w, r = run.w, run.r
    o = _over(r, w[r + D_N])
    lo, hi = 0, w[r + D_NOVER]
    while lo < hi:  # (the overrides are sorted by pick)
        mid = (lo + hi) // 2
        if w[o + 2 * mid] < pick:
            lo = mid + 1
        else:
            hi = mid
    if lo < w[r + D_NOVER] and w[o + 2 * lo] == pick and w[o + 2 * lo + 1] in runnable:
        return w[o + 2 * lo + 1]
    return plain


def _log_override(run: _Run, pick: int, lwp: int) -> None:
    w, r = run.w, run.r
    n = w[r + D_NOVER]
    if n >= MAX_OVER:
        w[r + D_OVERFLOW] = 1
        return
    o = _over(r, w[r + D_N])
    w[o + 2 * n], w[o + 2 * n + 1] = pick, lwp
    w[r + D_NOVER] = n + 1


def _hand_to(run: _Run, me: int, nxt: int) -> None:
    """Give the baton to ``nxt`` (post it) and wait until it comes back to ``me``."""
    if nxt >= 0 and nxt != me:
        run.arena.pool.unpark(run.w[run.p(nxt) + P_PARK])
    if me >= 0:
        turn = run.r + D_TURN
        run.arena.pool.park_spinning(run.w[run.p(me) + P_PARK], lambda: run.w[turn] == me)
