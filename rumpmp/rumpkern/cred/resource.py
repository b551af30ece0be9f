"""Resource limits (kern_resource.c): getrlimit(2) and setrlimit(2), per process.

Each process has a soft and a hard limit per resource in its record; a child made
by rfork inherits its parent's.  rumpmp enforces RLIMIT_NOFILE in the descriptor
tables and RLIMIT_NPROC nowhere yet; the others are kept for the programs that read them.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.cred import kauth
from rumpmp.sys.proc import P_RLIMIT, RLIM_INFINITY, RLIM_NLIMITS


def _slot(resource: int) -> int:
    if (
        isinstance(resource, bool)
        or not isinstance(resource, int)
        or not 0 <= resource < RLIM_NLIMITS
    ):
        raise OSError(errno.EINVAL, f"no resource limit {resource!r}")
    return P_RLIMIT + 2 * resource


def rump_sys_getrlimit(resource: int) -> tuple[int, int]:
    """getrlimit(2): the (soft, hard) limit of ``resource`` for the calling process."""
    arena = _arena.current()
    p, i = curproc_word(arena), _slot(resource)
    return arena.w[p + i], arena.w[p + i + 1]


def rump_sys_setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2): EINVAL if soft > hard or a value is negative; EPERM to raise
    the hard limit without root credentials."""
    arena = _arena.current()
    i = _slot(resource)
    for value in (soft, hard):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RLIM_INFINITY:
            raise OSError(errno.EINVAL, f"setrlimit: bad limit {value!r}")
    if soft > hard:
        raise OSError(errno.EINVAL, "setrlimit: the soft limit is above the hard one")
    root = kauth.kauth_cred_geteuid(kauth.kauth_cred_get()) == 0
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p = curproc_word(arena)
        if hard > arena.w[p + i + 1] and not root:
            raise PermissionError(errno.EPERM, "setrlimit: only root raises a hard limit")
        arena.w[p + i], arena.w[p + i + 1] = soft, hard
    finally:
        t.lock.exit()
