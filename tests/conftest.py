"""Shared fixtures: kernels that are always halted and checked for leaks."""

from __future__ import annotations

import contextlib
import os

import pytest

import rumpmp
from tests.helpers import assert_no_leak, wait_for_boot_threads


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
        with contextlib.suppress(rumpmp.RumpPanic):
            k.halt()
        assert_no_leak(k.prefix)


@pytest.fixture
def kernel(boot):
    """A running 4-CPU kernel."""
    return boot(4)


# LOCKDEBUG is on in tests (each kernel reads it at boot); benchmarks leave it off.
os.environ.setdefault("RUMP_LOCKDEBUG", "1")
