"""lockstat(8) for rumpmp: the table of lock contention, and ``python -m rumpmp
lockstat``, which prints a server's (at $RUMP_SERVER, booted with RUMP_LOCKSTAT=1).

The rows come from ``Kernel.lockstat()`` or the sysctl node ``kern.lockstat.stats``;
the table is sorted by time waited, as NetBSD's lockstat sorts by its chosen time.
"""

from __future__ import annotations

import argparse
import errno
import sys  # the tool writes to stdio
from collections.abc import Iterable

from rumpmp import rumpclient
from rumpmp.rumpkern.locking.lockstat import LockStat

#: Rows the stress report shows (the JSON has them all).
TOP_LOCKS = 10

_HEADER = (
    f"{'Wait%':>6} {'Count':>8} {'Contend':>8} {'Wait/ms':>9} {'Wmax/us':>9} "
    f"{'Hold/ms':>9} {'Hmax/us':>9} {'Spins':>8}  {'Kind':<9}  {'Lock':<24}  Initialised at"
)


def lockstat_table(
    rows: Iterable[LockStat], top: int | None = None, elapsed: float | None = None
) -> list[str]:
    """The table's lines: the ``top`` rows that waited longest (all if None)."""
    rows = list(rows)
    total_wait = sum(r.wait_ns for r in rows) or 1
    out = [f"Elapsed time: {elapsed:.2f} seconds."] if elapsed is not None else []
    out += [
        f"-- Lock contention: {len(rows)} locks, "
        f"{sum(r.contended for r in rows)} of {sum(r.acquisitions for r in rows)} "
        "acquisitions waited",
        _HEADER,
        " ".join("-" * n for n in (6, 8, 8, 9, 9, 9, 9, 8)) + "  " + "-" * 9 + "  " + "-" * 24,
    ]
    for r in rows[:top]:
        out.append(
            f"{100 * r.wait_ns / total_wait:6.2f} {r.acquisitions:8d} {r.contended:8d} "
            f"{r.wait_ns / 1e6:9.2f} {r.wait_max_ns / 1e3:9.1f} {r.hold_ns / 1e6:9.2f} "
            f"{r.hold_max_ns / 1e3:9.1f} {r.spins:8d}  {r.kind:<9}  {r.name:<24}  {r.site or '-'}"
        )
    if top is not None and len(rows) > top:
        out.append(f"({len(rows) - top} more locks)")
    return out


def server_rows(client: rumpclient.Client) -> list[LockStat]:
    """lockstat's rows at a server; EINVAL if its kernel does not count."""
    if not client.sysctl("kern.lockstat.enabled"):
        raise OSError(errno.EINVAL, "lockstat is off at the server (boot it with RUMP_LOCKSTAT=1)")
    return [LockStat(*row) for row in client.sysctl("kern.lockstat.stats")]  # type: ignore[attr-defined]


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "lockstat",
        help="lock contention at $RUMP_SERVER",
        description="Print the lock contention the kernel at $RUMP_SERVER has counted "
        "(a server booted with RUMP_LOCKSTAT=1), most time waited first.",
    )
    s.add_argument("-n", dest="top", type=int, default=20, help="rows to show (default 20)")


def main(args: argparse.Namespace) -> int:
    try:
        rows = server_rows(rumpclient.connect())
    except OSError as e:
        print(f"rumpmp lockstat: {e.strerror or e}", file=sys.stderr)
        return 1
    print("\n".join(lockstat_table(rows, args.top)))
    return 0
