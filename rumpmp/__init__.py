"""rumpmp: an SMP rump kernel for Python, one OS process per virtual CPU.

Host-side API::

    import rumpmp
    with rumpmp.boot(ncpu=4) as k:
        k.run(func, arg, cpu=2)

Kernel-side code (what runs inside ``Kernel.run``) imports NetBSD-named functions
from ``rumpmp.kern``.
"""

from rumpmp.host.daemon import rump_daemonize_begin, rump_daemonize_done
from rumpmp.host.kernel import Kernel, KernelHalted, boot, rump_init
from rumpmp.rumpkern.base.entry import KernelCodeExit
from rumpmp.rumpkern.base.prf import RumpPanic
from rumpmp.rumpkern.init import EPROGMISMATCH
from rumpmp.rumpkern.sched.reboot import RB_AUTOBOOT, RB_DUMP, RB_HALT, RB_NOSYNC

__all__ = [
    "EPROGMISMATCH",
    "RB_AUTOBOOT",
    "RB_DUMP",
    "RB_HALT",
    "RB_NOSYNC",
    "Kernel",
    "KernelCodeExit",
    "KernelHalted",
    "RumpPanic",
    "boot",
    "rump_daemonize_begin",
    "rump_daemonize_done",
    "rump_init",
]
