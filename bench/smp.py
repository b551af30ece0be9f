"""NetBSD's SMP toolkit against the locks it replaces, side by side: ``python -m bench.smp``.

- atomic_inc_64 uncontended vs mutex_enter+mutex_exit, both by one lwp on cpu0
- pool_cache_get+put vs kmem_alloc+kmem_free of the same size (64 bytes), on cpu0
- pserialize_read_enter+exit vs rw_enter(RW_READER)+rw_exit, on cpu0
- 8 CPUs each counting 100,000 with atomic_inc_64 on one word: exact?, and the rate,
  beside 8 processes sharing a multiprocessing.Value with its lock (unplaced both)
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

import rumpmp

REPEAT = 5
N = 100_000
COUNT = 100_000


def pair_costs(n: int) -> dict[str, float]:
    """ns per operation pair of each kind, by this lwp."""
    from rumpmp.kern import (
        RW_READER,
        atomic_inc_64,
        kmem_alloc,
        kmem_free,
        kmem_zalloc,
        mutex_enter,
        mutex_exit,
        mutex_init,
        pool_cache_get,
        pool_cache_init,
        pool_cache_put,
        pserialize_read_enter,
        pserialize_read_exit,
        rw_enter,
        rw_exit,
        rw_init,
    )

    word, m, rw, pc = kmem_zalloc(8), mutex_init(), rw_init(), pool_cache_init(64)
    out = {}

    def timed(name: str, body) -> None:
        start = time.perf_counter()
        body()
        out[name] = (time.perf_counter() - start) / n * 1e9

    def atomics():
        for _ in range(n):
            atomic_inc_64(word)

    def mutexes():
        for _ in range(n):
            mutex_enter(m)
            mutex_exit(m)

    def pool_cache():
        for _ in range(n):
            pool_cache_put(pc, pool_cache_get(pc))

    def kmem():
        for _ in range(n):
            kmem_free(kmem_alloc(64), 64)

    def pserialize():
        for _ in range(n):
            pserialize_read_exit(pserialize_read_enter())

    def rwlock():
        for _ in range(n):
            rw_enter(rw, RW_READER)
            rw_exit(rw)

    for name, body in (
        ("atomic", atomics),
        ("mutex", mutexes),
        ("pool_cache", pool_cache),
        ("kmem", kmem),
        ("pserialize", pserialize),
        ("rw", rwlock),
    ):
        timed(name, body)
    return out


def _count(word_and_n, _) -> None:
    from rumpmp.kern import atomic_inc_64

    word, n = word_and_n
    for _ in range(n):
        atomic_inc_64(word)


def eight_cpus_count(n: int) -> tuple[int, float]:
    """(final count, increments per second) of every CPU adding n to one word."""
    from rumpmp.kern import atomic_load_relaxed, kmem_zalloc, xc_broadcast, xc_wait

    word = kmem_zalloc(8)
    start = time.perf_counter()
    xc_wait(xc_broadcast(0, _count, (word, n), None))
    elapsed = time.perf_counter() - start
    return atomic_load_relaxed(word), 8 * n / elapsed


def _host_count(value, n) -> None:
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def host_count(n: int, nproc: int = 8) -> tuple[int, float]:
    value = multiprocessing.Value("q", 0)
    procs = [multiprocessing.Process(target=_host_count, args=(value, n)) for _ in range(nproc)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return value.value, nproc * n / (time.perf_counter() - start)


def rows() -> list[tuple[str, str, str, str]]:
    with rumpmp.boot(8, lockdebug=False) as k:
        runs = [k.run(pair_costs, N, cpu=0) for _ in range(REPEAT)]
        counts = [k.run(eight_cpus_count, COUNT) for _ in range(3)]
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    hosts = [host_count(COUNT) for _ in range(3)]
    exact = all(c == 8 * COUNT for c, _ in counts)
    rate = statistics.median(r for _, r in counts)
    host_rate = statistics.median(r for _, r in hosts)

    def ratio(a: str, b: str, label_a: str, label_b: str) -> tuple[str, str, str, str]:
        return (
            label_a,
            f"{med[a]:.0f} ns",
            f"{med[b]:.0f} ns ({label_b})",
            f"{med[a] / med[b]:.2f}x",
        )

    return [
        ratio("atomic", "mutex", "atomic_inc_64, uncontended", "mutex_enter+exit"),
        ratio("pool_cache", "kmem", "pool_cache_get+put, 64 B", "kmem_alloc+free"),
        ratio("pserialize", "rw", "pserialize_read_enter+exit", "rw_enter(READER)+exit"),
        (
            "8 CPUs x 100,000 atomic_inc_64 on one word",
            f"{'exact' if exact else 'WRONG'}, {rate:,.0f} incs/s",
            f"{host_rate:,.0f} incs/s (8 processes, mp.Value + lock)",
            f"{rate / host_rate:.2f}x throughput",
        ),
    ]


def main() -> None:
    print("| benchmark | rumpmp (median) | peer | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
