"""Files: ``python -m bench.files``.

- pipe throughput, 64 KiB writes, between kernel threads on two CPUs, beside
  ``os.pipe`` between two host processes placed the same way;
- a 1-byte pipe ping-pong between two CPUs, beside the two-semaphore floor;
- create + write 4 KiB + close on 8 CPUs at once, beside the same on 1 CPU.

``k.sys.stat`` from the host, beside a cross-call, is in bench.roundtrip.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time

import rumpmp
from bench import placement as pl
from bench.locks import host_pingpong

REPEAT = 3
CHUNK = 64 * 1024
MEGS = 64  # bytes through the pipe per throughput run
PINGS = 2000
FILES = 400  # per worker


# -- pipe throughput ------------------------------------------------------------------------


def _drain(arg):
    from rumpmp.kern import rump_sys_read

    rfd, total = arg
    got = 0
    while got < total:
        got += len(rump_sys_read(rfd, CHUNK))


def kernel_throughput(total: int) -> float:
    """MB/s from this lwp (CPU 0) to a kthread on CPU 1 through one pipe."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        rump_sys_pipe,
        rump_sys_write,
    )

    r, w = rump_sys_pipe()
    flags = KTHREAD_MUSTJOIN | KTHREAD_MPSAFE
    block = b"x" * CHUNK
    start = time.perf_counter()
    lid = kthread_create(PRI_KTHREAD, flags, 1, _drain, (r, total), "drain")
    for _ in range(total // CHUNK):
        rump_sys_write(w, block)
    kthread_join(lid)
    return total / (time.perf_counter() - start) / 1e6


def _host_drain(rfd: int, total: int) -> None:
    got = 0
    while got < total:
        got += len(os.read(rfd, CHUNK))


def host_throughput(total: int, placement: str) -> float:
    """MB/s from this process to a child through ``os.pipe``, spread as the CPUs are."""
    r, w = os.pipe()
    child = multiprocessing.get_context("fork").Process(target=_host_drain, args=(r, total))
    child.start()
    with pl.host_placed(pl.UNPINNED):
        pl.spread(placement, [os.getpid(), child.pid])
        block = b"x" * CHUNK
        start = time.perf_counter()
        for _ in range(total // CHUNK):
            os.write(w, block)
        child.join()
        elapsed = time.perf_counter() - start
    os.close(r)
    os.close(w)
    return total / elapsed / 1e6


# -- ping-pong ----------------------------------------------------------------------------------


def _pong(arg):
    from rumpmp.kern import rump_sys_read, rump_sys_write

    rfd, wfd, rounds = arg
    for _ in range(rounds):
        rump_sys_write(wfd, rump_sys_read(rfd, 1))


def kernel_pingpong(rounds: int) -> float:
    """Microseconds per 1-byte round trip between this lwp and a kthread on CPU 1."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        rump_sys_pipe,
        rump_sys_read,
        rump_sys_write,
    )

    a_r, a_w = rump_sys_pipe()
    b_r, b_w = rump_sys_pipe()
    flags = KTHREAD_MUSTJOIN | KTHREAD_MPSAFE
    lid = kthread_create(PRI_KTHREAD, flags, 1, _pong, (a_r, b_w, rounds), "pong")
    rump_sys_write(a_w, b"p")  # warm up: the kthread has started
    rump_sys_read(b_r, 1)
    start = time.perf_counter()
    for _ in range(rounds - 1):
        rump_sys_write(a_w, b"p")
        rump_sys_read(b_r, 1)
    elapsed = time.perf_counter() - start
    kthread_join(lid)
    return elapsed / (rounds - 1) * 1e6


# -- files on many CPUs ---------------------------------------------------------------------------


def _make_files(arg):
    from rumpmp.kern import O_CREAT, O_WRONLY, rump_sys_close, rump_sys_open, rump_sys_write

    directory, n = arg
    data = b"f" * 4096
    for i in range(n):
        fd = rump_sys_open(f"{directory}/{i}", O_CREAT | O_WRONLY, 0o644)
        rump_sys_write(fd, data)
        rump_sys_close(fd)


def files_per_second(ncpu: int, per_worker: int) -> float:
    """Files made (create, write 4 KiB, close) per second by one kthread per CPU,
    each in a directory of its own."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        getticks,
        kthread_create,
        kthread_join,
        rump_sys_mkdir,
        rump_sys_rmdir,
        rump_sys_unlink,
    )

    stamp = getticks()
    dirs = [f"/w{stamp}_{i}" for i in range(ncpu)]
    for d in dirs:
        rump_sys_mkdir(d)
    flags = KTHREAD_MUSTJOIN | KTHREAD_MPSAFE
    start = time.perf_counter()
    lids = [
        kthread_create(PRI_KTHREAD, flags, i, _make_files, (d, per_worker), "mk")
        for i, d in enumerate(dirs)
    ]
    for lid in lids:
        kthread_join(lid)
    rate = ncpu * per_worker / (time.perf_counter() - start)
    for d in dirs:  # room for the next run
        for i in range(per_worker):
            rump_sys_unlink(f"{d}/{i}")
        rump_sys_rmdir(d)
    return rate


def _median(fn, repeat: int = REPEAT) -> float:
    return statistics.median(fn() for _ in range(repeat))


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in (pl.ONE_CORE, pl.TWO_CORES):
        with rumpmp.boot(2) as k:
            pl.spread(placement, k.cpu_pids())
            ours = _median(lambda k=k: k.run(kernel_throughput, MEGS << 20, cpu=0))
            ping = _median(lambda k=k: k.run(kernel_pingpong, PINGS, cpu=0))
        peer = _median(lambda p=placement: host_throughput(MEGS << 20, p))
        with pl.host_placed(placement):
            floor = _median(lambda p=placement: host_pingpong(PINGS, p))
        out.append(
            (
                f"pipe throughput, 64 KiB writes, 2 CPUs, {placement} (target >= 0.5x)",
                f"{ours:.0f} MB/s",
                f"{peer:.0f} MB/s (os.pipe, 2 processes)",
                f"{ours / peer:.2f}x",
            )
        )
        out.append(
            (
                f"pipe ping-pong, 1 byte, 2 CPUs, {placement} (target <= 2x)",
                f"{ping:.1f} us",
                f"{floor:.1f} us (2-semaphore ping-pong)",
                f"{ping / floor:.2f}x",
            )
        )
    with rumpmp.boot(8) as k:
        k.run(files_per_second, 8, FILES)  # warm up: caches, free lists, the first blocks
        many = _median(lambda: k.run(files_per_second, 8, FILES))
    with rumpmp.boot(1) as k:
        k.run(files_per_second, 1, FILES)
        one = _median(lambda: k.run(files_per_second, 1, FILES))
    out.append(
        (
            "create + write 4 KiB + close, 8 CPUs vs 1, unpinned (target >= 1.6x)",
            f"{many:,.0f} files/s",
            f"{one:,.0f} files/s (1 CPU)",
            f"{many / one:.2f}x",
        )
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["files"])
