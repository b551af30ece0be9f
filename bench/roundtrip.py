"""One call into the kernel, per placement: ``python -m bench.roundtrip``.

For each placement (bench/placement.py, unplaced included): a no-op
``Kernel.xc_unicast`` from the host, then what a user calls beside it (``Kernel.run``
of a no-op, ``k.sys.getpid()``, ``k.sys.stat("/")``), the floor (a two-semaphore
ping-pong between the host and one child) and the host's process pools
(ProcessPoolExecutor, loky, multiprocess.Pool), each with its worker placed the same
way.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import multiprocess

import rumpmp
from bench import placement as pl
from bench.locks import host_pingpong

REPEAT = 5
CALLS = 500
#: What a user calls, and its target against a no-op cross-call (issue 20).
CALLS_AND_TARGETS = (("Kernel.run no-op", 1.5), ("k.sys.getpid()", 1.3), ('k.sys.stat("/")', 2.0))


def noop(a=None, b=None):
    return None


def per_call(call, n: int = CALLS) -> float:
    """Median over REPEAT runs of microseconds per call (after a warm-up)."""

    def once() -> float:
        start = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - start) / n * 1e6

    for _ in range(20):  # warm up: workers started, functions cached
        call()
    return statistics.median(once() for _ in range(REPEAT))


def kernel_calls(placement: str) -> dict[str, float]:
    """Microseconds per call: xc_unicast, and what a user calls, on a 2-CPU kernel."""
    cpu = pl.cpu(placement, 1)
    with pl.host_placed(placement), rumpmp.boot(2) as k:
        pl.place(placement, k.cpu_pids())
        return {
            "xc_unicast": per_call(lambda: k.xc_unicast(0, noop, None, None, 1)),
            "Kernel.run no-op": per_call(lambda: k.run(noop, cpu=cpu)),
            "k.sys.getpid()": per_call(k.sys.getpid),
            'k.sys.stat("/")': per_call(lambda: k.sys.stat("/")),
        }


def peers(placement: str) -> dict[str, float]:
    """Microseconds per no-op round trip through each host pool (one worker)."""
    out = {}
    with pl.host_placed(placement):
        with ProcessPoolExecutor(max_workers=1) as ex:
            ex.submit(noop).result()
            pl.place(placement, list(ex._processes))  # its workers: no public handle
            out["ProcessPoolExecutor"] = per_call(lambda: ex.submit(noop).result())
        try:
            import loky
        except ImportError:  # loky is a benchmark-only extra
            pass
        else:
            lex = loky.get_reusable_executor(max_workers=1)
            lex.submit(noop).result()
            pl.place(placement, list(lex._processes))
            out["loky"] = per_call(lambda: lex.submit(noop).result())
            lex.shutdown()
        with multiprocess.Pool(1) as pool:
            pl.place(placement, [p.pid for p in pool._pool])
            out["multiprocess.Pool.apply"] = per_call(lambda: pool.apply(noop))
    return out


def floor(placement: str) -> float:
    with pl.host_placed(placement):
        return statistics.median(host_pingpong(CALLS, placement) for _ in range(REPEAT))


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in pl.CALL_PLACEMENTS:
        calls = kernel_calls(placement)
        uni = calls["xc_unicast"]
        base = floor(placement)
        out.append(
            (
                f"xc_unicast no-op, {placement}",
                f"{uni:.1f} us",
                f"{base:.1f} us (2-semaphore ping-pong)",
                f"{uni / base:.2f}x",
            )
        )
        for name, us in peers(placement).items():
            out.append(
                (f"  ... vs {name}", f"{uni:.1f} us", f"{us:.1f} us", f"{us / uni:.1f}x faster")
            )
        for name, target in CALLS_AND_TARGETS:
            us = calls[name]
            out.append(
                (
                    f"{name}, {placement} (target <= {target:g}x)",
                    f"{us:.1f} us",
                    f"{uni:.1f} us (xc_unicast)",
                    f"{us / uni:.2f}x",
                )
            )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["roundtrip"])
