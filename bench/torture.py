"""Torture throughput of each type on this machine: ``python -m bench.torture``.

Each type runs for ``DURATION`` seconds on 2 CPUs with its default lwps (two writers
per CPU for the exclusive types), without perturbation or long holds, and reports
acquisitions (items, hand-offs, calls) per second.  The mutex type is also set beside
its peer, one writer per CPU against 2 processes taking one ``multiprocessing.Lock``
with the same checks and critical section.  Both sides are measured in the same placement: this process
is pinned before it boots the kernel or starts the peer, and both inherit the pinning.
"""

from __future__ import annotations

import multiprocessing
import random
import time

from bench import placement as pl
from rumpmp import torture
from rumpmp.kern import DELAY

DURATION = 3.0
NCPU = 2


def _peer_worker(lock, words, me: int, seconds: float) -> None:
    """The mutex type's step, on a multiprocessing.Lock: the same holder-word checks
    and the same critical section (a busy wait of 0-2 us drawn from a generator)."""
    rng = random.Random(me)
    n, fails = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        lock.acquire()
        if words[0]:
            fails += 1
        words[0] = me
        DELAY(rng.randrange(3))
        if words[0] != me:
            fails += 1
        words[0] = 0
        lock.release()
        n += 1
    words[me] = n
    words[8 + me] = fails


def peer_rate(nproc: int = NCPU, seconds: float = DURATION) -> float:
    """Acquisitions per second of ``nproc`` processes sharing a multiprocessing.Lock."""
    ctx = multiprocessing.get_context("fork")
    lock, words = ctx.Lock(), ctx.RawArray("q", 16)
    procs = [
        ctx.Process(target=_peer_worker, args=(lock, words, i + 1, seconds)) for i in range(nproc)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert not any(words[8 + i + 1] for i in range(nproc))
    return sum(words[i + 1] for i in range(nproc)) / seconds


def rate(type_: str, **params: int) -> tuple[float, float | None]:
    """(writes/s, reads/s or None) of one type, on NCPU CPUs."""
    r = torture.run(
        type_, ncpu=NCPU, duration=DURATION, perturb=False, long_hold=0, seed=1, **params
    )
    assert r.success, r.lines()
    reads = r.reads.total / r.elapsed if r.reads is not None else None
    return r.writes.total / r.elapsed, reads


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in (pl.ONE_CORE, pl.UNPINNED):
        with pl.host_placed(placement):
            mutex, _ = rate("mutex", nwriters=NCPU)  # one writer per CPU, as the peer
            peer = peer_rate()
        out.append(
            (
                f"torture mutex, {NCPU} writers on {NCPU} CPUs, {placement}",
                f"{mutex:,.0f} acq/s",
                f"{peer:,.0f} acq/s ({NCPU} processes, mp.Lock)",
                f"{mutex / peer:.2f}x",
            )
        )
    for type_ in torture.TYPES:
        if type_ in ("mutex", "busted"):
            continue
        writes, reads = rate(type_)
        shown = f"{writes:,.0f} writes/s" + (f", {reads:,.0f} reads/s" if reads is not None else "")
        out.append((f"torture {type_}, {NCPU} CPUs, unpinned", shown, "-", "-"))
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["torture"])
