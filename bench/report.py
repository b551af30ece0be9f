"""The benchmark report: ``python -m bench --report DIR``.

Writes ``DIR/report.md`` (the machine, the Python version, the date, the placements,
the issue's targets with the figure measured and met or not, then every module's
table) and PNG plots made with matplotlib (the ``[bench]`` extra):

- boot.png: boot time to ready vs CPUs (1-8) beside the fork + semaphore floor
- broadcast.png: ``xc_broadcast`` latency vs CPUs
- roundtrip.png: one call's round trip per placement (floor, xc_unicast, run, peers)
- locks.png: contended-counter throughput vs CPUs beside processes on one Lock
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import rumpmp
from bench import boot, futures, locks, roundtrip, syscall, xcall
from bench import placement as pl

REPEAT = 3
CPUS = range(1, 9)


def _median(fn: Callable[[], float], repeat: int = REPEAT) -> float:
    return statistics.median(fn() for _ in range(repeat))


# -- series for the plots -----------------------------------------------------------------


def boot_series() -> tuple[list[float], list[float]]:
    """Milliseconds to boot n CPUs, and for the fork floor, n = 1..8."""
    ours = [_median(lambda n=n: boot.boot_once(n)) * 1e3 for n in CPUS]
    floor = [_median(lambda n=n: boot.floor_once(n)) * 1e3 for n in CPUS]
    return ours, floor


def broadcast_series() -> list[float]:
    """Microseconds per no-op xc_broadcast on n CPUs, n = 1..8."""
    out = []
    for n in CPUS:
        with rumpmp.boot(n) as k:
            out.append(roundtrip.per_call(lambda k=k: k.xc_broadcast(0, xcall.noop), 200))
    return out


def roundtrip_series() -> dict[str, dict[str, float]]:
    """Per placement: the floor, xc_unicast, what a user calls and the peers, in us."""
    out = {}
    for placement in pl.CALL_PLACEMENTS:
        out[placement] = {
            "semaphore floor": roundtrip.floor(placement),
            **roundtrip.kernel_calls(placement),
            **roundtrip.peers(placement),
        }
    return out


def lock_series() -> tuple[list[float], list[float]]:
    """Increments per second of a contended counter on n CPUs / n processes."""
    counts = (1, 2, 4, 8)
    ours, peer = [], []
    for n in counts:
        with rumpmp.boot(n, lockdebug=False) as k:
            ours.append(_median(lambda k=k, n=n: k.run(locks.kernel_counter, 5000, n)))
        peer.append(_median(lambda n=n: locks.host_counter(5000, n)))
    return ours, peer


def pingpong(placement: str) -> tuple[float, float]:
    """(condvar ping-pong between 2 CPUs, semaphore floor) in us, placed alike."""
    with pl.host_placed(placement), rumpmp.boot(2, lockdebug=False) as k:
        pl.spread(placement, k.cpu_pids())
        ours = _median(lambda: k.run(locks.kernel_pingpong, locks.PINGPONG))
        floor = _median(lambda: locks.host_pingpong(locks.PINGPONG, placement))
    return ours, floor


# -- targets --------------------------------------------------------------------------------


def targets(rt: dict[str, dict[str, float]]) -> list[tuple[str, str, str, bool]]:
    """(measure, figure, target, met) for each target: issue 10's, then issue 20's."""
    out = []
    for placement, limit in ((pl.ONE_CORE, 3.0), (pl.TWO_CORES, 1.0)):
        if placement not in rt:
            continue
        r = rt[placement]
        ratio = r["xc_unicast"] / r["semaphore floor"]
        out.append(
            (
                f"xc_unicast vs semaphore floor, {placement}",
                f"{r['xc_unicast']:.1f} / {r['semaphore floor']:.1f} us = {ratio:.2f}x",
                f"<= {limit:g}x",
                ratio <= limit,
            )
        )
    for placement in (pl.ONE_CORE, pl.TWO_CORES):
        if placement not in rt:
            continue
        faster = rt[placement]["ProcessPoolExecutor"] / rt[placement]["xc_unicast"]
        out.append(
            (
                f"xc_unicast vs ProcessPoolExecutor, {placement}",
                f"{faster:.1f}x faster",
                ">= 10x faster",
                faster >= 10,
            )
        )
    with rumpmp.boot(2, lockdebug=False) as k:
        ours = _median(lambda: k.run(locks.kernel_uncontended, locks.UNCONTENDED, cpu=0))
        count = _median(lambda: k.run(locks.kernel_counter, locks.COUNTER))
    host = _median(lambda: locks.host_lock_uncontended(locks.UNCONTENDED))
    out.append(
        (
            "uncontended mutex enter+exit vs multiprocessing.Lock (local names)",
            f"{ours:.0f} / {host:.0f} ns = {ours / host:.1f}x",
            "<= 3x",
            ours / host <= 3,
        )
    )
    peer = _median(lambda: locks.host_counter(locks.COUNTER))
    out.append(
        (
            "contended counter, 2 CPUs vs 2 processes on multiprocessing.Lock",
            f"{count / peer:.2f}x throughput",
            ">= 1.5x",
            count / peer >= 1.5,
        )
    )
    for placement in (pl.ONE_CORE, pl.TWO_CORES):
        ping, floor = pingpong(placement)
        out.append(
            (
                f"condvar ping-pong, 2 CPUs vs semaphore floor, {placement}",
                f"{ping:.1f} / {floor:.1f} us = {ping / floor:.2f}x",
                "<= 1.3x",
                ping / floor <= 1.3,
            )
        )
    boot.byte_compile()
    cli = [sys.executable, "-m", "rumpmp", "boot", "--ncpu", "8"]
    deps = [sys.executable, "-c", "import multiprocess, posix_ipc, cloudpickle"]
    imp = [sys.executable, "-c", "import rumpmp"]
    t_cli, t_deps, t_imp = (_median(lambda a=a: boot.command_once(a)) for a in (cli, deps, imp))
    out.append(
        (
            "`python -m rumpmp boot --ncpu 8` vs bare imports of the dependencies",
            f"{t_cli * 1e3:.0f} / {t_deps * 1e3:.0f} ms = {t_cli / t_deps:.2f}x",
            "<= 2x",
            t_cli / t_deps <= 2,
        )
    )
    out.append(
        (
            "`import rumpmp` vs bare imports of its dependencies",
            f"{t_imp * 1e3:.0f} / {t_deps * 1e3:.0f} ms = {t_imp / t_deps:.2f}x",
            "<= 1.3x",
            t_imp / t_deps <= 1.3,
        )
    )
    one, two = xcall.throughput(1), xcall.throughput(2)
    out.append(("per-CPU compute, 2 CPUs vs 1", f"{two / one:.2f}x", ">= 1.9x", two / one >= 1.9))
    return out + front_door_targets(rt)


def front_door_targets(rt: dict[str, dict[str, float]]) -> list[tuple[str, str, str, bool]]:
    """(measure, figure, target, met) for each of issue 20's targets (the host's calls,
    the Executor, joblib, a CPU's death)."""
    out = []
    placements = [p for p in (pl.ONE_CORE, pl.TWO_CORES, pl.UNPLACED) if p in rt]
    for name, limit in roundtrip.CALLS_AND_TARGETS:
        for placement in placements:
            r = rt[placement]
            ratio = r[name] / r["xc_unicast"]
            out.append(
                (
                    f"{name} vs xc_unicast no-op, {placement}",
                    f"{r[name]:.1f} / {r['xc_unicast']:.1f} us = {ratio:.2f}x",
                    f"<= {limit:g}x",
                    ratio <= limit,
                )
            )
    four, one = syscall.thread_scaling()
    out.append(
        (
            f"{syscall.THREADS} host threads calling getpid, each its own process: 4 CPUs vs 1",
            f"{four / one:.2f}x throughput",
            ">= 1.6x",
            four / one >= 1.6,
        )
    )
    for placement in placements:
        r = futures.roundtrips(placement)
        faster = r["ProcessPoolExecutor"] / r["KernelExecutor"]
        out.append(
            (
                f"KernelExecutor.submit(noop).result() vs ProcessPoolExecutor, {placement}",
                f"{r['KernelExecutor']:.1f} / {r['ProcessPoolExecutor']:.1f} us = "
                f"{faster:.1f}x faster",
                ">= 5x faster",
                faster >= 5,
            )
        )
    m = futures.maps()
    ours = m.pop("KernelExecutor.map")
    best_name, best = min(((n, t) for n, t in m.items() if "best" in n), key=lambda x: x[1])
    out.append(
        (
            f"map(noop, range(10,000)) vs {best_name}, unplaced",
            f"{ours * 1e3:.1f} / {best * 1e3:.1f} ms = {best / ours:.1f}x faster",
            ">= 1.5x faster",
            best / ours >= 1.5,
        )
    )
    j = futures.joblibs()
    out.append(
        (
            "joblib Parallel(n_jobs=2), 1,000 tiny tasks, vs loky, slowest of 5",
            f"{j['rumpmp'] * 1e3:.1f} / {j['loky'] * 1e3:.1f} ms = "
            f"{j['loky'] / j['rumpmp']:.1f}x faster",
            ">= 2x faster",
            j["loky"] / j["rumpmp"] >= 2,
        )
    )
    failed, seconds, right = futures.cpu_death()
    out.append(
        (
            "a CPU SIGKILLed under 200 tasks of 5 ms (restart)",
            f"{failed} failed, every other result {'right' if right else 'WRONG'}, "
            f"a task done {seconds * 1e3:.0f} ms after",
            "<= 1 failed, <= 0.5 s",
            failed <= 1 and right and seconds <= 0.5,
        )
    )
    return out


# -- plots ------------------------------------------------------------------------------------


def plot(directory: Path, data: dict) -> list[str]:
    """Write the PNG plots; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        names.append(name)

    ours, floor = data["boot"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(CPUS), ours, "o-", label="rumpmp boot to ready")
    ax.plot(list(CPUS), floor, "s--", label="fork n + semaphore (floor)")
    ax.set(xlabel="virtual CPUs", ylabel="ms (median)", title="Boot time")
    ax.legend()
    save(fig, "boot.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(CPUS), data["broadcast"], "o-")
    ax.set(xlabel="virtual CPUs", ylabel="us per call (median)", title="xc_broadcast latency")
    save(fig, "broadcast.png")

    rt = data["roundtrip"]
    series = list(next(iter(rt.values())))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        xs = [j + i * width for j in range(len(rt))]
        ax.bar(xs, [rt[p][name] for p in rt], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rt))], list(rt))
    ax.set(ylabel="us per no-op round trip (median)", title="One call, by placement")
    ax.legend(fontsize=8)
    save(fig, "roundtrip.png")

    ours, peer = data["locks"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([1, 2, 4, 8], ours, "o-", label="kernel mutex, n CPUs")
    ax.plot([1, 2, 4, 8], peer, "s--", label="multiprocessing.Lock, n processes")
    ax.set(xlabel="CPUs / processes", ylabel="increments per second", title="Contended counter")
    ax.legend()
    save(fig, "locks.png")
    return names


def write(directory: str, table: list[str]) -> None:
    """Measure, plot and write DIR/report.md; ``table`` is every module's rows."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "boot": boot_series(),
        "broadcast": broadcast_series(),
        "roundtrip": roundtrip_series(),
        "locks": lock_series(),
    }
    met = targets(data["roundtrip"])
    pngs = plot(out, data)
    lines = [
        "# rumpmp benchmark report",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {len(os.sched_getaffinity(0))} host cores, "
        f"{platform.platform()}",
        f"- Python {platform.python_version()}, rumpmp {importlib.metadata.version('rumpmp')}",
        f"- placements: {', '.join(pl.CALL_PLACEMENTS)} (see bench/placement.py)",
        "",
        "## Targets",
        "",
        "| measure (same placement, one run) | measured | target | met |",
        "|---|---:|---:|:---:|",
        *(f"| {m} | {fig} | {t} | {'yes' if ok else 'no'} |" for m, fig, t, ok in met),
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})" for name in pngs),
        "",
        "## Every benchmark",
        "",
        *table,
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
