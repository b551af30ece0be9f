# ruff: noqa: F401 - this module re-exports the kernel API
"""The kernel-side API: NetBSD's section 9 names, for code that runs inside a kernel.

Code passed to ``Kernel.run`` imports what it needs from here::

    def work():
        from rumpmp.kern import kmem_alloc, printf, cpu_index
        printf("hello from cpu%d\\n", cpu_index())

Every name follows its NetBSD manual page; each function's docstring says where
rumpmp differs.
"""

from .condvar import (
    cv_broadcast,
    cv_destroy,
    cv_has_waiters,
    cv_init,
    cv_signal,
    cv_timedwait,
    cv_wait,
    hz,
    hztoms,
    kcondvar_t,
    mstohz,
)
from .cpu import cpu_index
from .kmem import KM_NOSLEEP, KM_SLEEP, KBuf, kmem_alloc, kmem_free, kmem_zalloc
from .kthread import (
    KTHREAD_IDLE,
    KTHREAD_INTR,
    KTHREAD_MPSAFE,
    KTHREAD_MUSTJOIN,
    KTHREAD_TS,
    kthread_create,
    kthread_exit,
    kthread_join,
)
from .mutex import (
    IPL_HIGH,
    IPL_NONE,
    IPL_SCHED,
    IPL_SOFTBIO,
    IPL_SOFTCLOCK,
    IPL_SOFTNET,
    IPL_SOFTSERIAL,
    IPL_VM,
    MUTEX_ADAPTIVE,
    MUTEX_DEFAULT,
    MUTEX_SPIN,
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init,
    mutex_owned,
    mutex_tryenter,
)
from .prf import panic, printf
from .reboot import RB_AUTOBOOT, RB_DUMP, RB_HALT, RB_NOSYNC, cpu_reboot
from .rwlock import (
    RW_READER,
    RW_WRITER,
    krwlock_t,
    rw_destroy,
    rw_downgrade,
    rw_enter,
    rw_exit,
    rw_init,
    rw_lock_held,
    rw_read_held,
    rw_tryenter,
    rw_tryupgrade,
    rw_write_held,
)
from .scheduler import (
    PRI_BIO,
    PRI_KERNEL,
    PRI_KTHREAD,
    PRI_NONE,
    PRI_PGDAEMON,
    PRI_SOFTBIO,
    PRI_SOFTCLOCK,
    PRI_SOFTNET,
    PRI_SOFTSERIAL,
    PRI_USER,
    PRI_XCALL,
    preempt,
)
from .scheduler import preempt as yield_  # NetBSD's yield(), renamed: a Python keyword
from .sleepq import PCATCH, PNORELOCK, kpause, mtsleep, tsleep, wakeup

__all__ = [name for name in dir() if not name.startswith("_")]
