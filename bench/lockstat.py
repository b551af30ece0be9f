"""What watching costs (issue 25): ``python -m bench.lockstat``.

- uncontended mutex_enter+mutex_exit with lockstat compiled in but off, against the
  tree before issue 25 (BASELINE, unpacked from git), each in its own program
  (the same script, only the import path differs), rounds alternating
- torture mutex throughput on 4 CPUs with lockstat on vs off, and with the trace on
  vs off, runs alternating

Each is measured twice: pinned (the host, and so every CPU process it forks, on one
host core) and unplaced (as a user runs it).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import statistics
import tempfile
from collections.abc import Iterator

from bench import baseline
from rumpmp import torture

#: The last commit before issue 25 (lockstat and the trace).
BASELINE = "9f0cf3a"
ROUNDS = 5
UNCONTENDED = 200_000
RUNS = 3
DURATION = 2.0
PLACEMENTS = ("pinned", "unplaced")

#: Run in a fresh program, from a tree: boot one CPU, time the uncontended pair (the
#: tree's own bench.locks loop), print the median ns.
_SCRIPT = """
import json, os, statistics, sys
if sys.argv[2] == "pinned":
    os.sched_setaffinity(0, {0})
import rumpmp
from bench.locks import kernel_uncontended
assert rumpmp.__file__.startswith(sys.argv[1]), rumpmp.__file__
with rumpmp.boot(1, lockdebug=False) as k:
    runs = [k.run(kernel_uncontended, int(sys.argv[3])) for _ in range(5)]
print(json.dumps(statistics.median(runs)))
"""


def _pairs_ns(where: pathlib.Path, placement: str) -> float:
    return float(baseline.run_in(where, _SCRIPT, placement, str(UNCONTENDED)))


def uncontended(placement: str) -> tuple[float, float]:
    """Median ns of a pair: (this tree, BASELINE), rounds alternating."""
    now, before = [], []
    with baseline.tree(BASELINE) as old:
        for _ in range(ROUNDS):
            before.append(_pairs_ns(old, placement))
            now.append(_pairs_ns(baseline.ROOT, placement))
    return statistics.median(now), statistics.median(before)


@contextlib.contextmanager
def placed(placement: str) -> Iterator[None]:
    """Pinned: this host (and the CPU processes it forks) on host core 0."""
    saved = os.sched_getaffinity(0)
    if placement == "pinned":
        os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def _rate(**params: object) -> float:
    r = torture.run("mutex", ncpu=4, duration=DURATION, seed=1, **params)
    assert r.success, r.lines()
    return r.writes.total / r.elapsed


def torture_rates(placement: str) -> dict[str, float]:
    """Median acquisitions per second: plain, with lockstat, with the trace."""
    rates: dict[str, list[float]] = {"off": [], "lockstat": [], "trace": []}
    with placed(placement), tempfile.TemporaryDirectory() as d:
        for _ in range(RUNS):
            rates["off"].append(_rate())
            rates["lockstat"].append(_rate(lockstat=True))
            rates["trace"].append(_rate(trace=os.path.join(d, "t.json")))
    return {name: statistics.median(values) for name, values in rates.items()}


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in PLACEMENTS:
        now, before = uncontended(placement)
        out.append(
            (
                f"uncontended mutex_enter+exit, lockstat compiled in but off, {placement} "
                "(target <= 1.03x)",
                f"{now:.0f} ns",
                f"{before:.0f} ns before issue 25 ({BASELINE})",
                f"{now / before:.2f}x",
            )
        )
    for placement in PLACEMENTS:
        rates = torture_rates(placement)
        for name, target in (("lockstat", 0.5), ("trace", 0.7)):
            out.append(
                (
                    f"torture mutex, 4 CPUs, {name} on vs off, {placement} (target >= {target}x)",
                    f"{rates[name]:,.0f} acq/s",
                    f"{rates['off']:,.0f} acq/s off",
                    f"{rates[name] / rates['off']:.2f}x",
                )
            )
    return out


def main() -> None:
    print("| benchmark | rumpmp | peer or floor | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows():
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
