"""Helpers shared by the tests: bounded waits (in the host and in kernel code), the
leak check, process checks.  Kept apart from the test modules so none imports another."""

from __future__ import annotations

import os
import time

import pytest

from hypercalls import shm

#: Ticks a kernel-side wait may take: 10 s at hz=100.
BOUND_TICKS = 1000


def assert_no_leak(prefix: str) -> None:
    left = shm.list_prefix(prefix)
    assert left == [], f"named objects left behind: {left}"


def wait_for(cond, timeout: float, what: str, state=None) -> float:
    """Wait until cond() is true; fail naming ``what`` (and ``state()``, if given,
    to say what was found) after ``timeout`` seconds."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            found = f"; found {state()!r}" if state else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{found}")
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


def kwait_for(cond, what: str) -> None:
    """In kernel code: sleep a tick at a time until ``cond()``; fail after BOUND_TICKS."""
    from rumpmp.kern import kpause

    for _ in range(BOUND_TICKS):
        if cond():
            return
        kpause("wait", False, 1)
    raise AssertionError(f"timed out waiting for {what}")


def forked(target, args: list[tuple], pass_fds: list[tuple] | None = None) -> list:
    """Run ``target(*args[i])`` in a process each, forked by the fork server (as the
    CPUs are: the test process has threads, and Python 3.12 warns of a fork from
    it); their ServedProcess objects (join, exitcode)."""
    from hypercalls import forkserver

    key = f"test-{os.getpid()}-{time.monotonic_ns()}"
    return forkserver.spawn_group(key, target, args, pass_fds or [()] * len(args))


def errno_of(call, *args) -> int:
    """The errno of the OSError ``call(*args)`` raises (failing if it raises none)."""
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno


def call_in_process(pid: int, fn, *args):
    """Kernel code: ``fn(*args)`` in a new lwp of process ``pid`` (k.run it)."""
    from rumpmp.kern import rump_lwproc_newlwp, rump_lwproc_releaselwp

    rump_lwproc_newlwp(pid)
    try:
        return fn(*args)
    finally:
        rump_lwproc_releaselwp()
