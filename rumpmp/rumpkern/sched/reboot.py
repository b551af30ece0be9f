"""cpu_reboot(9) and the reboot flags (the seed's cpu_reboot / rump_reboot).

Halting is started here, from inside the kernel or by the host, by marking the kernel
halting and ringing every CPU's doorbell; each CPU then finishes (or, with RB_NOSYNC,
abandons) its lwps and exits, and the host unlinks every named object.  The host is
never taken down: where rump would exit the host process, rumpmp stops the kernel's
CPU processes instead.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import kprintf
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.sched import hostcall, scheduler
from rumpmp.sys.cpu import CI_SPSLOT, cpu_word

# reboot(2) flags, NetBSD's values.
RB_AUTOBOOT = 0x0
RB_NOSYNC = 0x4  # do not let the CPUs finish their lwps
RB_HALT = 0x8  # "rump kernel halted" rather than "halted"
RB_DUMP = 0x100  # take the dive: CPUs end with the PANIC status at once

#: Seconds a CPU lets its lwps finish at a halt without RB_NOSYNC.
HALT_GRACE = 2.0


def begin_halt(arena: Arena, howto: int) -> bool:
    """Mark the kernel halting and wake every CPU; False if it already stopped."""
    if arena.state not in (_arena.BOOTING, _arena.RUNNING):
        return False
    kprintf(arena, "rump kernel halting...\n")
    arena.w[_arena.H_HOWTO] = howto
    arena.w[_arena.H_STATE] = _arena.HALTING
    for i in range(arena.ncpu):
        arena.pool.unpark(scheduler.spc(arena, i).doorbell)
        receiver = arena.w[cpu_word(arena, i) + CI_SPSLOT]
        if receiver:  # its sysproxy receiver ends its remote clients' connections
            arena.pool.unpark(receiver)
    hostcall.wake_all(arena)  # host threads' lwps leave instead of waiting for calls
    return True


#: boothowto flags (sys/reboot.h): the verbose boot that RUMP_VERBOSE asks for.
AB_VERBOSE = 0x00020000

#: rumpmp's release as rump_getversion reports it: 10000 * major + 100 * minor + patch.
RUMPMP_VERSION = 100


def rump_boot_gethowto() -> int:
    """rump_boot_gethowto(3): the boot flags (AB_VERBOSE when booted verbose)."""
    return _arena.current().w[_arena.H_BOOTHOWTO]


def rump_boot_sethowto(howto: int) -> None:
    """rump_boot_sethowto(3).  rump sets it before booting; rumpmp takes it from
    ``boot(verbose=)`` and lets kernel code change it afterwards."""
    if isinstance(howto, bool) or not isinstance(howto, int):
        raise TypeError(f"rump_boot_sethowto: howto must be an int, not {type(howto).__name__}")
    _arena.current().w[_arena.H_BOOTHOWTO] = howto


def rump_getversion() -> int:
    """rump_getversion(3): the kernel's version (rumpmp's release)."""
    return RUMPMP_VERSION


def rump_sys_reboot(howto: int, bootstr: str | None = None) -> None:
    """reboot(2): halt the kernel; EPERM without root credentials."""
    if kauth.kauth_cred_geteuid(kauth.kauth_cred_get()):
        raise PermissionError(errno.EPERM, "reboot: only root halts the kernel")
    cpu_reboot(howto, bootstr)


def cpu_reboot(howto: int, bootstr: str | None = None) -> None:
    """cpu_reboot(9) from kernel code: halt this kernel.

    Returns to the caller; the caller's CPU exits once its lwps are done (or at once,
    with RB_NOSYNC or RB_DUMP) and the host completes the halt.
    """
    begin_halt(_arena.current(), howto)
