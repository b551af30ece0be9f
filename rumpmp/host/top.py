"""``python -m rumpmp top``: a running kernel's CPUs, live, from a server at
$RUMP_SERVER: per CPU the lwp holding it, its run queue, context switches,
cross-calls and softints a second, and the most contended locks when the server
counts them (RUMP_LOCKSTAT=1).  Everything is read from sysctl nodes
(``kern.sched.cpuN.*``, ``kern.lockstat.*``), so ``python -m rumpmp sysctl`` shows
the same numbers.  Refreshed every second until Ctrl-C; ``--once`` prints one
screen (two readings a second apart) and exits.
"""

from __future__ import annotations

import argparse
import sys  # the tool writes to stdio
import time  # the tool samples once a second
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from rumpmp import rumpclient
from rumpmp.host.lockstat import server_rows
from rumpmp.rumpkern.locking.lockstat import LockStat

#: The per-CPU counters read each time, as kern.sched.cpuN.<name>.
COUNTERS = ("curlwp", "nrun", "nswtch", "xcalls", "softints")
RATES = ("nswtch", "xcalls", "softints")  # shown per second
TOP_LOCKS = 5


@dataclass
class Sample:
    """One reading of the server's counters."""

    when: float
    cpus: list[dict[str, int]]
    locks: list[LockStat] | None  # None when the server does not count


def sample(client: rumpclient.Client, ncpu: int, lockstat: bool) -> Sample:
    cpus = [
        {name: int(client.sysctl(f"kern.sched.cpu{c}.{name}")) for name in COUNTERS}  # type: ignore[call-overload]
        for c in range(ncpu)
    ]
    return Sample(time.monotonic(), cpus, server_rows(client) if lockstat else None)


def screen(before: Sample, after: Sample, hostname: str) -> Group:
    """What one refresh shows: the CPUs' table, and the locks' when counted."""
    dt = max(after.when - before.when, 1e-9)
    cpus = Table(title=f"rumpmp top: {hostname}, {len(after.cpus)} CPUs", title_justify="left")
    for name, justify in (("CPU", "left"), ("LWP", "right"), ("RUNQ", "right"),
                          ("CSW/s", "right"), ("XCALL/s", "right"), ("SOFTINT/s", "right")):  # fmt: skip
        cpus.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c, (old, new) in enumerate(zip(before.cpus, after.cpus, strict=True)):
        rates = [f"{(new[k] - old[k]) / dt:.0f}" for k in RATES]
        cpus.add_row(f"cpu{c}", str(new["curlwp"] or "idle"), str(new["nrun"]), *rates)
    parts: list[Table] = [cpus]
    if after.locks is not None:
        locks = Table(title="most contended locks (since boot)", title_justify="left")
        for name in ("LOCK", "KIND", "COUNT", "CONTENDED", "WAIT ms", "HOLD ms"):
            locks.add_column(name, justify="left" if name in ("LOCK", "KIND") else "right")
        for r in after.locks[:TOP_LOCKS]:
            locks.add_row(r.name, r.kind, str(r.acquisitions), str(r.contended),
                          f"{r.wait_ns / 1e6:.2f}", f"{r.hold_ns / 1e6:.2f}")  # fmt: skip
        parts.append(locks)
    return Group(*parts)


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "top",
        help="live per-CPU counters of the kernel at $RUMP_SERVER",
        description="Show the kernel at $RUMP_SERVER per CPU (the lwp holding it, its "
        "run queue, context switches, cross-calls and softints a second) and its most "
        "contended locks, refreshed every second until Ctrl-C.",
    )
    s.add_argument("--once", action="store_true", help="print one screen and exit")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")


def main(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        print("rumpmp: top: --interval must be positive (see --help)", file=sys.stderr)
        return 2
    try:
        client = rumpclient.connect()
        ncpu = int(client.sysctl("hw.ncpu"))  # type: ignore[call-overload]
        hostname = str(client.sysctl("kern.hostname"))
        counting = bool(client.sysctl("kern.lockstat.enabled"))
        before = sample(client, ncpu, counting)
        if args.once:
            time.sleep(args.interval)
            Console().print(screen(before, sample(client, ncpu, counting), hostname))
            return 0
        with Live(screen(before, before, hostname), auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                after = sample(client, ncpu, counting)
                live.update(screen(before, after, hostname), refresh=True)
                before = after
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"rumpmp top: {e.strerror or e}", file=sys.stderr)
        return 1
