"""Cross-calls on many CPUs: ``python -m bench.xcall``.  (One call's round trip
beside the floor and the host's pools, per placement, is bench/roundtrip.py.)

- ``xc_broadcast`` latency from the host for 1, 2, 4 and 8 CPUs
- a per-CPU compute workload at 1 and 2 CPUs (throughput scaling on 2 host cores)
"""

from __future__ import annotations

import statistics
import time

import rumpmp

REPEAT = 5
CALLS = 1000
WORK = 3_000_000  # loop iterations of one compute unit


def noop(a=None, b=None):
    return None


def _per_call(call, n: int) -> float:
    for _ in range(20):  # warm up: workers started, functions cached
        call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def _median(measure) -> float:
    return statistics.median(measure() for _ in range(REPEAT))


def compute(units, _):
    total = 0
    for _ in range(units):
        for i in range(WORK):
            total += i
    return total


def throughput(ncpu: int, units: int = 4) -> float:
    """Compute units per second with every CPU of an ``ncpu`` kernel working."""
    with rumpmp.boot(ncpu) as k:
        k.xc_broadcast(0, compute, 1)  # warm up

        def once() -> float:
            start = time.perf_counter()
            k.xc_broadcast(0, compute, units)
            return ncpu * units / (time.perf_counter() - start)

        return _median(once)


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for ncpu in (1, 2, 4, 8):
        with rumpmp.boot(ncpu) as k:
            us = _median(lambda: _per_call(lambda: k.xc_broadcast(0, noop), CALLS // 4))
        out.append(
            (f"xc_broadcast latency, {ncpu} CPU{'s' if ncpu > 1 else ''}", f"{us:.1f} us", "-", "-")
        )
    one, two = throughput(1), throughput(2)
    out.append(
        (
            "per-CPU compute, 2 CPUs vs 1",
            f"{two:.2f} units/s",
            f"{one:.2f} units/s (1 CPU)",
            f"{two / one:.2f}x",
        )
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["xcall"])
