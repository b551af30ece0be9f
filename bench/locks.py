"""Kernel locks against their host peers, side by side: ``python -m bench.locks``.

- uncontended mutex_enter+mutex_exit (LOCKDEBUG off, and on) vs multiprocessing.Lock
- a contended counter on 2 CPUs vs 2 processes sharing a multiprocessing.Lock
- condvar ping-pong between 2 CPUs vs a bare two-semaphore ping-pong between 2 processes
- kthread_create + kthread_join per second
"""

from __future__ import annotations

import multiprocessing
import statistics
import struct
import time

import rumpmp
from bench import placement as placement_

REPEAT = 5
UNCONTENDED = 200_000
COUNTER = 20_000
PINGPONG = 2_000
KTHREADS = 200


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


# -- uncontended -------------------------------------------------------------------


def kernel_uncontended(n: int) -> float:
    from rumpmp.kern import mutex_enter, mutex_exit, mutex_init

    m = mutex_init()
    start = time.perf_counter()
    for _ in range(n):
        mutex_enter(m)
        mutex_exit(m)
    return (time.perf_counter() - start) / n * 1e9


def host_lock_uncontended(n: int) -> float:
    lock = multiprocessing.Lock()
    acquire, release = lock.acquire, lock.release
    start = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - start) / n * 1e9


# -- contended counter ----------------------------------------------------------------


def _count(arg) -> None:
    from rumpmp.kern import mutex_enter, mutex_exit

    m, buf, n = arg
    for _ in range(n):
        mutex_enter(m)
        (v,) = struct.unpack_from("<q", buf, 0)
        struct.pack_into("<q", buf, 0, v + 1)
        mutex_exit(m)


def kernel_counter(n: int, ncpu: int = 2) -> float:
    """Increments per second by kthreads on ``ncpu`` CPUs under one adaptive mutex."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        mutex_init,
    )

    m, buf = mutex_init(), kmem_zalloc(8)
    start = time.perf_counter()
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, c, _count, (m, buf, n), "c")
        for c in range(ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    elapsed = time.perf_counter() - start
    assert struct.unpack_from("<q", buf, 0)[0] == ncpu * n
    return ncpu * n / elapsed


def _host_count(lock, value, n) -> None:
    for _ in range(n):
        with lock:
            value.value += 1


def host_counter(n: int, nproc: int = 2) -> float:
    """Increments per second by ``nproc`` processes sharing a multiprocessing.Lock."""
    lock = multiprocessing.Lock()
    value = multiprocessing.Value("q", 0, lock=False)
    procs = [
        multiprocessing.Process(target=_host_count, args=(lock, value, n)) for _ in range(nproc)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    assert value.value == nproc * n
    return nproc * n / elapsed


# -- ping-pong ------------------------------------------------------------------------


def _pong(arg) -> None:
    from rumpmp.kern import cv_broadcast, cv_wait, mutex_enter, mutex_exit

    m, cv, buf, me, rounds = arg
    mutex_enter(m)
    for _ in range(rounds):
        while struct.unpack_from("<q", buf, 0)[0] != me:
            cv_wait(cv, m)
        struct.pack_into("<q", buf, 0, 1 - me)
        cv_broadcast(cv)
    mutex_exit(m)


def kernel_pingpong(rounds: int) -> float:
    """Microseconds per round trip between kthreads on cpu0 and cpu1."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        cv_init,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        mutex_init,
    )

    m, cv, buf = mutex_init(), cv_init(), kmem_zalloc(8)
    start = time.perf_counter()
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, me, _pong, (m, cv, buf, me, rounds), "p")
        for me in (0, 1)
    ]
    for lid in lids:
        kthread_join(lid)
    return (time.perf_counter() - start) / rounds * 1e6


def _sem_pong(a, b, rounds) -> None:
    for _ in range(rounds):
        a.acquire()
        b.release()


def host_pingpong(rounds: int, placement: str = placement_.UNPINNED) -> float:
    """Microseconds per round trip of two semaphores between the host and a child
    placed as ``placement`` says (the floor of any cross-process call)."""
    a, b = multiprocessing.Semaphore(0), multiprocessing.Semaphore(0)
    p = multiprocessing.Process(target=_sem_pong, args=(a, b, rounds))
    p.start()
    placement_.place(placement, [p.pid])
    start = time.perf_counter()
    for _ in range(rounds):
        a.release()
        b.acquire()
    elapsed = time.perf_counter() - start
    p.join()
    return elapsed / rounds * 1e6


# -- kthreads -------------------------------------------------------------------------


def kthreads_per_second(n: int) -> float:
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kthread_create, kthread_join

    start = time.perf_counter()
    for _ in range(n):
        kthread_join(kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, None, abs, 0, "k"))
    return n / (time.perf_counter() - start)


def rows() -> list[tuple[str, str, str, str]]:
    """(benchmark, rumpmp, peer, ratio) rows, medians of REPEAT runs."""
    out = []
    with rumpmp.boot(2, lockdebug=False) as k:
        fast = _median([k.run(kernel_uncontended, UNCONTENDED, cpu=0) for _ in range(REPEAT)])
        counter = _median([k.run(kernel_counter, COUNTER) for _ in range(REPEAT)])
        ping = _median([k.run(kernel_pingpong, PINGPONG) for _ in range(REPEAT)])
        kth = _median([k.run(kthreads_per_second, KTHREADS) for _ in range(REPEAT)])
    with rumpmp.boot(1, lockdebug=True) as k:
        debug = _median([k.run(kernel_uncontended, UNCONTENDED) for _ in range(REPEAT)])
    host = _median([host_lock_uncontended(UNCONTENDED) for _ in range(REPEAT)])
    host_count = _median([host_counter(COUNTER) for _ in range(REPEAT)])
    host_ping = _median([host_pingpong(PINGPONG) for _ in range(REPEAT)])
    out.append(
        (
            "uncontended mutex_enter+exit",
            f"{fast:.0f} ns",
            f"{host:.0f} ns (multiprocessing.Lock)",
            f"{fast / host:.2f}x",
        )
    )
    out.append(
        ("  ... with LOCKDEBUG on", f"{debug:.0f} ns", f"{host:.0f} ns", f"{debug / host:.2f}x")
    )
    out.append(
        (
            "contended counter, 2 CPUs",
            f"{counter:,.0f} ops/s",
            f"{host_count:,.0f} ops/s (2 processes, mp.Lock)",
            f"{counter / host_count:.2f}x throughput",
        )
    )
    out.append(
        (
            "condvar ping-pong, 2 CPUs",
            f"{ping:.1f} us/round trip",
            f"{host_ping:.1f} us (2-semaphore ping-pong)",
            f"{ping / host_ping:.2f}x",
        )
    )
    out.append(("kthread_create+kthread_join", f"{kth:,.0f} /s", "-", "-"))
    return out


def main() -> None:
    print(f"| benchmark | rumpmp (median of {REPEAT}) | peer | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
