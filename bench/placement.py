"""Where the processes of a benchmark run: every ratio compares like with like.

A wake-up between two processes costs about 2 us when both share a host core and
55-90 us when they do not, and an unpinned run lands in either mode at random.  So
each hot path is measured in each placement, rumpmp and its floor or peer alike:

- "one core": the host and every other process (the kernel's CPUs, the peer's
  workers, the floor's partner) on the same host core;
- "two cores": the host on one core, the other processes on another;
- "unpinned": wherever the host scheduler puts them, for reference;
- "unplaced": as a user calls, nothing pinned and no ``cpu=``: the kernel places the
  call (``CALL_PLACEMENTS``, for the calls into a kernel).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ONE_CORE, TWO_CORES, UNPINNED = "one core", "two cores", "unpinned"
UNPLACED = "unplaced"
ALL_CORES = sorted(os.sched_getaffinity(0))
PLACEMENTS = (ONE_CORE, TWO_CORES, UNPINNED) if len(ALL_CORES) > 1 else (ONE_CORE, UNPINNED)
CALL_PLACEMENTS = (*PLACEMENTS, UNPLACED)


def cpu(placement: str, index: int) -> int | None:
    """The ``cpu=`` a call names in ``placement``: none when unplaced."""
    return None if placement == UNPLACED else index


def _pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of process ``pid`` (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cores)


def host_cores(placement: str) -> set[int]:
    return set(ALL_CORES) if placement in (UNPINNED, UNPLACED) else {ALL_CORES[0]}


def other_cores(placement: str) -> set[int]:
    if placement in (UNPINNED, UNPLACED):
        return set(ALL_CORES)
    return {ALL_CORES[0] if placement == ONE_CORE else ALL_CORES[1]}


def place(placement: str, pids: list[int]) -> None:
    """Put the processes other than the host (``pids``) where ``placement`` says."""
    for pid in pids:
        _pin(pid, other_cores(placement))


@contextlib.contextmanager
def host_placed(placement: str) -> Iterator[None]:
    """Run the host (this process, every thread) where ``placement`` says."""
    _pin(os.getpid(), host_cores(placement))
    try:
        yield
    finally:
        _pin(os.getpid(), set(ALL_CORES))


def spread(placement: str, pids: list[int]) -> None:
    """For a pair that talks to itself (two CPUs, the floor's two processes): all on
    one core, or one per core."""
    for i, pid in enumerate(pids):
        if placement == TWO_CORES:
            _pin(pid, {ALL_CORES[i % 2]})
        else:
            _pin(pid, other_cores(placement))
