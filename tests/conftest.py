"""Shared fixtures: kernels that are always halted, and a leak check on /dev/shm."""

from __future__ import annotations

import os
import time

import pytest

import rumpmp
from hypercalls import shm


def assert_no_leak(prefix: str) -> None:
    left = shm.list_prefix(prefix)
    assert left == [], f"named objects left behind: {left}"


def wait_for(cond, timeout: float, what: str) -> float:
    """Wait until cond() is true; fail naming ``what`` after ``timeout`` seconds."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def pid_gone(pid: int) -> bool:
    """The process has exited (a zombie child of this process counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def wait_for_boot_threads(k: rumpmp.Kernel, bound: float = 30.0) -> None:
    """Wait until the kernel threads started at boot have run up to their first sleep
    (starting frees their entry blobs, so heap counts are stable only after this):
    no CPU has lwps waiting to start, and every CPU is idle."""
    from rumpmp import scheduler

    def settled(cpu: int) -> bool:
        sp = scheduler.spc(k._arena, cpu)
        return not sp.w[sp.s + scheduler.SPC_NNEW] and not sp.w[sp.s + scheduler.SPC_CURLWP]

    deadline = time.monotonic() + bound
    while not all(settled(cpu) for cpu in range(k.ncpu)):
        assert time.monotonic() < deadline, "boot threads did not settle"
        time.sleep(0.005)


@pytest.fixture
def boot():
    """Boot kernels for a test; each is halted afterwards and checked for leaks."""
    kernels: list[rumpmp.Kernel] = []

    def _boot(*args, **kwargs) -> rumpmp.Kernel:
        k = rumpmp.boot(*args, **kwargs)
        kernels.append(k)
        wait_for_boot_threads(k)
        return k

    yield _boot
    for k in kernels:
        try:
            k.halt()
        except rumpmp.RumpPanic:
            pass
        assert_no_leak(k.prefix)


@pytest.fixture
def kernel(boot):
    """A running 4-CPU kernel."""
    return boot(4)


# LOCKDEBUG is on in tests (each kernel reads it at boot); benchmarks leave it off.
os.environ.setdefault("RUMP_LOCKDEBUG", "1")
