"""Callout lateness on 8 CPUs: ``python -m bench.callout``.

Every CPU schedules callouts due 1..10 ticks ahead; each handler records how many
ticks after its due tick it ran.  Printed: the median and the histogram.
"""

from __future__ import annotations

import collections
import statistics
import struct

import rumpmp

PER_CPU = 100
NCPU = 8


def _late(arg):
    from rumpmp.kern import getticks

    buf, i, due = arg
    struct.pack_into("<q", buf, 8 * i, getticks() - due + 1)  # +1: 0 means "not yet"


def _schedule_here(buf, base):
    import random

    from rumpmp.kern import callout_init, callout_reset, getticks

    rng = random.Random(base)
    for i in range(base, base + PER_CPU):
        ticks = rng.randint(1, 10)
        callout_reset(callout_init(0), ticks, _late, (buf, i, getticks() + ticks))


def lateness() -> list[int]:
    with rumpmp.boot(NCPU) as k:
        n = NCPU * PER_CPU
        buf = k.run(lambda: __import__("rumpmp.kern").kern.kmem_zalloc(8 * n))
        for cpu in range(NCPU):
            k.xc_unicast(0, _schedule_here, buf, cpu * PER_CPU, cpu)

        def all_fired(b, _):
            from rumpmp.kern import kpause

            for _ in range(3000):
                if all(struct.unpack_from(f"<{n}q", b)):
                    return True
                kpause("bench", False, 1)
            return False

        assert k.xc_unicast(0, all_fired, buf, None, 0)
        return [v - 1 for v in struct.unpack_from(f"<{n}q", buf)]


def rows() -> list[tuple[str, str, str, str]]:
    late = lateness()
    hist = collections.Counter(min(v, 3) for v in late)
    shape = ", ".join(f"{k if k < 3 else '3+'}: {hist[k]}" for k in range(4))
    return [
        (
            f"callout lateness, {NCPU} CPUs x {PER_CPU}",
            f"median {statistics.median(late):.0f} ticks",
            f"histogram (ticks late: count) {shape}",
            f"max {max(late)}",
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["callout"])
