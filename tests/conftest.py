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


def wait_for_boot_threads(k: rumpmp.Kernel, bound: float = 30.0) -> None:
    """Wait until the kernel threads started at boot are running (their start-up
    frees heap blocks, so heap counts are stable only after this)."""
    from rumpmp import scheduler

    deadline = time.monotonic() + bound
    while any(
        scheduler.spc(k._arena, c).w[scheduler.spc(k._arena, c).s + scheduler.SPC_NNEW]
        for c in range(k.ncpu)
    ):
        assert time.monotonic() < deadline, "boot threads did not start"
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
