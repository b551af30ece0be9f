"""System calls: ``python -m bench.syscall``.

- host threads, each in a process of its own, calling ``getpid`` in a loop: calls a
  second on 4 CPUs beside 1 CPU (``k.sys`` beside a cross-call is in bench.roundtrip);
- ``rump_sys_getpid()`` in kernel code, per call.
"""

from __future__ import annotations

import statistics
import threading
import time

import rumpmp

CALLS = 100_000
THREADS = 4
SECONDS = 1.0
REPEAT = 3


def threads_calling(ncpu: int, nthreads: int = THREADS, seconds: float = SECONDS) -> float:
    """System calls a second from ``nthreads`` host threads, each calling ``getpid`` in
    its own ``k.process()``, on an ``ncpu``-CPU kernel (nothing pinned)."""
    with rumpmp.boot(ncpu) as k:
        procs = [k.process() for _ in range(nthreads)]
        counts = [0] * nthreads
        go = threading.Barrier(nthreads + 1)
        stop = threading.Event()

        def caller(i: int) -> None:
            getpid = procs[i].sys.getpid
            getpid()  # the thread's lwp in its process is made
            go.wait()
            n = 0
            while not stop.is_set():
                getpid()
                n += 1
            counts[i] = n

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(nthreads)]
        for t in threads:
            t.start()
        go.wait()
        time.sleep(seconds)  # (a benchmark's measuring window, not a synchronisation)
        stop.set()
        for t in threads:
            t.join()
        for p in procs:
            p.release()
    return sum(counts) / seconds


def in_kernel(n: int) -> float:
    """Nanoseconds per rump_sys_getpid() and per rump_syscall(SYS_getpid)."""
    import time

    from rumpmp.kern import rump_sys_getpid, rump_syscall

    start = time.perf_counter()
    for _ in range(n):
        rump_sys_getpid()
    direct = (time.perf_counter() - start) / n * 1e9
    start = time.perf_counter()
    for _ in range(n):
        rump_syscall(20, ())
    return direct, (time.perf_counter() - start) / n * 1e9


def thread_scaling() -> tuple[float, float]:
    """Median calls a second of THREADS threads on 4 CPUs, and on 1 CPU."""
    four = statistics.median(threads_calling(4) for _ in range(REPEAT))
    one = statistics.median(threads_calling(1) for _ in range(REPEAT))
    return four, one


def rows() -> list[tuple[str, str, str, str]]:
    four, one = thread_scaling()
    out = [
        (
            f"{THREADS} host threads, each its own process, getpid: 4 CPUs vs 1, unpinned "
            "(target >= 1.6x)",
            f"{four:,.0f} calls/s",
            f"{one:,.0f} calls/s (1 CPU)",
            f"{four / one:.2f}x",
        )
    ]
    with rumpmp.boot(1) as k:
        direct, dispatched = k.run(in_kernel, CALLS)
    out.append(("rump_sys_getpid() in kernel code", f"{direct / 1e3:.2f} us", "-", "-"))
    out.append(
        ("rump_syscall(SYS_getpid, ()) in kernel code", f"{dispatched / 1e3:.2f} us", "-", "-")
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["syscall"])
