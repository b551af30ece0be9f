"""The kernel-side API: NetBSD's section 9 names, for code that runs inside a kernel.

Code passed to ``Kernel.run`` imports what it needs from here::

    def work():
        from rumpmp.kern import kmem_alloc, printf, cpu_index
        printf("hello from cpu%d\\n", cpu_index())

Every name follows its NetBSD manual page; each function's docstring says where
rumpmp differs.
"""

from .cpu import cpu_index
from .kmem import KM_NOSLEEP, KM_SLEEP, KBuf, kmem_alloc, kmem_free, kmem_zalloc
from .prf import panic, printf
from .reboot import RB_AUTOBOOT, RB_DUMP, RB_HALT, RB_NOSYNC, cpu_reboot

__all__ = [
    "KM_NOSLEEP",
    "KM_SLEEP",
    "RB_AUTOBOOT",
    "RB_DUMP",
    "RB_HALT",
    "RB_NOSYNC",
    "KBuf",
    "cpu_index",
    "cpu_reboot",
    "kmem_alloc",
    "kmem_free",
    "kmem_zalloc",
    "panic",
    "printf",
]
