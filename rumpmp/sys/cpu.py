"""cpu_info records (sys/cpu.h): one per virtual CPU in the "cpu" region."""

from typing import Protocol

from rumpmp.sys.sched import SPC_BASE, SPC_WORDS

# cpu_info words (the scheduler's state follows at sched.SPC_BASE)
CI_INDEX = 0
CI_PID = 1
CI_STATE = 2
CI_READY_NS = 3  # monotonic time at which the CPU reported ready
CI_INITED = 4  # bitmask of per-CPU subsystems initialised
CI_SPSLOT = 5  # park slot of its sysproxy receiver (0: no server yet)
CI_SPCONNS = 6  # remote clients' connections it serves
CPU_WORDS = (SPC_BASE + SPC_WORDS + 7) & ~7  # whole cache lines

CPU_OFF, CPU_ATTACHED, CPU_READY, CPU_STOPPED = range(4)


class _Regions(Protocol):
    @property
    def ncpu(self) -> int: ...

    def region_word(self, name: str) -> int: ...


def region(ncpu: int) -> tuple[str, int]:
    return ("cpu", ncpu * CPU_WORDS * 8)


def cpu_word(arena: _Regions, cpu: int) -> int:
    """Word index of cpu_info[cpu] (cpu_lookup)."""
    if not 0 <= cpu < arena.ncpu:
        raise IndexError(f"no cpu{cpu} (ncpu {arena.ncpu})")
    return arena.region_word("cpu") + cpu * CPU_WORDS
