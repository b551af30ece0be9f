# ruff: noqa: F401 - this module re-exports the kernel API
"""The kernel-side API: NetBSD's section 9 names, for code that runs inside a kernel.

Code passed to ``Kernel.run`` imports what it needs from here::

    def work():
        from rumpmp.kern import kmem_alloc, printf, cpu_index
        printf("hello from cpu%d\\n", cpu_index())

Every name follows its NetBSD manual page; each function's docstring says where
rumpmp differs.
"""

from rumpmp.rumpkern.intr.callout import (
    CALLOUT_MPSAFE,
    callout_ack,
    callout_active,
    callout_bind,
    callout_destroy,
    callout_expired,
    callout_halt,
    callout_init,
    callout_invoking,
    callout_pending,
    callout_reset,
    callout_schedule,
    callout_setfunc,
    callout_stop,
    callout_t,
)
from rumpmp.rumpkern.intr.clock import (
    DELAY,
    getboottime,
    getticks,
    hz,
    hztoms,
    mstohz,
    nanotime,
    nanouptime,
)
from rumpmp.rumpkern.intr.softint import (
    SOFTINT_BIO,
    SOFTINT_CLOCK,
    SOFTINT_MPSAFE,
    SOFTINT_NET,
    SOFTINT_SERIAL,
    softint_disestablish,
    softint_establish,
    softint_schedule,
    softint_schedule_cpu,
    softint_t,
)
from rumpmp.rumpkern.intr.xcall import XC_HIGHPRI, xc_broadcast, xc_unicast, xc_wait
from rumpmp.rumpkern.locking.biglock import (
    KERNEL_LOCK,
    KERNEL_LOCKED_P,
    KERNEL_UNLOCK_ALL,
    KERNEL_UNLOCK_ONE,
)
from rumpmp.rumpkern.locking.condvar import (
    cv_broadcast,
    cv_destroy,
    cv_has_waiters,
    cv_init,
    cv_signal,
    cv_timedwait,
    cv_wait,
    kcondvar_t,
)
from rumpmp.rumpkern.locking.mutex import (
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
from rumpmp.rumpkern.locking.rwlock import (
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
from rumpmp.rumpkern.locking.sleepq import PCATCH, PNORELOCK, kpause, mtsleep, tsleep, wakeup
from rumpmp.rumpkern.mem.kmem import KM_NOSLEEP, KM_SLEEP, KBuf, kmem_alloc, kmem_free, kmem_zalloc
from rumpmp.rumpkern.mem.percpu import (
    percpu_alloc,
    percpu_foreach,
    percpu_foreach_xcall,
    percpu_free,
    percpu_getref,
    percpu_putref,
    percpu_t,
)
from rumpmp.rumpkern.sched.cpu import cpu_index
from rumpmp.rumpkern.sched.kthread import (
    KTHREAD_IDLE,
    KTHREAD_INTR,
    KTHREAD_MPSAFE,
    KTHREAD_MUSTJOIN,
    KTHREAD_TS,
    kthread_create,
    kthread_exit,
    kthread_join,
)
from rumpmp.rumpkern.sched.lwproc import (
    rump_lwproc_curlwp,
    rump_lwproc_newlwp,
    rump_lwproc_newproc,
    rump_lwproc_releaselwp,
    rump_lwproc_rfork,
    rump_lwproc_switch,
)
from rumpmp.rumpkern.sched.scheduler import preempt
from rumpmp.rumpkern.sched.scheduler import preempt as yield_
from rumpmp.rumpkern.svc.copy import (
    UIO_READ,
    UIO_WRITE,
    copyin,
    copyinstr,
    copyout,
    copyoutstr,
    rump_uio_free,
    rump_uio_getoff,
    rump_uio_getresid,
    rump_uio_setup,
    uio_t,
    uiomove,
)
from rumpmp.rumpkern.svc.evcnt import (
    EVCNT_TYPE_INTR,
    EVCNT_TYPE_MISC,
    EVCNT_TYPE_TRAP,
    evcnt_attach_dynamic,
    evcnt_detach,
    evcnt_inc,
    evcnt_t,
    rump_printevcnts,
)
from rumpmp.rumpkern.svc.kauth import (
    NGROUPS_MAX,
    kauth_cred_dup,
    kauth_cred_free,
    kauth_cred_get,
    kauth_cred_getegid,
    kauth_cred_geteuid,
    kauth_cred_getgid,
    kauth_cred_getgroups,
    kauth_cred_getrefcnt,
    kauth_cred_getsvgid,
    kauth_cred_getsvuid,
    kauth_cred_getuid,
    kauth_cred_hold,
    kauth_cred_ismember_gid,
    kauth_cred_ngroups,
    kauth_cred_setegid,
    kauth_cred_seteuid,
    kauth_cred_setgid,
    kauth_cred_setgroups,
    kauth_cred_setsvgid,
    kauth_cred_setsvuid,
    kauth_cred_setuid,
    kauth_cred_t,
    rump_cred_create,
    rump_cred_put,
)
from rumpmp.rumpkern.svc.ksyms import ksyms_getval, rump_kernelfsym_load
from rumpmp.rumpkern.svc.module import (
    modinfo_t,
    module_init_class,
    rump_component,
    rump_component_count,
    rump_module_fini,
    rump_module_init,
    rump_sys_modctl,
)
from rumpmp.rumpkern.svc.once import RUN_ONCE, once_init, once_t
from rumpmp.rumpkern.svc.prf import panic, printf
from rumpmp.rumpkern.svc.prot import (
    rump_allbetsareoff_setid,
    rump_sys_getegid,
    rump_sys_geteuid,
    rump_sys_getgid,
    rump_sys_getgroups,
    rump_sys_getpid,
    rump_sys_getppid,
    rump_sys_getuid,
    rump_sys_setgid,
    rump_sys_setgroups,
    rump_sys_setuid,
)
from rumpmp.rumpkern.svc.reboot import (
    AB_VERBOSE,
    RB_AUTOBOOT,
    RB_DUMP,
    RB_HALT,
    RB_NOSYNC,
    cpu_reboot,
    rump_boot_gethowto,
    rump_boot_sethowto,
    rump_getversion,
    rump_sys_reboot,
)
from rumpmp.rumpkern.svc.resource import rump_sys_getrlimit, rump_sys_setrlimit
from rumpmp.rumpkern.svc.signals import (
    RUMP_SIGMODEL_HOST,
    RUMP_SIGMODEL_IGNORE,
    RUMP_SIGMODEL_PANIC,
    RUMP_SIGMODEL_RAISE,
    RUMP_SIGMODEL_RECORD,
    cv_wait_sig,
    psignal,
    rump_boot_setsigmodel,
    rump_sys_kill,
    sigclear,
    sigpending,
)
from rumpmp.rumpkern.svc.specificdata import (
    lwp_getspecific,
    lwp_setspecific,
    lwp_specific_key_create,
    lwp_specific_key_delete,
)
from rumpmp.rumpkern.svc.sysctl import (
    rump_sys___sysctl,
    sysctl_createv,
    sysctl_destroyv,
    sysctl_lookup,
    sysctl_query,
)
from rumpmp.rumpkern.svc.workqueue import (
    WQ_MPSAFE,
    WQ_PERCPU,
    aiodoned,
    workqueue_create,
    workqueue_destroy,
    workqueue_enqueue,
    workqueue_t,
    workqueue_wait,
)
from rumpmp.rumpkern.syscall.sysent import rump_syscall
from rumpmp.sys.module import (
    MODCTL_LOAD,
    MODCTL_STAT,
    MODCTL_UNLOAD,
    MODULE_CLASS_ANY,
    MODULE_CLASS_DRIVER,
    MODULE_CLASS_MISC,
    MODULE_CLASS_VFS,
    MODULE_CMD_FINI,
    MODULE_CMD_INIT,
    MODULE_CMD_STAT,
    RUMP_COMPONENT_DEV,
    RUMP_COMPONENT_KERN,
    RUMP_COMPONENT_KERN_VFS,
    RUMP_COMPONENT_NET,
    RUMP_COMPONENT_POSTINIT,
    RUMP_COMPONENT_SYSCALL,
    RUMP_COMPONENT_VFS,
)
from rumpmp.sys.param import (
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
)
from rumpmp.sys.proc import (
    RLIM_INFINITY,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
    RUMP_RFCFDG,
    RUMP_RFFDG,
)
from rumpmp.sys.sysctl import (
    CTL_CREATE,
    CTLFLAG_ANYWRITE,
    CTLFLAG_PERMANENT,
    CTLFLAG_READONLY,
    CTLFLAG_READWRITE,
    CTLTYPE_BOOL,
    CTLTYPE_INT,
    CTLTYPE_NODE,
    CTLTYPE_QUAD,
    CTLTYPE_STRING,
    CTLTYPE_STRUCT,
)

# (isidentifier: pytest, which loads rumpmp as a plugin, may add "@py_builtins" here)
__all__ = [name for name in dir() if name.isidentifier() and not name.startswith("_")]
