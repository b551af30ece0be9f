"""The kernel trace: what each CPU did, in a bounded ring of events per CPU.

In the spirit of NetBSD's kernhist(9) (kernel history rings), switched on per kernel
at boot (``boot(trace=PATH)``, ``--trace PATH``).  Each CPU writes its own ring in
the "kernhist" region: an lwp starts holding the CPU or lets it go (waiting for a
lock, asleep on a channel), wakes another lwp, takes a contended lock, sends or
serves a cross-call, runs a softint or a callout, and every clock tick.  The host
reads the rings (``events``) and writes them out as a timeline
(``rumpmp.host.trace``).

Writers of one ring all live in its CPU's process (the lwp holding the CPU and the
CPU's clock thread), so a slot is reserved with ``next()`` on a per-process counter
(atomic under the GIL) and no lock is taken.  A full ring overwrites its oldest
events; each event carries its number, so a reader sees what was dropped.

Off, it costs the hooks one test of ``state.on``.
"""

from __future__ import annotations

import itertools

from hypercalls import clock, thread
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys import kernhist as K
from rumpmp.sys.lwp import L_CPU


class _Ring:
    """This CPU process's ring (one CPU per process)."""

    def __init__(self) -> None:
        self.on = False
        self.w = memoryview(b"").cast("q")
        self.base = 0
        self.cap = 1
        self.seq = itertools.count()


state = _Ring()


def ring_word(arena: Arena, cpu: int) -> int:
    cap = arena.w[arena.region_word("kernhist") + K.K_CAP]
    return arena.region_word("kernhist") + K.K_HDR_WORDS + cpu * K.ring_words(cap)


def kernhist_init(arena: Arena, events: int) -> None:
    """Size the rings (the host, at boot, as laid out by ``K.region``); 0: no trace."""
    arena.w[arena.region_word("kernhist") + K.K_CAP] = events


def kernhist_init_cpu(arena: Arena, cpu: int) -> None:
    """Start writing this CPU's ring, if the kernel traces."""
    cap = arena.w[arena.region_word("kernhist") + K.K_CAP]
    if cap:
        state.w, state.base, state.cap = arena.w, ring_word(arena, cpu), cap
        state.seq = itertools.count()
        state.on = True


def emit(kind: int, lwp: int, a: int = 0, b: int = 0, ts: int = 0) -> None:
    """Record an event on this CPU (callers test ``state.on`` first); ``ts`` if the
    moment was taken before (a wake-up is stamped before the wakee can run)."""
    w = state.w
    n = next(state.seq)
    v = state.base + (n % state.cap) * K.V_WORDS
    w[v + K.V_SEQ] = 0  # being rewritten: a reader skips it
    w[v + K.V_TS] = ts or clock.monotonic_ns()
    w[v + K.V_KIND] = kind
    w[v + K.V_LWP] = lwp
    w[v + K.V_A] = a
    w[v + K.V_B] = b
    w[v + K.V_SEQ] = n + 1


def woke(arena: Arena, lids: list[int], ts: int) -> None:
    """Record that the running lwp woke ``lids`` (owner tokens: an lwp id, or a
    host thread's negative token, which is left out), at ``ts``."""
    t = tables(arena)
    waker = thread.curlwp()
    for lid in lids:
        if lid > 0:
            emit(K.EV_WAKE, lid, waker, arena.w[t.lwp(lid) + L_CPU], ts)


def now() -> int:
    """The trace's clock (ns), for callers that time what they record."""
    return clock.monotonic_ns()


def events(arena: Arena, cpu: int) -> tuple[list[tuple[int, ...]], int]:
    """CPU ``cpu``'s events, oldest first, as (seq, ts, kind, lwp, a, b), and how
    many older ones the ring dropped."""
    cap = arena.w[arena.region_word("kernhist") + K.K_CAP]
    base = ring_word(arena, cpu)
    words = arena.w[base : base + K.ring_words(cap)].tolist()
    got = sorted(
        tuple(words[i : i + K.V_WORDS])
        for i in range(0, len(words), K.V_WORDS)
        if words[i + K.V_SEQ]
    )
    dropped = got[0][0] - 1 if got else 0
    return got, dropped


def tracing(arena: Arena) -> bool:
    """Whether the kernel records a trace."""
    return bool(arena.w[arena.region_word("kernhist") + K.K_CAP])
