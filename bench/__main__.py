"""Run the benchmarks: ``python -m bench [NAME ...] [--report DIR]``.

Each module in this package exposes ``rows()`` returning (benchmark, rumpmp, peer
or floor, ratio) tuples of already formatted medians; they print as one Markdown
table.  ``--report DIR`` also measures the targets and writes DIR/report.md with
plots (bench/report.py).
"""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "boot",
    "roundtrip",
    "locks",
    "xcall",
    "callout",
    "kmem",
    "torture",
    "futures",
    "syscall",
    "files",
    "sp",
    "smp",
    "deterministic",
    "lockstat",
]


def table(names: list[str]) -> list[str]:
    """The Markdown table of the named modules (all of them if none), printed as it grows."""
    lines = ["| benchmark | rumpmp (median) | peer or floor | ratio |", "|---|---:|---:|---:|"]
    print(*lines, sep="\n", flush=True)
    for name in names or MODULES:
        module = importlib.import_module(f"bench.{name}")
        for row in module.rows():
            lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str]) -> None:
    report = None
    if "--report" in argv:
        i = argv.index("--report")
        if i + 1 >= len(argv):
            sys.exit("usage: python -m bench [NAME ...] [--report DIR]")
        report = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    lines = table(argv)
    if report:
        from bench import report as report_

        report_.write(report, lines)
        print(f"report written to {report}/report.md", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
