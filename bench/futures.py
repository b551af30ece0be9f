"""The Executor and the joblib backend beside their peers: ``python -m bench.futures``.

- ``submit(noop).result()`` round trip, one worker each, per placement (the kernel's
  CPU and the pools' worker placed alike; unplaced: nothing pinned) vs
  ProcessPoolExecutor and loky;
- ``map(noop, range(10_000))`` on 2 workers, default arguments, unplaced, vs
  ProcessPoolExecutor.map (chunksize 1 and its best) and multiprocess.Pool.map;
- joblib ``Parallel(n_jobs=2)`` of 1,000 small tasks, rumpmp backend vs loky (both
  warm): the slowest of 5 runs;
- a CPU SIGKILLed under 200 tasks of 5 ms with ``on_cpu_death="restart"``: the
  futures that fail, and the time from the kill to the first task done on the new
  kernel.
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
DEATH_TASKS = 200
REPEAT = 5


def _runs(fn, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``fn()``, after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _timed(fn, repeat: int = REPEAT) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs, after one warm-up."""
    return statistics.median(_runs(fn, repeat))


def roundtrips(placement: str) -> dict[str, float]:
    """Microseconds per submit(noop).result(), one worker each, placed alike."""
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
    """Seconds for map(noop, range(MAP_N)) on 2 workers, as a user calls it (nothing
    pinned: they need both cores)."""
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
    """Seconds of the slowest of REPEAT ``Parallel(n_jobs=2)`` calls of JOBLIB_N tasks."""
    import joblib

    register_joblib()
    tasks = [joblib.delayed(noop)(i) for i in range(JOBLIB_N)]
    out = {}
    with joblib.parallel_config(backend="rumpmp", n_jobs=2):
        out["rumpmp"] = max(_runs(lambda: joblib.Parallel()(tasks), REPEAT))
    with joblib.parallel_config(backend="loky", n_jobs=2):
        out["loky"] = max(_runs(lambda: joblib.Parallel()(tasks), REPEAT))
    shutdown_joblib()
    return out


def five_ms(x):
    """A task of 5 ms on its CPU (it spins: a sleep would give the CPU away)."""
    import time

    end = time.perf_counter() + 0.005
    while time.perf_counter() < end:
        pass
    return x


def cpu_death(n: int = DEATH_TASKS) -> tuple[int, float, bool]:
    """SIGKILL cpu1 of 4 under ``n`` tasks of 5 ms: (futures failed, seconds from the
    kill to the first task done on the new kernel, every other result right)."""
    done_at: list[float] = []
    with KernelExecutor(4, on_cpu_death="restart") as ex:
        futures = [ex.submit(five_ms, i) for i in range(n)]
        while sum(f.done() for f in futures) < n // 8:
            time.sleep(0.001)
        first = ex.kernel
        killed = time.monotonic()
        os.kill(first.cpu_pids()[1], signal.SIGKILL)
        while ex.kernel is first:
            time.sleep(0.0005)
        restarted = time.monotonic()
        for f in futures:  # a success from now on ran on the new kernel
            f.add_done_callback(lambda f: f.exception() or done_at.append(time.monotonic()))
        failed = {i for i, f in enumerate(futures) if f.exception(timeout=60) is not None}
        right = all(f.result() == i for i, f in enumerate(futures) if i not in failed)
    first_done = min((t for t in done_at if t >= restarted), default=float("nan"))
    return len(failed), first_done - killed, right


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in pl.CALL_PLACEMENTS:
        rt = roundtrips(placement)
        ours = rt.pop("KernelExecutor")
        for name, us in rt.items():
            out.append(
                (
                    f"submit(noop).result(), {placement} (target >= 5x faster)",
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
                f"map(noop, range({MAP_N:,})), 2 workers, unplaced (target >= 1.5x)",
                f"{ours * 1e3:.1f} ms",
                f"{s * 1e3:.1f} ms ({name})",
                f"{s / ours:.1f}x faster",
            )
        )
    j = joblibs()
    out.append(
        (
            f"joblib Parallel(n_jobs=2), {JOBLIB_N:,} tasks, slowest of {REPEAT} (target >= 2x)",
            f"{j['rumpmp'] * 1e3:.1f} ms",
            f"{j['loky'] * 1e3:.1f} ms (loky backend)",
            f"{j['loky'] / j['rumpmp']:.1f}x faster",
        )
    )
    failed, seconds, right = cpu_death()
    out.append(
        (
            f"cpu1 of 4 SIGKILLed under {DEATH_TASKS} tasks of 5 ms, restart "
            "(target <= 1 failed, <= 0.5 s)",
            f"{failed} failed; a task done {seconds * 1e3:.0f} ms after the kill",
            "-",
            "every other result right" if right else "A RESULT WAS WRONG",
        )
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["futures"])
