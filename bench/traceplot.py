"""Draw a kernel trace as Perfetto lays it out: ``python -m bench.traceplot TRACE.json
OUT.png [START_MS [WIDTH_MS]]``.

A track per CPU, time across; each stretch an lwp held the CPU is a bar in its own
colour (named when there is room), a contended lock a red tick, a clock tick a grey
one, and an arrow from each wake-up to the run it caused.  Without START_MS it shows
WIDTH_MS (default 4) around the busiest moment of the trace.
"""

from __future__ import annotations

import json
import sys
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # (after choosing the backend)


def _busiest(runs: list[dict], width: float) -> float:
    """The start of the ``width`` window holding the most run slices."""
    starts = sorted(e["ts"] for e in runs)
    best, at, j = 0, starts[0] if starts else 0.0, 0
    for i, s in enumerate(starts):
        while starts[j] < s - width:
            j += 1
        if i - j > best:
            best, at = i - j, s - width
    return at


def plot(doc: dict, out: str, start: float | None = None, width: float = 4000.0) -> None:
    events = doc["traceEvents"]
    ncpu = doc["otherData"]["ncpu"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"] == "run"]
    if start is None:
        start = _busiest(runs, width)
    end = start + width
    fig, ax = plt.subplots(figsize=(12, 0.9 * ncpu + 1.2), dpi=110)
    cmap = plt.get_cmap("tab20")
    for e in (e for e in events if e["ph"] == "X" and e["ts"] < end and e["ts"] + e["dur"] > start):
        row = ncpu - 1 - e["tid"]
        if e["cat"] == "run":
            colour = cmap(zlib.crc32(e["name"].encode()) % 20)
            ax.barh(row, e["dur"], left=e["ts"], height=0.6, color=colour, edgecolor="white")
            if e["dur"] > width / 12:
                mid = max(e["ts"], start) + (min(e["ts"] + e["dur"], end) - max(e["ts"], start)) / 2
                ax.text(mid, row, e["name"], ha="center", va="center", fontsize=7, clip_on=True)
        else:  # a handler inside a run: a thin bar under it
            ax.barh(row - 0.38, e["dur"], left=e["ts"], height=0.12, color="black")
    for e in (e for e in events if e["ph"] == "i" and start <= e["ts"] <= end):
        row = ncpu - 1 - e["tid"]
        colour, y0, y1 = {"lock": ("red", 0.32, 0.45), "clock": ("grey", -0.45, -0.3)}.get(
            e["cat"], ("blue", 0.32, 0.45)
        )
        ax.plot([e["ts"], e["ts"]], [row + y0, row + y1], color=colour, linewidth=1)
    flows: dict[int, dict] = {}
    for e in events:
        if e["ph"] in ("s", "f"):
            flows.setdefault(e["id"], {})[e["ph"]] = e
    for pair in flows.values():
        s, f = pair.get("s"), pair.get("f")
        if s and f and start <= s["ts"] <= end and f["ts"] <= end:
            ax.annotate("", xy=(f["ts"], ncpu - 1 - f["tid"]), xytext=(s["ts"], ncpu - 1 - s["tid"]),
                        arrowprops={"arrowstyle": "->", "color": "black", "lw": 0.7})  # fmt: skip
    ax.set_yticks(range(ncpu), [f"cpu{c}" for c in reversed(range(ncpu))])
    ax.set_xlim(start, end)
    ax.set_ylim(-0.7, ncpu - 0.3)
    ax.xaxis.tick_top()
    ax.set_xlabel("µs since the trace began (red: contended lock, grey: tick, arrow: wake-up)")
    ax.grid(axis="x", linestyle=":", linewidth=0.5)
    fig.tight_layout()
    fig.savefig(out)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m bench.traceplot TRACE.json OUT.png [START_MS [WIDTH_MS]]")
    with open(argv[0]) as f:
        doc = json.load(f)
    start = float(argv[2]) * 1000 if len(argv) > 2 else None
    width = float(argv[3]) * 1000 if len(argv) > 3 else 4000.0
    plot(doc, argv[1], start, width)


if __name__ == "__main__":
    main(sys.argv[1:])
