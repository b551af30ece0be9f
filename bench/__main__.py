"""Run every benchmark and print one Markdown table: ``python -m bench``.

Each module in this package exposes ``rows()`` returning
(benchmark, rumpmp, peer or floor, ratio) tuples of already formatted medians.
"""

from __future__ import annotations

import importlib
import sys

MODULES = ["boot", "roundtrip", "locks", "xcall", "callout", "kmem"]


def main(names: list[str]) -> None:
    print("| benchmark | rumpmp (median) | peer or floor | ratio |")
    print("|---|---:|---:|---:|")
    for name in names or MODULES:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            continue
        for row in module.rows():
            print("| " + " | ".join(str(cell) for cell in row) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
