"""kmem with and without the per-CPU caches: ``python -m bench.kmem``.

- kmem_alloc + kmem_free of 64 bytes by a kernel lwp, served by its CPU's cache, vs
  the same calls by the same lwp with the cache switched off in its CPU process (the
  shared heap path under the heap lock), in the same kernel, one after the other
- the same loops on 2 CPUs at once (throughput): the caches scale, the heap lock
  is contended across processes
- for reference, the host (which holds no CPU and always takes the heap lock)
"""

from __future__ import annotations

import statistics
import time

import rumpmp
from rumpmp.rumpkern.mem import kmem

REPEAT = 5
N = 20_000


def alloc_free_loop(n: int, cached: bool) -> float:
    """Seconds for ``n`` alloc+free pairs of 64 bytes on this CPU; ``cached=False``
    turns the cache off in this CPU process for the loop (no class is cacheable)."""
    from rumpmp.rumpkern.base.arena import current

    arena = current()
    saved = kmem.CACHE_MAX_ORDER
    kmem.CACHE_MAX_ORDER = saved if cached else 0
    try:
        start = time.perf_counter()
        for _ in range(n):
            kmem.kmem_free_in(arena, kmem.kmem_alloc_in(arena, 64), 64)
        return time.perf_counter() - start
    finally:
        kmem.CACHE_MAX_ORDER = saved


def rows() -> list[tuple[str, str, str, str]]:
    with rumpmp.boot(2) as k:
        arena = k._arena

        def one_cpu(cached: bool) -> float:
            return statistics.median(
                k.xc_unicast(0, alloc_free_loop, N, cached, 0) / N * 1e9 for _ in range(REPEAT)
            )

        def two_cpus(cached: bool) -> float:
            def once() -> float:
                start = time.perf_counter()
                k.xc_broadcast(0, alloc_free_loop, N, cached)
                return 2 * N / (time.perf_counter() - start)

            return statistics.median(once() for _ in range(REPEAT))

        def host() -> float:
            start = time.perf_counter()
            for _ in range(N):
                kmem.kmem_free_in(arena, kmem.kmem_alloc_in(arena, 64), 64)
            return (time.perf_counter() - start) / N * 1e9

        cached, shared = one_cpu(True), one_cpu(False)
        par, par_shared = two_cpus(True), two_cpus(False)
        from_host = statistics.median(host() for _ in range(REPEAT))
    return [
        (
            "kmem_alloc+free 64 B, 1 CPU",
            f"{cached:.0f} ns (per-CPU cache)",
            f"{shared:.0f} ns (shared heap, lock)",
            f"{shared / cached:.2f}x faster",
        ),
        (
            "  ... 2 CPUs at once",
            f"{par:,.0f} ops/s (per-CPU caches)",
            f"{par_shared:,.0f} ops/s (shared heap, lock)",
            f"{par / par_shared:.2f}x throughput",
        ),
        ("  ... from the host (no CPU)", f"{from_host:.0f} ns (shared heap, lock)", "-", "-"),
    ]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["kmem"])
