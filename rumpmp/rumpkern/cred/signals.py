"""Signals, as rump models them (rump's signals.c; rump(3) rump_boot_setsigmodel).

A rump kernel has no user processes to deliver signals to, so what a signal does is
a kernel-wide choice:

- RUMP_SIGMODEL_PANIC: the kernel panics;
- RUMP_SIGMODEL_IGNORE: nothing happens;
- RUMP_SIGMODEL_HOST and RUMP_SIGMODEL_RAISE (the default): the signal is raised in
  the host process, whose rump processes these are; under RAISE a remote client's
  process's signal goes to that client instead (the sysproxy server sends it);
- RUMP_SIGMODEL_RECORD: it is recorded as pending in the target process, and wakes
  the process's interruptible sleeps (``tsleep`` with PCATCH, ``kpause`` with
  ``intr``, ``cv_wait_sig``) with EINTR until ``sigclear`` takes it away.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import proc
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.locking.condvar import cv_timedwait, kcondvar_t
from rumpmp.rumpkern.locking.mutex import kmutex_t
from rumpmp.sys.cpu import CI_SPSLOT, cpu_word
from rumpmp.sys.lwp import L_CATCH, L_PARK, L_PID, L_STATE, LSSLEEP, NLWP
from rumpmp.sys.proc import NSIG, P_SIGPEND, P_SPCLIENT, P_SPRAISE

RUMP_SIGMODEL_PANIC, RUMP_SIGMODEL_IGNORE, RUMP_SIGMODEL_HOST = 0, 1, 2
RUMP_SIGMODEL_RAISE, RUMP_SIGMODEL_RECORD = 3, 4


#: Counts a post for kevent's EVFILT_SIGNAL: (arena, pid, signal).  Set by
#: ``file.event``, which sits above this code, as NetBSD's kern_sig.c calls KNOTE.
knote_signal: Callable[[Arena, int, int], None] | None = None

#: The model the next kernels of this program boot with (rump_boot_setsigmodel
#: called before boot, as rump's programs call it before rump_init).
boot_sigmodel = RUMP_SIGMODEL_RAISE


def check_sigmodel(model: object, func: str) -> int:
    """``model`` if it is one of the RUMP_SIGMODEL_* values; EINVAL otherwise."""
    if isinstance(model, bool) or model not in range(RUMP_SIGMODEL_RECORD + 1):
        raise OSError(errno.EINVAL, f"{func}: no signal model {model!r}")
    return model  # type: ignore[return-value]


def rump_boot_setsigmodel(model: int) -> None:
    """rump_boot_setsigmodel(3): what a signal to a rump process does, kernel-wide.
    Called in kernel code it changes that kernel's model; called on the host it sets
    the model of the kernels booted after it (``boot(sigmodel=...)`` too)."""
    global boot_sigmodel
    check_sigmodel(model, "rump_boot_setsigmodel")
    if _arena.here.arena is None:
        boot_sigmodel = model
    else:
        _arena.current().w[_arena.H_SIGMODEL] = model


def psignal(pid: int, sig: int) -> None:
    """psignal(9): send ``sig`` to process ``pid`` under the kernel's signal model."""
    arena = _arena.current()
    if not 1 <= sig < NSIG:
        raise OSError(errno.EINVAL, f"psignal: no signal {sig!r}")
    if knote_signal is not None:  # EVFILT_SIGNAL sees every post
        knote_signal(arena, pid, sig)
    model = arena.w[_arena.H_SIGMODEL]
    if model == RUMP_SIGMODEL_PANIC:
        panic_in(arena, f"signal {sig} to pid {pid}")
    elif model == RUMP_SIGMODEL_RAISE and _remote(arena, pid):
        _raise_remote(arena, pid, sig)
    elif model in (RUMP_SIGMODEL_HOST, RUMP_SIGMODEL_RAISE):
        proc.kill(arena.w[_arena.H_HOSTPID], sig)
    elif model == RUMP_SIGMODEL_RECORD:
        interrupt(pid, sig)


def _remote(arena: Arena, pid: int) -> bool:
    """Whether process ``pid`` is a remote client's (the sysproxy server's)."""
    try:
        return bool(arena.w[tables(arena).find_proc(pid) + P_SPCLIENT])
    except ProcessLookupError:
        return False


def _raise_remote(arena: Arena, pid: int, sig: int) -> None:
    """RUMP_SIGMODEL_RAISE for a remote client's process: the signal waits in
    P_SPRAISE for the CPU that serves the client's connection, whose sysproxy
    receiver is woken to send it (rumpuser_sp_raise)."""
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p = t.find_proc(pid)
        arena.w[p + P_SPRAISE] |= 1 << sig
        cpu = arena.w[p + P_SPCLIENT] - 1  # -1 until its connection reaches a CPU
    finally:
        t.lock.exit()
    if cpu >= 0:
        arena.pool.unpark(arena.w[cpu_word(arena, cpu) + CI_SPSLOT])


def interrupt(pid: int, sig: int) -> None:
    """Record ``sig`` as pending for process ``pid`` and end its interruptible
    sleeps with EINTR (RUMP_SIGMODEL_RECORD; the sysproxy server does this to the
    process of a client that has gone)."""
    arena = _arena.current()
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p = t.find_proc(pid)
        arena.w[p + P_SIGPEND] |= 1 << sig
        parks = [
            arena.w[t.lwp(lid) + L_PARK]
            for lid in range(1, NLWP + 1)
            if arena.w[t.lwp(lid) + L_PID] == pid
            and arena.w[t.lwp(lid) + L_STATE] == LSSLEEP
            and arena.w[t.lwp(lid) + L_CATCH]
        ]
    finally:
        t.lock.exit()
    for park in parks:  # each sleeper looks at the pending set and ends its sleep
        arena.pool.unpark(park)


def rump_sys_kill(pid: int, sig: int) -> None:
    """kill(2): ``sig`` to process ``pid`` (0 checks that it exists).  ESRCH for no
    such process, EINVAL for a bad signal, EPERM unless root or the same user."""
    arena = _arena.current()
    if isinstance(sig, bool) or not isinstance(sig, int) or not 0 <= sig < NSIG:
        raise OSError(errno.EINVAL, f"kill: no signal {sig!r}")
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        their_uid = kauth.kauth_cred_getuid(kauth.proc_cred(arena, t.find_proc(pid)))
    finally:
        t.lock.exit()
    if kauth.kauth_cred_geteuid(kauth.kauth_cred_get()) not in (0, their_uid):
        raise PermissionError(errno.EPERM, f"kill: not allowed to signal pid {pid}")
    if sig:
        psignal(pid, sig)


def sigpending() -> set[int]:
    """The signals pending for the calling process (RUMP_SIGMODEL_RECORD)."""
    arena = _arena.current()
    bits = arena.w[curproc_word(arena) + P_SIGPEND]
    return {sig for sig in range(1, NSIG) if bits & (1 << sig)}


def sigclear(sig: int) -> None:
    """Take ``sig`` off the calling process's pending set (it has been handled)."""
    arena = _arena.current()
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        arena.w[curproc_word(arena) + P_SIGPEND] &= ~(1 << sig)
    finally:
        t.lock.exit()


def cv_wait_sig(cv: kcondvar_t, mtx: kmutex_t) -> int:
    """cv_wait_sig(9): as cv_wait, but a pending signal ends the wait with EINTR
    (looked at every tick: condvar waits are not on the sleep queues)."""
    while True:
        if sigpending():
            return errno.EINTR
        if cv_timedwait(cv, mtx, 1) == 0:
            return 0
