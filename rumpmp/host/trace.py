"""A kernel's trace as a timeline: the Chrome trace-event JSON format, which Perfetto
(ui.perfetto.dev) and chrome://tracing open.

One track per CPU (pid 1, tid = the CPU).  On it: a slice for each stretch an lwp
held the CPU (named after the lwp, with what it then blocked on), slices for the
cross-calls, softints and callouts it ran, and marks for contended locks, cross-calls
sent and clock ticks.  A flow arrow goes from each wake-up, on the waker's CPU, to
the first run of the woken lwp after it.  The rings' drops are in ``otherData``.
"""

from __future__ import annotations

import bisect
import errno
import json
import pathlib
from typing import Any, NamedTuple

from rumpmp.rumpkern.base import kernhist
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.locking import lockstat
from rumpmp.sys import kernhist as K

PID = 1  # every track belongs to one "process": the kernel

Event = tuple[int, ...]  # (seq, ts, kind, lwp, a, b), as kernhist.events gives them


class TraceSummary(NamedTuple):
    """What ``write`` wrote: the file, the events and what each CPU's ring dropped."""

    path: str
    events: int
    dropped: list[int]


def write(arena: Arena, path: str | pathlib.PurePath) -> TraceSummary:
    """Write the kernel's trace to ``path`` (EINVAL if the kernel does not trace)."""
    if not kernhist.tracing(arena):
        raise OSError(errno.EINVAL, "the kernel records no trace: boot it with trace=PATH")
    rings = [kernhist.events(arena, cpu) for cpu in range(arena.ncpu)]
    doc = chrome_trace(arena, [events for events, _ in rings], [d for _, d in rings])
    with open(path, "w") as f:
        json.dump(doc, f)
    return TraceSummary(str(path), sum(len(e) for e, _ in rings), [d for _, d in rings])


def chrome_trace(arena: Arena, rings: list[list[Event]], dropped: list[int]) -> dict[str, Any]:
    """The trace-event document for the CPUs' events (each ring oldest first)."""
    names = _Names(arena)
    out: list[dict[str, Any]] = [_meta("process_name", None, f"rumpmp kernel {arena.prefix}")]
    runs = []  # per CPU: sorted (start, end, lwp, its OFF event) of each run
    for cpu, events in enumerate(rings):
        out.append(_meta("thread_name", cpu, f"cpu{cpu}"))
        out.append(_meta("thread_sort_index", cpu, cpu))
        runs.append(_runs(events))
    base = min((e[K.V_TS] for events in rings for e in events), default=0)

    def us(ns: int) -> float:
        return (ns - base) / 1000

    for cpu, (events, cpu_runs) in enumerate(zip(rings, runs, strict=True)):
        for start, end, lwp, off in cpu_runs:
            args = {"lwp": lwp, "then": names.blocked_on(off)}
            out.append(_slice(cpu, names.lwp(lwp), us(start), us(end), "run", args))
        for e in events:
            out += _marks(cpu, e, us, names, cpu_runs)
    out += _flows(rings, runs, us)
    return {
        "traceEvents": out,
        "displayTimeUnit": "ns",
        "otherData": {"kernel": arena.prefix, "ncpu": arena.ncpu, "dropped": dropped},
    }


class _Names:
    """What the trace's numbers name: lwps and locks."""

    def __init__(self, arena: Arena) -> None:
        self.t = tables(arena)
        self.locks = lockstat.lock_names(arena)

    def lwp(self, lid: int) -> str:
        try:
            name = self.t.lwp_name(lid)
        except (OSError, IndexError, KeyError):
            name = ""
        return f"lwp {lid} {name}".rstrip()

    def lock(self, rec: int) -> str:
        return self.locks.get(rec, f"lock@{rec:#x}")

    def blocked_on(self, off: Event | None) -> str:
        if off is None:
            return "still running"
        lock, wchan = off[K.V_A], off[K.V_B]
        if lock:
            return f"waits for {self.lock(lock)}"
        return f"sleeps on {wchan:#x}" if wchan else "yields or ends"


def _runs(events: list[Event]) -> list[tuple[int, int, int, Event | None]]:
    """(start, end, lwp, the OFF event) of each stretch an lwp held the CPU; one still
    running ends at the ring's last event."""
    last = max((e[K.V_TS] for e in events), default=0)
    open_: dict[int, int] = {}
    out: list[tuple[int, int, int, Event | None]] = []
    for e in events:
        kind, lwp, ts = e[K.V_KIND], e[K.V_LWP], e[K.V_TS]
        if kind == K.EV_RUN:
            open_[lwp] = ts
        elif kind == K.EV_OFF and lwp in open_:
            out.append((open_.pop(lwp), ts, lwp, e))
    out += [(ts, last, lwp, None) for lwp, ts in open_.items()]
    return sorted(out)


def _meta(what: str, tid: int | None, value: object) -> dict[str, Any]:
    key = "sort_index" if what.endswith("sort_index") else "name"
    ev: dict[str, Any] = {"ph": "M", "name": what, "pid": PID, "args": {key: value}}
    if tid is not None:
        ev["tid"] = tid
    return ev


def _slice(cpu: int, name: str, ts: float, end: float, cat: str, args: dict) -> dict[str, Any]:
    return {"ph": "X", "name": name, "cat": cat, "pid": PID, "tid": cpu, "ts": ts,
            "dur": max(end - ts, 0.0), "args": args}  # fmt: skip


def _mark(cpu: int, name: str, ts: float, cat: str, args: dict) -> dict[str, Any]:
    return {"ph": "i", "s": "t", "name": name, "cat": cat, "pid": PID, "tid": cpu, "ts": ts,
            "args": args}  # fmt: skip


def _marks(cpu: int, e: Event, us: Any, names: _Names, runs: list) -> list[dict[str, Any]]:
    """The slices and marks one event draws (runs and wake-ups are drawn apart)."""
    kind, ts, lwp, a, b = e[K.V_KIND], e[K.V_TS], e[K.V_LWP], e[K.V_A], e[K.V_B]
    if kind == K.EV_LOCK:
        args = {"lwp": lwp, "waited_us": b / 1000}
        return [_mark(cpu, f"contended {names.lock(a)}", us(ts), "lock", args)]
    if kind == K.EV_XC_SEND:
        to = "all" if a == -1 else f"cpu{a}"
        return [_mark(cpu, f"xcall to {to}", us(ts), "xcall", {"lwp": lwp, "ticket": b})]
    if kind == K.EV_TICK:
        return [_mark(cpu, "tick", us(ts), "clock", {"tick": a})]
    handler = {K.EV_XC_SERVE: "xcall", K.EV_SOFTINT: "softint", K.EV_CALLOUT: "callout"}
    if kind not in handler:
        return []
    what = {K.EV_XC_SERVE: f"xcall {a}", K.EV_SOFTINT: f"softint level {a}"}.get(
        kind, f"callout@{a:#x}"
    )
    start, args = ts - b, {"lwp": lwp, "us": b / 1000}
    if _inside(runs, start, ts):  # a slice nests in its lwp's run ...
        return [_slice(cpu, what, us(start), us(ts), handler[kind], args)]
    return [_mark(cpu, what, us(ts), handler[kind], args)]  # ... unless it blocked meanwhile


def _inside(runs: list, start: int, end: int) -> bool:
    i = bisect.bisect_right(runs, (start, float("inf"))) - 1
    return i >= 0 and runs[i][0] <= start and end <= runs[i][1]


def _flows(rings: list[list[Event]], runs: list[list], us: Any) -> list[dict[str, Any]]:
    """An arrow from each wake-up to the first run of the woken lwp after it."""
    starts: dict[int, list[tuple[int, int]]] = {}  # lwp -> sorted (run start, cpu)
    for cpu, cpu_runs in enumerate(runs):
        for start, _, lwp, _ in cpu_runs:
            starts.setdefault(lwp, []).append((start, cpu))
    for s in starts.values():
        s.sort()
    out: list[dict[str, Any]] = []
    for cpu, events in enumerate(rings):
        for e in events:
            if e[K.V_KIND] != K.EV_WAKE:
                continue
            woken, ts = e[K.V_LWP], e[K.V_TS]
            later = starts.get(woken, [])
            i = bisect.bisect_left(later, (ts, -1))
            if i == len(later):
                continue  # it had not run again when the trace was read
            run_ts, run_cpu = later[i]
            flow = {"name": "wakeup", "cat": "wakeup", "pid": PID, "id": len(out) // 2 + 1}
            args = {"waker": e[K.V_A], "woken": woken}
            out.append({**flow, "ph": "s", "tid": cpu, "ts": us(ts), "args": args})
            out.append({**flow, "ph": "f", "bp": "e", "tid": run_cpu, "ts": us(run_ts)})
    return out
