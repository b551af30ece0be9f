"""Faults a user will meet, counted: ``python -m bench.reliability [N M K G]``.

- N boot/halt cycles with a random CPU count (1..8), each running one call;
- M SIGKILLs of a random vCPU while every CPU is busy (a mutex-heavy load);
- K SIGKILLs of a host process while its kernel is busy;
- G SIGTERMs to a whole process group (what ``timeout``, a CI runner or Ctrl-C do).

For each kind it prints the trials, the failures (a hang, a wrong state, a wrong
error), the time to detect the fault or to clean up after it (median and max), the
named objects left in /dev/shm and the zombie processes left.  Defaults: 300 50 30 10.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

import rumpmp
from hypercalls import shm

BOUND = 30.0  # seconds any single wait may take before the trial counts as a failure


def load(seconds: float) -> int:
    """Busy kernel work for the kills to land in: kthreads on every CPU taking one
    mutex in turn, until ``seconds`` pass."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        mutex_enter,
        mutex_exit,
        mutex_init,
    )
    from rumpmp.rumpkern.base import arena

    m = mutex_init()
    count = kmem_zalloc(8)
    ncpu = arena.current().ncpu

    def worker(_: object) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            mutex_enter(m)
            count[0] = (count[0] + 1) % 256
            mutex_exit(m)

    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, c, worker, None, "load") for c in range(ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    return ncpu


def _wait(cond, bound: float = BOUND) -> float | None:
    """Seconds until cond() holds, or None after ``bound``."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > bound:
            return None
        time.sleep(0.0005)
    return time.monotonic() - start


def _state(pid: int) -> str:
    """The process's state letter ('Z' for a zombie), '' if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _exited(pid: int) -> bool:
    """The process has exited: gone, or a zombie waiting for its parent (the CPUs of a
    dead host are reaped by init, which here does so about once a second)."""
    if _state(pid) in ("", "Z"):
        with contextlib.suppress(ChildProcessError):  # reap it if it is ours
            os.waitpid(pid, os.WNOHANG)
        return True
    return False


def _zombies(pids: list[int]) -> int:
    """Zombies among ``pids`` still there after giving their parent 5 s to reap them."""
    _wait(lambda: all(_state(p) == "" for p in pids), 5)
    return sum(_state(p) == "Z" for p in pids)


class Tally:
    def __init__(self, name: str) -> None:
        self.name, self.trials, self.failures = name, 0, 0
        self.times: list[float] = []
        self.left = self.zombies = 0
        self.notes: list[str] = []

    def fail(self, why: str) -> None:
        self.failures += 1
        if len(self.notes) < 3:
            self.notes.append(why)

    def row(self) -> str:
        t = (
            f"{statistics.median(self.times) * 1e3:.1f} / {max(self.times) * 1e3:.1f} ms"
            if self.times
            else "-"
        )
        return f"| {self.name} | {self.trials} | {self.failures} | {t} | {self.left} | {self.zombies} |"


def boot_halt(n: int) -> Tally:
    tally = Tally("boot, run, halt (1-8 CPUs); time: the halt")
    for _ in range(n):
        tally.trials += 1
        try:
            k = rumpmp.boot(random.randint(1, 8))
            if k.run(lambda: 42, timeout=BOUND) != 42:
                tally.fail("wrong result")
            start = time.monotonic()
            k.halt()
            tally.times.append(time.monotonic() - start)
            if k.state != "halted":
                tally.fail(f"state {k.state}")
        except Exception as e:  # noqa: BLE001 - a failed trial is counted, not raised
            tally.fail(repr(e))
            continue
        tally.left += len(shm.list_prefix(k.prefix))
        tally.zombies += _zombies(k.cpu_pids())
    return tally


def vcpu_kills(m: int) -> Tally:
    tally = Tally("SIGKILL a vCPU under load; time: until callers see RumpPanic")
    for _ in range(m):
        _vcpu_trial(tally)
    return tally


def _vcpu_trial(tally: Tally) -> None:
    tally.trials += 1
    k = rumpmp.boot(4)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            k.run(load, 20.0, timeout=BOUND)
        except BaseException as e:  # noqa: BLE001 - the outcome is what we measure
            outcome.append(e)

    t = threading.Thread(target=call)
    t.start()
    if _wait(lambda: sum(s["load"] for s in k.sched_stats()) >= 5, 10) is None:
        tally.fail("load did not start")
    victim = random.randrange(4)
    start = time.monotonic()
    os.kill(k.cpu_pids()[victim], signal.SIGKILL)
    t.join(BOUND)
    took = time.monotonic() - start
    if t.is_alive() or not outcome or not isinstance(outcome[0], rumpmp.RumpPanic):
        tally.fail(f"caller got {outcome!r}")
    elif f"cpu{victim} died" not in str(outcome[0]):
        tally.fail(f"wrong cause: {outcome[0]}")
    else:
        tally.times.append(took)
    k.halt()
    _wait(lambda: all(_exited(p) for p in k.cpu_pids()), 5)
    tally.left += len(shm.list_prefix(k.prefix))
    tally.zombies += _zombies(k.cpu_pids())


HOST = """
import sys, threading, rumpmp
from bench.reliability import load
k = rumpmp.boot(4)
threading.Thread(target=k.run, args=(load, 60.0), daemon=True).start()
print(k.prefix, *k.cpu_pids(), flush=True)
threading.Event().wait(60)
"""


def _host_trial(tally: Tally, kill) -> None:
    tally.trials += 1
    host = subprocess.Popen(
        [sys.executable, "-c", HOST],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        prefix, *pids = host.stdout.readline().split()  # type: ignore[union-attr]
    except ValueError:
        tally.fail("host did not boot")
        host.kill()
        host.wait()
        return
    cpus = [int(p) for p in pids]
    start = time.monotonic()
    kill(host)
    host.wait(BOUND)
    took = _wait(lambda: all(_exited(p) for p in cpus) and not shm.list_prefix(prefix))
    if took is None:
        tally.fail("CPUs or objects still there")
    else:
        tally.times.append(time.monotonic() - start)
    tally.left += len(shm.list_prefix(prefix))
    tally.zombies += _zombies(cpus)
    shm.unlink_prefix(prefix)


def host_kills(k: int) -> Tally:
    tally = Tally("SIGKILL the host under load; time: until CPUs and objects are gone")
    for _ in range(k):
        _host_trial(tally, lambda host: host.kill())
    return tally


def group_sigterms(g: int) -> Tally:
    tally = Tally("SIGTERM the process group; time: until CPUs and objects are gone")
    for _ in range(g):
        _host_trial(tally, lambda host: os.killpg(host.pid, signal.SIGTERM))
    return tally


def main(argv: list[str]) -> None:
    n, m, k, g = (list(map(int, argv)) + [300, 50, 30, 10][len(argv) :])[:4]
    print("| fault | trials | failures | time (median / max) | left in /dev/shm | zombies |")
    print("|---|---:|---:|---:|---:|---:|")
    for tally in (boot_halt(n), vcpu_kills(m), host_kills(k), group_sigterms(g)):
        print(tally.row(), flush=True)
        for note in tally.notes:
            print(f"<!-- {tally.name}: {note} -->", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
