"""The Executor and the joblib backend beside their peers: ``python -m bench.futures``.

- ``submit(noop).result()`` round trip, one worker each, per placement (the kernel's
  CPU and the pools' worker placed alike) vs ProcessPoolExecutor and loky;
- ``map(noop, range(10_000))`` on 2 workers, default chunking, vs
  ProcessPoolExecutor.map (chunksize 1 and its best) and multiprocess.Pool.map;
- joblib ``Parallel(n_jobs=2)`` of 1,000 small tasks, rumpmp backend vs loky (both warm);
- a CPU SIGKILLed under a stream of tasks with ``on_cpu_death="restart"``: the time
  from the kill to the first task that completes on the new kernel.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import multiprocess

from bench import placement as pl
from bench.roundtrip import noop, per_call
from rumpmp.futures import KernelExecutor, register_joblib, shutdown_joblib

MAP_N = 10_000
JOBLIB_N = 1_000
REPEAT = 5


def _timed(fn, repeat: int = REPEAT) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs, after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def roundtrips(placement: str) -> dict[str, float]:
    """Microseconds per submit(noop).result(), one worker each."""
    out = {}
    with pl.host_placed(placement):
        with KernelExecutor(1) as ex:
            pl.place(placement, ex.kernel.cpu_pids())
            out["KernelExecutor"] = per_call(lambda: ex.submit(noop).result())
        with ProcessPoolExecutor(1) as ppe:
            ppe.submit(noop).result()
            pl.place(placement, list(ppe._processes))
            out["ProcessPoolExecutor"] = per_call(lambda: ppe.submit(noop).result())
        import loky

        lex = loky.get_reusable_executor(max_workers=1)
        lex.submit(noop).result()
        pl.place(placement, list(lex._processes))
        out["loky"] = per_call(lambda: lex.submit(noop).result())
        lex.shutdown()
    return out


def maps() -> dict[str, float]:
    """Seconds for map(noop, range(MAP_N)) on 2 workers (unpinned: they need both cores)."""
    items = range(MAP_N)
    out = {}
    with KernelExecutor(2) as ex:
        out["KernelExecutor.map"] = _timed(lambda: list(ex.map(noop, items)))
    with ProcessPoolExecutor(2) as ppe:
        out["ProcessPoolExecutor.map, chunksize 1"] = _timed(lambda: list(ppe.map(noop, items)), 3)
        best = min(
            (_timed(lambda c=c: list(ppe.map(noop, items, chunksize=c))), c)
            for c in (10, 100, 500, 2500)
        )
        out[f"ProcessPoolExecutor.map, best chunksize ({best[1]})"] = best[0]
    with multiprocess.Pool(2) as pool:
        out["multiprocess.Pool.map"] = _timed(lambda: pool.map(noop, items))
    return out


def joblibs() -> dict[str, float]:
    import joblib

    register_joblib()
    tasks = [joblib.delayed(noop)(i) for i in range(JOBLIB_N)]
    out = {}
    with joblib.parallel_config(backend="rumpmp", n_jobs=2):
        out["rumpmp"] = _timed(lambda: joblib.Parallel()(tasks))
    with joblib.parallel_config(backend="loky", n_jobs=2):
        out["loky"] = _timed(lambda: joblib.Parallel()(tasks))
    shutdown_joblib()
    return out


def _tick(x):
    from rumpmp.kern import kpause

    kpause("bench", False, 1)
    return x


def restart_seconds() -> float:
    """From SIGKILL of a CPU under load to the first task that completes afterwards
    (on the new kernel: the old one is down by then)."""
    done_at: list[float] = []
    with KernelExecutor(4, on_cpu_death="restart") as ex:
        futures = [ex.submit(_tick, i) for i in range(400)]
        while sum(f.done() for f in futures) < 40:
            time.sleep(0.001)
        first = ex.kernel
        for f in futures:  # a success from now on ran on the new kernel, or just before the kill
            f.add_done_callback(lambda f: f.exception() or done_at.append(time.monotonic()))
        done_at.clear()
        killed = time.monotonic()
        os.kill(first.cpu_pids()[1], signal.SIGKILL)
        while ex.kernel is first:
            time.sleep(0.0005)
        restarted = time.monotonic()
        assert all(f.exception(timeout=60) is None or f.exception().cpu == 1 for f in futures)
    return min(t for t in done_at if t > restarted) - killed


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in pl.PLACEMENTS:
        rt = roundtrips(placement)
        ours = rt.pop("KernelExecutor")
        for name, us in rt.items():
            out.append(
                (
                    f"submit(noop).result(), {placement}",
                    f"{ours:.1f} us",
                    f"{us:.1f} us ({name})",
                    f"{us / ours:.1f}x faster",
                )
            )
    m = maps()
    ours = m.pop("KernelExecutor.map")
    for name, s in m.items():
        out.append(
            (
                f"map(noop, range({MAP_N:,})), 2 workers",
                f"{ours * 1e3:.0f} ms",
                f"{s * 1e3:.0f} ms ({name})",
                f"{s / ours:.1f}x faster",
            )
        )
    j = joblibs()
    out.append(
        (
            f"joblib Parallel(n_jobs=2), {JOBLIB_N:,} tasks",
            f"{j['rumpmp'] * 1e3:.0f} ms",
            f"{j['loky'] * 1e3:.0f} ms (loky backend)",
            f"{j['loky'] / j['rumpmp']:.1f}x faster",
        )
    )
    out.append(
        (
            "CPU SIGKILLed under load, restart",
            f"{restart_seconds() * 1e3:.0f} ms to the next task done",
            "-",
            "-",
        )
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["futures"])
