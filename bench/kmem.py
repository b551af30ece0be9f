"""kmem with and without the per-CPU caches: ``python -m bench.kmem``.

- kmem_alloc + kmem_free of 64 bytes by an lwp (served by its CPU's cache) vs the
  same calls from the host, which holds no CPU and takes the shared heap lock
- the same loop on 2 CPUs at once (throughput), against 2 host threads
"""

from __future__ import annotations

import statistics
import threading
import time

import rumpmp
from rumpmp import kmem

REPEAT = 5
N = 20_000


def alloc_free_loop(n, _=None):
    from rumpmp.arena import current

    arena = current()
    start = time.perf_counter()
    for _ in range(n):
        kmem.kmem_free_in(arena, kmem.kmem_alloc_in(arena, 64), 64)
    return time.perf_counter() - start


def rows() -> list[tuple[str, str, str, str]]:
    with rumpmp.boot(2) as k:
        arena = k._arena
        cached = statistics.median(
            k.xc_unicast(0, alloc_free_loop, N, None, 0) / N * 1e9 for _ in range(REPEAT)
        )

        def host_loop() -> float:
            start = time.perf_counter()
            for _ in range(N):
                kmem.kmem_free_in(arena, kmem.kmem_alloc_in(arena, 64), 64)
            return time.perf_counter() - start

        shared = statistics.median(host_loop() / N * 1e9 for _ in range(REPEAT))

        def two_cpus() -> float:
            start = time.perf_counter()
            k.xc_broadcast(0, alloc_free_loop, N)
            return 2 * N / (time.perf_counter() - start)

        def two_threads() -> float:
            threads = [threading.Thread(target=host_loop) for _ in range(2)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return 2 * N / (time.perf_counter() - start)

        par = statistics.median(two_cpus() for _ in range(REPEAT))
        par_shared = statistics.median(two_threads() for _ in range(REPEAT))
    return [
        (
            "kmem_alloc+free 64 B",
            f"{cached:.0f} ns (per-CPU cache)",
            f"{shared:.0f} ns (shared heap lock)",
            f"{shared / cached:.2f}x (shared / cached)",
        ),
        (
            "  ... 2 at once",
            f"{par:,.0f} ops/s (2 CPUs, caches)",
            f"{par_shared:,.0f} ops/s (2 host threads, heap lock)",
            f"{par / par_shared:.2f}x",
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["kmem"])
