"""The deterministic stress mode's targets (issue 24): ``python -m bench.deterministic``.

- each example bug (rumpmp.torture.examples): the first failing seed of a
  deterministic campaign over seeds 1..1000, and how many of the first 100 fail
- replays: the failing seed run 10 times, and its saved schedule replayed 10 times:
  how many give the identical result and schedule digest
- correct types (the built-in mutex, and a counter written here as a user would)
  under 1,000 deterministic seeds: failures (target 0)
- throughput of the mutex type on 4 CPUs, deterministic vs parallel (no target)
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from rumpmp import torture
from rumpmp.kern import mutex_enter, mutex_exit
from rumpmp.torture import TortureLwp, TortureType, examples

SEEDS = 1000
DURATION = 0.2  # virtual seconds of each deterministic run


class _CounterWriter(TortureLwp):
    def step(self) -> bool:
        mutex_enter(self.t.locks[0])
        before = self.s[0]
        self.hold()
        self.s[0] = before + 1
        mutex_exit(self.t.locks[0])
        return True


class Counter(TortureType):
    """A correct type, written as a user writes one."""

    writer = _CounterWriter
    violations = ("count lost",)

    @staticmethod
    def check(t) -> None:
        if t.s[0] != t.acquisitions():
            t.fail(0, "count lost", t.s[0], t.acquisitions())


def det(kind, seed: int, **params):
    return torture.run(kind, ncpu=4, duration=DURATION, seed=seed, deterministic=True, **params)


def signature(r) -> tuple:
    return (
        r.success,
        r.extra["schedule"]["digest"],
        [(f.index, f.what, f.seen, f.expected, f.count) for f in r.failures],
        r.deadlock,
    )


def first_failing(kind) -> tuple[int | None, int]:
    """(first failing seed in 1..SEEDS, failing seeds among the first 100)."""
    first, failing = None, 0
    for seed in range(1, SEEDS + 1):
        if seed > 100 and first is not None:
            break
        if not det(kind, seed).success:
            failing += seed <= 100
            first = first or seed
    return first, failing


def replays(kind, seed: int) -> tuple[int, int]:
    """Of 10 runs of ``seed`` and 10 replays of its saved schedule, how many match it."""
    ref = det(kind, seed)
    same_seed = sum(signature(det(kind, seed)) == signature(ref) for _ in range(10))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "schedule.json")
        with open(path, "w") as f:
            json.dump(ref.to_json(), f)
        same_schedule = sum(
            signature(det(kind, seed + 1, replay_schedule=path)) == signature(ref)
            for _ in range(10)
        )
    return same_seed, same_schedule


def failures_over_seeds(kind) -> int:
    return sum(not det(kind, seed).success for seed in range(1, SEEDS + 1))


def throughput(deterministic: bool) -> float:
    """Acquisitions per wall second of the mutex type on 4 CPUs (2 s)."""
    start = time.perf_counter()
    r = torture.run("mutex", ncpu=4, duration=2, seed=1, deterministic=deterministic)
    return r.writes.total / (time.perf_counter() - start)


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for name in ("RacyCounter", "LostWakeup", "LockOrder"):
        kind = getattr(examples, name)
        first, failing = first_failing(kind)
        same_seed, same_schedule = replays(kind, first or 1)
        out.append(
            (
                f"{name}: deterministic campaign (target: found within {SEEDS} seeds)",
                f"first failing seed {first}, {failing} of the first 100 fail",
                f"replays identical: seed {same_seed}/10, saved schedule {same_schedule}/10",
                "found" if first else "NOT FOUND",
            )
        )
    for label, kind in (("mutex (built-in)", "mutex"), ("a user-written counter", Counter)):
        failed = failures_over_seeds(kind)
        out.append(
            (
                f"{label}, {SEEDS} deterministic seeds (target 0 failures)",
                f"{failed} failures",
                "-",
                "met" if not failed else "NOT MET",
            )
        )
    det_rate, par_rate = throughput(True), throughput(False)
    out.append(
        (
            "mutex type, 4 CPUs, acquisitions per wall second",
            f"{det_rate:,.0f} /s deterministic",
            f"{par_rate:,.0f} /s parallel",
            f"{det_rate / par_rate:.2f}x",
        )
    )
    return out


def main() -> None:
    print("| benchmark | rumpmp | peer or floor | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
