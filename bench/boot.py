"""Boot-to-ready of 1, 2, 4, 8 CPUs beside the floor, and the whole CLI beside a bare import.

The floor: forking the same number of bare processes that each post a semaphore,
and waiting for all the posts.  And boot beside the last tree whose CPUs were forked
from the host itself (FORKED_FROM_HOST, before the fork server of issue 26).
Run: ``python -m bench.boot``.
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import multiprocess
import posix_ipc

import rumpmp
from bench import baseline

REPEAT = 7
#: The last commit whose CPUs were forked from the host (before the fork server).
FORKED_FROM_HOST = "a6d0c1b"
ROUNDS = 3

#: Run in a program of its own against a tree: the first boot of the program and
#: the median of the later ones, in ms.
_BOOTS = """
import json, statistics, sys, time
import rumpmp
assert rumpmp.__file__.startswith(sys.argv[1]), rumpmp.__file__
n, times = int(sys.argv[2]), []
for _ in range(16):
    start = time.perf_counter()
    k = rumpmp.boot(n)
    times.append((time.perf_counter() - start) * 1e3)
    k.halt()
print(json.dumps({"first": times[0], "later": statistics.median(times[1:])}))
"""


def _post(name: str) -> None:
    posix_ipc.Semaphore(name).release()


def floor_once(n: int) -> float:
    """Fork n processes that each post one semaphore; seconds until all have."""
    name = f"/rmpbench-{uuid.uuid4().hex[:8]}"
    sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, initial_value=0)
    ctx = multiprocess.get_context("fork")
    start = time.perf_counter()
    procs = [ctx.Process(target=_post, args=(name,)) for _ in range(n)]
    for p in procs:
        p.start()
    for _ in range(n):
        sem.acquire(10)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    sem.unlink()
    return elapsed


def boot_once(n: int) -> float:
    start = time.perf_counter()
    k = rumpmp.boot(n)
    elapsed = time.perf_counter() - start
    k.halt(rumpmp.RB_NOSYNC)
    return elapsed


def byte_compile() -> None:
    """Compile rumpmp and hypercalls to bytecode, as pip does for the dependencies
    when it installs them: an editable install is not, and this environment sets
    PYTHONDONTWRITEBYTECODE, so without this every timed start would compile ~60
    source files and compare that with byte-compiled peers."""
    root = Path(__file__).resolve().parent.parent
    for package in ("rumpmp", "hypercalls"):
        compileall.compile_dir(root / package, quiet=1)


def command_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def median_ms(fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(REPEAT)) * 1e3


def _row(what: str, ours: float, floor: float, floor_name: str) -> tuple[str, str, str, str]:
    return (what, f"{ours:.1f} ms", f"{floor:.1f} ms ({floor_name})", f"{ours / floor:.2f}x")


def rows() -> list[tuple[str, str, str, str]]:
    """(benchmark, rumpmp, floor, ratio) rows, medians of REPEAT runs."""
    out = []
    for n in (1, 2, 4, 8):
        ours, floor = median_ms(boot_once, n), median_ms(floor_once, n)
        out.append(_row(f"boot {n} CPUs to ready", ours, floor, f"fork {n} + semaphore"))
    byte_compile()
    cli = [sys.executable, "-m", "rumpmp", "boot", "--ncpu", "8"]
    bare = [sys.executable, "-c", "import multiprocess, posix_ipc, cloudpickle"]
    ours, floor = median_ms(command_once, cli), median_ms(command_once, bare)
    out.append(_row("`python -m rumpmp boot --ncpu 8`", ours, floor, "bare imports"))
    return out + fork_server_rows()


def against_forked_from_host(n: int) -> tuple[dict, dict]:
    """Boot times (first, later) of this tree and of FORKED_FROM_HOST, each program
    alternating with the other, medians over ROUNDS programs."""
    now: list[dict] = []
    before: list[dict] = []
    with baseline.tree(FORKED_FROM_HOST) as old:
        for _ in range(ROUNDS):
            before.append(baseline.run_in(old, _BOOTS, str(n)))
            now.append(baseline.run_in(baseline.ROOT, _BOOTS, str(n)))

    def medians(runs: list[dict]) -> dict:
        return {k: statistics.median(r[k] for r in runs) for k in ("first", "later")}

    return medians(now), medians(before)


def fork_server_rows() -> list[tuple[str, str, str, str]]:
    out = []
    for n in (1, 8):
        now, before = against_forked_from_host(n)
        for which in ("later", "first"):
            out.append(
                (
                    f"boot {n} CPUs, {which} boots of a program, fork server (target: no worse)",
                    f"{now[which]:.1f} ms",
                    f"{before[which]:.1f} ms forked from the host ({FORKED_FROM_HOST})",
                    f"{now[which] / before[which]:.2f}x",
                )
            )
    return out


def main() -> None:
    print(f"| benchmark | rumpmp (median of {REPEAT}) | floor | ratio |")
    print("|---|---:|---:|---:|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
