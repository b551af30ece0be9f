"""Cross-calls against the host's process pools, side by side: ``python -m bench.xcall``.

- a no-op ``Kernel.xc_unicast`` round trip from the host vs
  ``ProcessPoolExecutor.submit().result()``, loky and ``multiprocess.Pool.apply``,
  with a bare two-semaphore ping-pong between two processes as the floor
- ``xc_broadcast`` latency from the host for 1, 2, 4 and 8 CPUs
- a per-CPU compute workload at 1 and 2 CPUs (throughput scaling on 2 host cores)
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import multiprocess

import rumpmp
from bench.locks import host_pingpong

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


def peers() -> dict[str, float]:
    """Microseconds per no-op round trip through each host pool (one worker)."""
    out = {}
    with ProcessPoolExecutor(max_workers=1) as ex:
        out["ProcessPoolExecutor"] = _median(
            lambda: _per_call(lambda: ex.submit(noop).result(), CALLS)
        )
    try:
        import loky

        ex = loky.get_reusable_executor(max_workers=1)
        out["loky"] = _median(lambda: _per_call(lambda: ex.submit(noop).result(), CALLS))
        ex.shutdown()
    except ImportError:  # loky is a benchmark-only extra
        pass
    with multiprocess.Pool(1) as pool:
        out["multiprocess.Pool.apply"] = _median(lambda: _per_call(lambda: pool.apply(noop), CALLS))
    return out


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
    with rumpmp.boot(2) as k:
        uni = _median(lambda: _per_call(lambda: k.xc_unicast(0, noop, None, None, 1), CALLS))
    floor = statistics.median(host_pingpong(CALLS) for _ in range(REPEAT))
    others = peers()
    best = min(others, key=others.get)
    for name, us in others.items():
        out.append(
            (
                "no-op round trip: " + name,
                f"{uni:.1f} us (xc_unicast)",
                f"{us:.1f} us",
                f"{us / uni:.1f}x faster",
            )
        )
    out.append(
        (
            "  ... vs the fastest peer",
            f"{uni:.1f} us",
            f"{others[best]:.1f} us ({best})",
            f"{others[best] / uni:.1f}x faster",
        )
    )
    out.append(
        (
            "  ... vs the floor",
            f"{uni:.1f} us",
            f"{floor:.1f} us (2-semaphore ping-pong)",
            f"{uni / floor:.2f}x",
        )
    )
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
