"""System calls: ``python -m bench.syscall``.

- ``k.sys.getpid()`` from the host beside an ``xc_unicast`` no-op, in each placement
  (the host, then the kernel's CPUs placed alike);
- ``rump_sys_getpid()`` in kernel code, per call.
"""

from __future__ import annotations

import rumpmp
from bench import placement as pl
from bench.roundtrip import noop, per_call

CALLS = 100_000


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


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in pl.PLACEMENTS:
        with pl.host_placed(placement), rumpmp.boot(2) as k:
            pl.place(placement, k.cpu_pids())
            k.sys.getpid()
            sys_us = per_call(k.sys.getpid)
            uni_us = per_call(lambda k=k: k.xc_unicast(0, noop, None, None, 1))
        out.append(
            (
                f"k.sys.getpid(), {placement}",
                f"{sys_us:.1f} us",
                f"{uni_us:.1f} us (xc_unicast no-op)",
                f"{sys_us / uni_us:.2f}x",
            )
        )
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
