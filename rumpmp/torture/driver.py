"""The host side of a torture run: boot, start the lwps, perturb, watch, stop, judge.

This module runs in the host, not on a CPU, so it uses the host directly: it moves
the CPU processes between host cores (``--shuffle``) and stops and continues them
(``--freeze``) with ``os``, and waits out the duration with ``time``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os  # the driver may: sched_setaffinity and SIGSTOP/SIGCONT on the CPU processes
import random
import shlex
import signal  # the driver may: SIGSTOP/SIGCONT for --freeze
import tempfile
import time  # the driver may: it waits out the run's duration
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rumpmp.host.kernel import Kernel, boot
from rumpmp.host.lockstat import TOP_LOCKS, lockstat_table
from rumpmp.rumpkern.base import detsched
from rumpmp.rumpkern.locking.lockstat import LockStat
from rumpmp.torture import layout as L
from rumpmp.torture import lwps
from rumpmp.torture.base import Torture, TortureType, int64_view
from rumpmp.torture.registry import resolve_type, type_spec

TYPES = L.TYPES
#: The most torture lwps a run may have (the shared words are sized for it).
MAX_LWPS = 256
#: After the stop, the torture lwps are waited for as long as they make progress (an
#: acquisition, an lwp finishing) at least every STALL_TIMEOUT seconds, so a busy host
#: only makes the run slower; a run that stalls that long reports what did not finish.
STALL_TIMEOUT = 30.0
JOIN_LIMIT = 600.0  # and never longer than this in all
JOIN_TIMEOUT = 60.0  # the final checks, once every lwp has finished
DESCRIBE_TIMEOUT = 10.0
MIN_DURATION = 0.01  # s: minimize shortens a deterministic run to a tick at most
FREEZE_TICKS = 3


@dataclass
class Counts:
    """locktorture's statistics line: acquisitions over lwps of one role."""

    total: int = 0
    max: int = 0
    min: int = 0
    fail: int = 0

    @property
    def unfair(self) -> bool:
        """locktorture's ``???``: some lwp got less than half of the busiest one's."""
        return self.max // 2 > self.min

    def line(self, type_: str, label: str) -> str:
        return (
            f"{type_}-torture: {label}:  Total: {self.total}  Max/Min: {self.max}/{self.min} "
            f"{'???' if self.unfair else ''}  Fail: {self.fail} {'!!!' if self.fail else ''}"
        ).rstrip()


@dataclass
class Failure:
    """A torture lwp's violations: how many, and what it saw the first time."""

    lwp: int
    index: int
    role: str
    cpu: int
    what: str
    seen: int
    expected: int
    count: int

    def line(self, type_: str) -> str:
        return (
            f"{type_}-torture: !!! lwp {self.lwp} ({self.role} {self.index}) on cpu{self.cpu}: "
            f"{self.what}: saw {self.seen}, expected {self.expected} ({self.count} times)"
        )


@dataclass
class Params:
    """A run's parameters (locktorture's names where they fit)."""

    type: str = "mutex"
    ncpu: int = 4
    nwriters: int | None = None
    nreaders: int | None = None
    duration: float = 10.0
    stat_interval: float = 0.0
    long_hold: int = 100
    nested: int = 0
    lockdebug: bool = False
    seed: int | None = None
    stutter: float = 0.0
    shuffle: float = 0.0
    freeze: float = 0.0
    perturb: bool = True
    deterministic: bool = False
    #: A schedule to replay (a file with a run's JSON result, or its "schedule").
    replay_schedule: str | None = None
    lockstat: bool = False  # count lock contention: the report ends with lockstat's table
    trace: str | None = None  # write the kernel's trace here (Chrome trace-event JSON)

    def resolve(self) -> Params:
        """Check every parameter and fill in the defaults (the type's: locktorture's
        two writers per CPU for an exclusive lock, one reader and one writer per CPU
        for a type with readers)."""
        kind = resolve_type(self.type)
        for name in ("ncpu", "long_hold", "nested"):
            _check_int(name, getattr(self, name), 1 if name == "ncpu" else 0)
        for name in ("nwriters", "nreaders", "seed"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0)
        for name in ("duration", "stat_interval", "stutter", "shuffle", "freeze"):
            _check_number(name, getattr(self, name), positive=name == "duration")
        p = Params(**asdict(self))
        if p.nwriters is None:
            p.nwriters = kind.writers_per_cpu * p.ncpu
        if p.nreaders is None:
            p.nreaders = kind.readers_per_cpu * p.ncpu if kind.reader else 0
        name = kind.type_name()
        if p.nwriters < 1:
            raise ValueError(f"nwriters: a {name} run needs writers")
        if p.nreaders and kind.reader is None:
            raise ValueError(f"nreaders: the {name} type has no readers")
        if p.nwriters + p.nreaders > MAX_LWPS or p.nested > 8:
            raise ValueError(f"nwriters + nreaders must be at most {MAX_LWPS}, nested at most 8")
        if p.nested and not kind.takes_nested:
            raise ValueError(f"nested: the {name} type takes no nested locks")
        if p.replay_schedule is not None:
            p.deterministic = True
        if p.deterministic:
            if not kind.deterministic:
                raise ValueError(f"deterministic: the {name} type cannot be scheduled so")
            if p.stutter or p.shuffle or p.freeze:
                raise ValueError("deterministic: stutter, shuffle and freeze act on wall time")
            p.perturb = False  # the seed chooses the schedule instead
        if p.seed is None:
            p.seed = random.SystemRandom().randrange(1 << 32)
        return p

    def argv(self) -> list[str]:
        """The command line that replays this run."""
        out = ["python", "-m", "rumpmp", "stress"]
        for name, value in asdict(self).items():
            flag = "--" + name.replace("_", "-")
            if name == "perturb":
                out += [] if value else ["--no-perturb"]
            elif name in ("lockdebug", "deterministic", "lockstat"):
                out += [flag] if value else []
            elif value is not None:
                out += [flag, _fmt(value)]
        return out

    def line(self) -> str:
        return " ".join(
            f"{n}={int(v) if isinstance(v, bool) else _fmt(v)}" for n, v in asdict(self).items()
        )


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_int(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, not {value}")


def _check_number(name: str, value: object, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value < 0 or (positive and value <= 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'at least 0'}, not {value}")


@dataclass
class Snapshot:
    """The counts at one moment of a run."""

    elapsed: float
    writes: Counts
    reads: Counts | None
    per_cpu: list[int]


@dataclass
class Result:
    """What a torture run found."""

    params: Params
    success: bool
    elapsed: float
    writes: Counts
    reads: Counts | None
    failures: list[Failure]
    intervals: list[Snapshot]
    per_cpu: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    panic: str | None = None
    #: The torture lwps that did not finish (the run stalled): what each was doing.
    unfinished: list[dict[str, Any]] = field(default_factory=list)
    #: The wait-for cycle among them, a line per lwp, if the stall is a deadlock.
    deadlock: list[str] = field(default_factory=list)
    #: lockstat's rows at the end of the run (with ``lockstat=True``).
    lockstat: list[LockStat] | None = None

    @property
    def seed(self) -> int:
        assert self.params.seed is not None
        return self.params.seed

    @property
    def replay(self) -> str:
        return shlex.join(self.params.argv())

    def lines(self) -> list[str]:
        """The end of the report, as locktorture prints it."""
        t = self.params.type
        out = [self.writes.line(t, "Writes")]
        if self.reads is not None:
            out.append(self.reads.line(t, "Reads "))
        out += [f.line(t) for f in self.failures]
        for u in self.unfinished:
            held = f", holding lock {', '.join(map(str, u['holds']))}" if u["holds"] else ""
            out.append(
                f"{t}-torture: !!! lwp {u['lwp']} ({u['role']} {u['index']}) on cpu{u['cpu']} "
                f"did not finish: {u['state']}{held}"
            )
        if self.deadlock:
            out.append(f"{t}-torture: !!! deadlock: " + "; ".join(self.deadlock))
        if self.panic:
            out.append(f"{t}-torture: !!! the kernel panicked: {self.panic}")
        for name, value in self.extra.items():
            if name == "schedule":  # (the JSON has all of it)
                value = (
                    f"{value['choices']} choices, {len(value['overrides'])} preemptions, "
                    f"digest {value['digest']}"
                )
            out.append(f"{t}-torture: {name}: {value}")
        if self.lockstat is not None:
            out += lockstat_table(self.lockstat, TOP_LOCKS, self.elapsed)
        verdict = "SUCCESS" if self.success else "FAILURE"
        out.append(f"{t}-torture:--- End of test: {verdict}: {self.params.line()}")
        if not self.success:
            out.append(f"{t}-torture: replay: {self.replay}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result (its fields are documented in the README)."""
        return {
            "version": 1,
            "type": self.params.type,
            "seed": self.seed,
            "success": self.success,
            "params": asdict(self.params),
            "elapsed": round(self.elapsed, 3),
            "writes": asdict(self.writes),
            "reads": asdict(self.reads) if self.reads is not None else None,
            "intervals": [
                {
                    "elapsed": round(s.elapsed, 3),
                    "writes": asdict(s.writes),
                    "reads": asdict(s.reads) if s.reads is not None else None,
                }
                for s in self.intervals
            ],
            "per_cpu": self.per_cpu,
            "failures": [asdict(f) for f in self.failures],
            "extra": self.extra,
            "panic": self.panic,
            "unfinished": self.unfinished,
            "deadlock": self.deadlock,
            "lockstat": None if self.lockstat is None else [r._asdict() for r in self.lockstat],
            "replay": self.replay,
        }


# -- reading the record -----------------------------------------------------------------


def _counts(w: memoryview, indexes: range) -> Counts | None:
    if not indexes:
        return None
    acq = [w[L.record(i) + L.R_ACQ] for i in indexes]
    fail = sum(w[L.record(i) + L.R_FAIL] for i in indexes)
    return Counts(sum(acq), max(acq), min(acq), fail)


def _snapshot(p: Params, w: memoryview, elapsed: float) -> Snapshot:
    assert p.nwriters is not None and p.nreaders is not None
    writes = _counts(w, range(p.nwriters))
    assert writes is not None
    reads = _counts(w, range(p.nwriters, p.nwriters + p.nreaders))
    per_cpu = [0] * p.ncpu
    for i in range(p.nwriters + p.nreaders):
        per_cpu[i % p.ncpu] += w[L.record(i) + L.R_ACQ]
    return Snapshot(elapsed, writes, reads, per_cpu)


def _failures(p: Params, w: memoryview) -> list[Failure]:
    assert p.nwriters is not None and p.nreaders is not None
    kind = resolve_type(p.type)
    out = []
    for i in range(p.nwriters + p.nreaders):
        r = L.record(i)
        if w[r + L.R_FAIL]:
            role = "reader" if w[r + L.R_ROLE] == L.READER else "writer"
            out.append(
                Failure(
                    lwp=w[r + L.R_LWP],
                    index=i,
                    role=role,
                    cpu=w[r + L.R_CPU],
                    what=kind.kind_text(w[r + L.R_WHAT]),
                    seen=w[r + L.R_SEEN],
                    expected=w[r + L.R_WANT],
                    count=w[r + L.R_FAIL],
                )
            )
    return out


# -- perturbing the CPU processes from the host -------------------------------------------


class _Perturber:
    """Stutter, shuffle and freeze, each on its own period; choices from the seed."""

    def __init__(self, k: Kernel, p: Params, w: memoryview, start: float) -> None:
        self.k, self.p, self.w = k, p, w
        self.rng = random.Random(f"rumpmp-torture-host:{p.seed}")
        self.cores = sorted(os.sched_getaffinity(0))
        self.due = {
            name: start + period
            for name, period in (
                ("stutter", p.stutter),
                ("shuffle", p.shuffle),
                ("freeze", p.freeze),
            )
            if period
        }

    def next_due(self) -> float:
        return min(self.due.values(), default=float("inf"))

    def act(self, now: float) -> None:
        for name, due in list(self.due.items()):
            if now >= due:
                getattr(self, name)()
                self.due[name] = now + getattr(self.p, name)

    def stutter(self) -> None:
        """Every S seconds the torture lwps stop for S seconds (locktorture's stutter)."""
        self.w[L.H_PAUSE] = 0 if self.w[L.H_PAUSE] else 1

    def shuffle(self) -> None:
        for pid in self.k.cpu_pids():
            self._affinity(pid, {self.rng.choice(self.cores)})

    def freeze(self) -> None:
        pid = self.rng.choice(self.k.cpu_pids())
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE_TICKS / self.k.hz)
        finally:
            os.kill(pid, signal.SIGCONT)

    def undo(self) -> None:
        self.w[L.H_PAUSE] = 0
        if "shuffle" in self.due:
            for pid in self.k.cpu_pids():
                self._affinity(pid, set(self.cores))

    @staticmethod
    def _affinity(pid: int, cores: set[int]) -> None:
        with contextlib.suppress(ProcessLookupError):  # a CPU that died: the run says so
            os.sched_setaffinity(pid, cores)


# -- a run -----------------------------------------------------------------------------------


def run(
    type: str | builtins.type[TortureType] = "mutex",
    *,
    on_interval: Callable[[Snapshot], None] | None = None,
    on_tick: Callable[[Snapshot], None] | None = None,
    **params: Any,
) -> Result:
    """Run one torture test on a fresh kernel and return what it found.

    ``type`` is a built-in type's name, a ``TortureType`` subclass, a name under the
    entry point group ``rumpmp.torture_types`` or ``package.module:Class``.
    ``params`` are those of ``Params`` (``ncpu``, ``nwriters``, ``nreaders``,
    ``duration``, ``stat_interval``, ``long_hold``, ``nested``, ``lockdebug``,
    ``seed``, ``stutter``, ``shuffle``, ``freeze``, ``perturb``).  ``on_interval``
    gets the counts every ``stat_interval`` seconds; ``on_tick`` about twice a
    second (for a live display).
    """
    unknown = set(params) - set(Params.__dataclass_fields__)
    if unknown:
        raise TypeError(f"run() got unknown parameters: {', '.join(sorted(unknown))}")
    spec = type if isinstance(type, str) else type_spec(resolve_type(type))
    p = Params(type=spec, **params).resolve()
    assert p.nwriters is not None and p.nreaders is not None and p.seed is not None
    k = boot(p.ncpu, lockdebug=p.lockdebug, lockstat=p.lockstat, trace=p.trace)
    try:
        return _run_on(k, p, on_interval, on_tick)
    finally:
        if k.state == "running":
            k.halt()


def _run_on(
    k: Kernel,
    p: Params,
    on_interval: Callable[[Snapshot], None] | None,
    on_tick: Callable[[Snapshot], None] | None,
) -> Result:
    if p.perturb:
        k.xc_broadcast(0, lwps.perturb_on, p.seed)
    kind = resolve_type(p.type)
    t = k.run(lwps.setup, kind, p.ncpu, p.nwriters, p.nreaders, p.seed, p.long_hold, p.nested)
    if p.deterministic:  # it ends at a virtual time: the duration in ticks
        overrides = load_schedule(p.replay_schedule) if p.replay_schedule else None
        t = k.run(lwps.det_setup, t, max(1, round(p.duration * k.hz)), overrides)
        k.xc_broadcast(0, lwps.det_switch, True)
    w = int64_view(t.stats)  # let go before the halt, which unmaps the arena
    try:
        start = time.monotonic()
        t = k.run(lwps.start, t)
        if p.deterministic:
            intervals: list[Snapshot] = []  # (nothing to watch: the run stops itself)
        else:
            intervals = _watch(k, p, w, start, on_interval, on_tick)
        return _judge(k, p, t, w, time.monotonic() - start, intervals)
    finally:
        w.release()


def _watch(
    k: Kernel,
    p: Params,
    w: memoryview,
    start: float,
    on_interval: Callable[[Snapshot], None] | None,
    on_tick: Callable[[Snapshot], None] | None,
) -> list[Snapshot]:
    """Perturb and report until the duration is over (or the kernel is down), then
    tell the torture lwps to stop; the interval snapshots."""
    perturber = _Perturber(k, p, w, start)
    intervals: list[Snapshot] = []
    next_stat = start + (p.stat_interval or float("inf"))
    next_tick = start + 0.5
    end = start + p.duration
    try:
        while (now := time.monotonic()) < end and k.state == "running":
            perturber.act(now)
            if now >= next_stat:
                intervals.append(_snapshot(p, w, now - start))
                if on_interval:
                    on_interval(intervals[-1])
                next_stat += p.stat_interval
            if now >= next_tick:
                if on_tick:
                    on_tick(_snapshot(p, w, now - start))
                next_tick += 0.5
            time.sleep(max(0.0, min(end, next_stat, next_tick, perturber.next_due()) - now))
    finally:
        perturber.undo()
        w[L.H_STOP] = 1
    return intervals


def _judge(
    k: Kernel,
    p: Params,
    t: Torture,
    w: memoryview,
    elapsed: float,
    intervals: list[Snapshot],
) -> Result:
    panic = None
    per_cpu_decisions: list[Any] = [None] * p.ncpu
    extra: dict[str, Any] = {}
    stall = _wait_finished(k, p, t, w)
    if stall is None:  # (else a join would wait for them: the report says what they do)
        try:
            extra = k.run(lwps.join, t, timeout=JOIN_TIMEOUT)
            if p.perturb:
                per_cpu_decisions = k.xc_broadcast(0, lwps.perturb_off)
        except Exception as e:  # noqa: BLE001 - a kernel that fails under torture is the finding
            panic = f"{type(e).__name__}: {e}"
    if p.deterministic and k.state == "running":
        extra["schedule"] = k.run(lwps.det_schedule, t, timeout=JOIN_TIMEOUT)
    result = _result(p, w, elapsed, intervals, per_cpu_decisions, extra, panic, stall)
    if p.lockstat and k.state == "running":
        result.lockstat = k.lockstat()
    return result


def _progress(p: Params, w: memoryview) -> tuple[int, int]:
    """(acquisitions, lwps finished) of every torture lwp: it moves while they work."""
    assert p.nwriters is not None and p.nreaders is not None
    records = [L.record(i) for i in range(p.nwriters + p.nreaders)]
    return sum(w[r + L.R_ACQ] for r in records), sum(w[r + L.R_DONE] for r in records)


def _wait_finished(k: Kernel, p: Params, t: Torture, w: memoryview) -> dict[str, Any] | None:
    """Wait, after the stop, until every torture lwp has finished, for as long as they
    make progress; None then, else the stall: what the lwps left were doing
    ("unfinished", their roles added) and the wait-for cycle among them ("deadlock")."""
    assert p.nwriters is not None and p.nreaders is not None
    nlwps = p.nwriters + p.nreaders
    start = last_change = time.monotonic()
    last = _progress(p, w)
    dead = _deadlock_flag(t)
    while last[1] < nlwps and k.state == "running":
        now = time.monotonic()
        if now - last_change > STALL_TIMEOUT or now - start > JOIN_LIMIT or dead():
            return _describe_stall(k, p, t, dead())
        time.sleep(0.01)
        if (progress := _progress(p, w)) != last:
            last, last_change = progress, time.monotonic()
    return None


def load_schedule(path: str) -> list[tuple[int, int]]:
    """The overrides of the schedule in ``path``: a run's JSON result (``--json``),
    or its ``schedule`` object alone."""
    with open(path) as f:
        data = json.load(f)
    sched = data.get("extra", {}).get("schedule", data) if isinstance(data, dict) else None
    try:
        return [(int(pick), int(lwp)) for pick, lwp in sched["overrides"]]  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"replay_schedule: {path} holds no schedule") from None


def _deadlock_flag(t: Torture) -> Callable[[], bool]:
    """Whether a deterministic run has found nobody able to run (never, in parallel)."""
    if t.det is None:
        return lambda: False
    view = int64_view(t.det)
    return lambda: bool(view[detsched.D_DEAD])


def _describe_stall(k: Kernel, p: Params, t: Torture, nobody_can_run: bool) -> dict[str, Any]:
    assert p.nwriters is not None
    try:
        seen = k.run(lwps.describe, t, cpu=0, timeout=DESCRIBE_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - the kernel may be as stuck as its lwps
        unknown: dict[str, Any] = {"holds": [], "waits": None, "state": f"unknown ({e})"}
        left = [
            {"index": i, "lwp": lid, "cpu": i % p.ncpu, **unknown} for i, lid in enumerate(t.lids)
        ]
        seen = {"unfinished": left, "deadlock": []}
    for u in seen["unfinished"]:
        u["role"] = "writer" if u["index"] < p.nwriters else "reader"
    if nobody_can_run and not seen["deadlock"]:  # no lock cycle: sleepers nobody wakes
        seen["deadlock"] = [f"lwp {u['lwp']} {u['state']}" for u in seen["unfinished"]]
    return seen


def _result(
    p: Params,
    w: memoryview,
    elapsed: float,
    intervals: list[Snapshot],
    per_cpu_decisions: list[Any],
    extra: dict[str, Any],
    panic: str | None,
    stall: dict[str, Any] | None,
) -> Result:
    final = _snapshot(p, w, elapsed)
    failures = _failures(p, w)
    per_cpu = [
        {
            "cpu": c,
            "acquisitions": n,
            "per_second": round(n / elapsed, 1),
            "perturbation": per_cpu_decisions[c],
        }
        for c, n in enumerate(final.per_cpu)
    ]
    return Result(
        params=p,
        success=not failures and panic is None and stall is None,
        elapsed=elapsed,
        writes=final.writes,
        reads=final.reads,
        failures=failures,
        intervals=intervals,
        per_cpu=per_cpu,
        extra=extra,
        panic=panic,
        unfinished=stall["unfinished"] if stall else [],
        deadlock=stall["deadlock"] if stall else [],
    )


def minimize(
    result: Result, max_runs: int = 400, on_try: Callable[[int, bool], None] | None = None
) -> tuple[list[list[int]], Result, int]:
    """Shrink the schedule of a failing deterministic run: drop as many of its
    overrides (its choices beyond the plain policy: its preemptions) as can go with
    the run still failing, in chunks that halve down to single ones (ddmin), then
    halve its duration while it still fails.  The overrides left, the failing run
    with them, and the runs it took."""
    if result.success or "schedule" not in result.extra:
        raise ValueError("minimize: needs a failing deterministic run")
    params = {
        k: v for k, v in asdict(result.params).items() if k not in ("type", "replay_schedule")
    }
    kept: list[list[int]] = list(result.extra["schedule"]["overrides"])
    best, runs = result, 0
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "schedule.json")

        def still_fails(overrides: list[list[int]]) -> Result | None:
            nonlocal runs
            runs += 1
            with open(path, "w") as f:
                json.dump({"overrides": overrides}, f)
            r = run(result.params.type, **params, replay_schedule=path)
            if on_try:
                on_try(len(overrides), not r.success)
            return None if r.success else r

        chunk = max(1, len(kept) // 2)
        while kept and runs < max_runs:
            j, removed = 0, False
            while j < len(kept) and runs < max_runs:
                candidate = kept[:j] + kept[j + chunk :]
                failing = still_fails(candidate)
                if failing is not None:
                    kept, best, removed = candidate, failing, True
                else:
                    j += chunk
            if chunk == 1 and not removed:
                break
            chunk = max(1, chunk // 2)
        while runs < max_runs and best.params.duration >= 2 * MIN_DURATION:
            params["duration"] = best.params.duration / 2  # then shorter, while it fails
            failing = still_fails(kept)
            if failing is None:
                break
            best = failing
    return kept, best, runs


def self_check(ncpu: int = 4, duration: float = 1.0, seed: int | None = None) -> Result:
    """Run the deliberately broken lock: the checkers work if the run FAILS."""
    return run("busted", ncpu=ncpu, duration=duration, seed=seed, long_hold=0)
