"""Processes and lwps (kern_lwp.c, kern_proc.c, rump's lwproc.c): making and
ending them.

The tables themselves (records laid out in ``rumpmp.sys``, found through
``proc.Tables``) are guarded by one lock, proc_lock.  lwp0 (index 0) belongs to
proc0; initproc is pid 1.

An lwp is a host thread inside one CPU process and stays there for life: a Python
frame cannot move between processes.  Its CPU is chosen when it is created (its
bound CPU, or the least loaded one); until it starts, an idle CPU may steal it.

The ``rump_lwproc_*`` calls (rump_lwproc(3)) give a thread more lwp contexts: an
lwp made by ``rump_lwproc_newproc`` or ``rump_lwproc_newlwp`` is not a thread of its
own but a context that whichever thread switches to it carries, on that thread's
CPU.  A thread started by ``Kernel.run`` begins in an implicit context (an lwp of
proc0 that ``rump_lwproc_curlwp`` reports as None), as rump's host threads do.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import Tables, tables
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.file import descrip, event
from rumpmp.rumpkern.mem import specificdata
from rumpmp.rumpkern.sched import scheduler
from rumpmp.sys.file import SI_WORDS
from rumpmp.sys.lwp import (
    L_BOUND,
    L_CPU,
    L_FLAGS,
    L_LID,
    L_PARK,
    L_PID,
    L_PRI,
    L_PROCW,
    L_SPECIFIC,
    L_STATE,
    LSIDL,
    LSONPROC,
    LW_CONTEXT,
    LW_IMPLICIT,
    LW_SYSTEM,
    LWP_WORDS,
    NLWP,
)
from rumpmp.sys.proc import (
    COMM_LEN,
    NOFILE_HARD,
    NOFILE_SOFT,
    NPROC,
    P_COMM,
    P_CRED,
    P_CWD,
    P_FDTAB,
    P_KNSEL,
    P_NEXTLID,
    P_NFORK,
    P_NLWP,
    P_PID,
    P_PPID,
    P_RLIMIT,
    P_STATE,
    P_XPID,
    PID_MAX,
    PROC_WORDS,
    RLIM_INFINITY,
    RLIM_NLIMITS,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
    RUMP_RFCFDG,
    RUMP_RFFDG,
    SACTIVE,
    T_LOCK,
    T_NEXTPID,
    T_NLWPS,
    T_NPROCS,
)

#: The file system's part of a process (rump's hooks of the same names, which
#: rumpvfs sets): a new process takes its use of its working directory, a process
#: that has gone lets it go.  None without the file system (no process has a
#: working directory then).
rump_proc_vfs_init: Callable[[Arena, int], None] | None = None  # (new process's word)
rump_proc_vfs_release: Callable[[Arena, int], None] | None = None  # (its directory, 0 if none)


def procinit(arena: Arena) -> None:
    """Create proc_lock and the tables' bookkeeping (at boot)."""
    hdr = arena.region_word("proc")
    arena.w[hdr + T_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    arena.w[hdr + T_NEXTPID] = 0


def _alloc_pid(t: Tables) -> int:
    """The next free pid: never 0, and live pids are skipped when the counter wraps."""
    w = t.w
    live = {w[t.proc(s) + P_PID] for s in range(NPROC) if w[t.proc(s) + P_STATE]}
    pid = w[t.hdr + T_NEXTPID]
    for _ in range(PID_MAX):
        pid = pid + 1 if pid < PID_MAX else 1
        if pid not in live:
            w[t.hdr + T_NEXTPID] = pid
            return pid
    raise OSError(errno.EAGAIN, "no free pid")


def proc_alloc(t: Tables, parent: int, pid: int | None = None) -> int:
    """Allocate a process (caller holds proc_lock); returns its word index.

    The child shares its parent's credential (word index ``parent``; -1 for proc0,
    which gets root's from ``kauth.kauth_init``) and names its parent's fd table and
    working directory: ``descrip.fd_fork`` and the file system's
    ``rump_proc_vfs_init`` take their references to them, or give it a table of
    its own, once proc_lock is dropped.
    """
    w = t.w
    for slot in range(NPROC):
        p = t.proc(slot)
        if w[p + P_STATE] == 0:
            break
    else:
        raise OSError(errno.EAGAIN, "process table full")
    # (its selinfo stays: an exit's kevents may not have been woken yet)
    knsel = w[p + P_KNSEL : p + P_KNSEL + SI_WORDS]
    w[p : p + PROC_WORDS] = memoryview(bytes(PROC_WORDS * 8)).cast("q")
    w[p + P_KNSEL : p + P_KNSEL + SI_WORDS] = knsel
    w[p + P_PID] = _alloc_pid(t) if pid is None else pid
    w[p + P_STATE] = SACTIVE
    if parent >= 0:
        w[p + P_PPID] = w[parent + P_PID]
        w[p + P_CRED], w[p + P_CRED + 1] = w[parent + P_CRED], w[parent + P_CRED + 1]
        kauth.cred_hold_locked(t.arena, w[p + P_CRED])
        w[p + P_FDTAB] = w[parent + P_FDTAB]
        w[p + P_CWD], w[p + P_CWD + 1] = w[parent + P_CWD], w[parent + P_CWD + 1]
        limits = slice(p + P_RLIMIT, p + P_RLIMIT + 2 * RLIM_NLIMITS)
        w[limits] = w[parent + P_RLIMIT : parent + P_RLIMIT + 2 * RLIM_NLIMITS]  # inherited
    else:
        default_limits(w, p)
    w[t.hdr + T_NPROCS] += 1
    return p


def default_limits(w: memoryview, p: int) -> None:
    """proc0's resource limits, which every process inherits: none but the number
    of open files and of processes."""
    for resource in range(RLIM_NLIMITS):
        w[p + P_RLIMIT + 2 * resource] = w[p + P_RLIMIT + 2 * resource + 1] = RLIM_INFINITY
    w[p + P_RLIMIT + 2 * RLIMIT_NOFILE], w[p + P_RLIMIT + 2 * RLIMIT_NOFILE + 1] = (
        NOFILE_SOFT,
        NOFILE_HARD,
    )
    w[p + P_RLIMIT + 2 * RLIMIT_NPROC] = w[p + P_RLIMIT + 2 * RLIMIT_NPROC + 1] = NPROC


@dataclass
class Leftovers:
    """What a process held that is let go once proc_lock is dropped (it may block):
    its credential if that was the last reference, its fd table and its working
    directory; and the kevents waiting for its exit are woken."""

    cred: tuple[int, int] | None
    fdtab: int
    cwd: int
    proc: int  # the word of its record, now free

    def release(self, arena: Arena) -> None:
        if self.cred:
            kauth.cred_free_record(arena, self.cred)
        descrip.fd_exit(arena, self.fdtab)
        if rump_proc_vfs_release is not None:
            rump_proc_vfs_release(arena, self.cwd)
        event.knote_proc_exit(arena, self.proc)


def proc_free(t: Tables, p: int) -> Leftovers:
    """Collect a process whose last lwp has gone (caller holds proc_lock); what it
    leaves the caller to release."""
    w = t.w
    dead = kauth.cred_rele_locked(t.arena, w[p + P_CRED], w[p + P_CRED + 1])
    left = Leftovers(dead, w[p + P_FDTAB], w[p + P_CWD], p)
    w[p + P_XPID] = w[p + P_PID]
    w[p + P_PID] = 0
    w[p + P_STATE] = 0
    w[t.hdr + T_NPROCS] -= 1
    return left


def lwp_alloc(t: Tables, p: int, name: str, pri: int = 0, bound: int = -1, flags: int = 0) -> int:
    """Allocate an lwp in process ``p`` (caller holds proc_lock); returns its id."""
    w = t.w
    for i in range(NLWP):
        l = t.lwps + i * LWP_WORDS
        if w[l + L_STATE] == 0:
            break
    else:
        raise OSError(errno.EAGAIN, "lwp table full")
    w[l : l + LWP_WORDS] = memoryview(bytes(LWP_WORDS * 8)).cast("q")
    w[l + L_STATE] = LSIDL
    w[p + P_NEXTLID] += 1
    w[l + L_LID] = w[p + P_NEXTLID]
    w[l + L_PID] = w[p + P_PID]
    w[l + L_PROCW] = p
    w[l + L_PRI] = pri
    w[l + L_BOUND] = bound
    w[l + L_CPU] = bound
    w[l + L_FLAGS] = flags
    w[p + P_NLWP] += 1
    w[t.hdr + T_NLWPS] += 1
    t.set_lwp_name(i + 1, name)
    return i + 1


def _leave_proc(t: Tables, lid: int) -> Leftovers | None:
    """Lwp ``lid`` leaves its process, which is collected with its last lwp (holds
    proc_lock); what the process leaves to release after dropping the lock."""
    w = t.w
    pid = w[t.lwp(lid) + L_PID]
    try:
        p = t.find_proc(pid)
    except ProcessLookupError:
        return None
    w[p + P_NLWP] -= 1
    if w[p + P_NLWP] == 0 and pid > 1:  # proc0 and initproc live as long as the kernel
        return proc_free(t, p)
    return None


def _free_slot(t: Tables, lid: int) -> None:
    t.w[t.lwp(lid) + L_STATE] = 0
    t.w[t.hdr + T_NLWPS] -= 1


def lwp_release(t: Tables, lid: int) -> None:
    """Take proc_lock, free an lwp (collecting its process if it was the last), and
    free what that left behind.  The lwp's slot is freed last: the thread doing this
    may still be lwp ``lid`` (an lwp ending itself), and the locks that releasing
    takes must not see its id handed to another lwp meanwhile."""
    t.lock.enter_nowrap()
    try:
        left = _leave_proc(t, lid)
        if left is None:
            _free_slot(t, lid)
    finally:
        t.lock.exit()
    if left:
        try:
            left.release(t.arena)
        finally:
            t.lock.enter_nowrap()
            _free_slot(t, lid)
            t.lock.exit()


def proc0_init(arena: Arena) -> None:
    """proc0 with lwp0 (pid 0), and initproc (pid 1), as the seed sets them up."""
    t = tables(arena)
    root = kauth.kauth_init(arena)
    t.lock.enter_nowrap()
    try:
        p0 = proc_alloc(t, -1, pid=0)
        t.w[p0 + P_CRED], t.w[p0 + P_CRED + 1] = root
        t.w[p0 + P_FDTAB] = descrip.PROC0_FDTAB
        lwp0 = lwp_alloc(t, p0, "lwp0", flags=LW_SYSTEM)
        t.w[t.lwp(lwp0) + L_STATE] = LSONPROC  # lwp0 is the host's boot context
        p1 = proc_alloc(t, p0, pid=1)
        t.w[t.hdr + T_NEXTPID] = 1
        arena.set_str(p0 * 8 + P_COMM * 8, COMM_LEN, "system")
        arena.set_str(p1 * 8 + P_COMM * 8, COMM_LEN, "init")
    finally:
        t.lock.exit()


# -- rump_lwproc(3): lwp contexts of the calling thread --------------------------------

_thr = thread.local()  # .home: the lwp the calling thread was started as


def thread_started(lid: int) -> None:
    """Record ``lid`` as the calling thread's own lwp and make it curlwp."""
    _thr.home = lid
    thread.set_curlwp(lid)


def _current() -> tuple[Arena, Tables, int]:

    arena = _arena.current()
    return arena, tables(arena), thread.curlwp()


def _switch(arena: Arena, t: Tables, new: int) -> None:
    """Make ``new`` the calling thread's lwp: it inherits the thread's park slot and
    CPU, and the lwp left behind is no longer running."""

    w = t.w
    old = thread.curlwp()
    if new == old:
        return
    ol, nl = t.lwp(old), t.lwp(new)
    w[nl + L_PARK], w[nl + L_CPU] = w[ol + L_PARK], w[ol + L_CPU]
    w[nl + L_STATE] = LSONPROC
    scheduler.switch_curlwp(arena, old, new)
    w[ol + L_STATE] = LSIDL
    thread.set_curlwp(new)


def switch_home(arena: Arena) -> None:
    """Return the calling thread to its own lwp (at its end, or on a NULL switch)."""
    if thread.current.curlwp != _thr.home:
        _switch(arena, tables(arena), _thr.home)


def _new_context(arena: Arena, t: Tables, p: int) -> int:
    """A context lwp in process ``p`` (caller holds proc_lock)."""
    return lwp_alloc(t, p, "lwproc", flags=LW_CONTEXT)


def rump_lwproc_rfork(flags: int) -> None:
    """rump_lwproc_rfork(3): make a child of the current process and switch the
    calling thread to a new lwp in it.

    RUMP_RFFDG gives the child a copy of the parent's fd table, RUMP_RFCFDG a clean
    one, 0 shares the parent's.  The child shares its parent's credential until
    either changes it.  rump returns an errno; rumpmp raises OSError (EINVAL for
    bad flags, EAGAIN when the tables are full).
    """
    if flags & ~(RUMP_RFFDG | RUMP_RFCFDG) or flags == RUMP_RFFDG | RUMP_RFCFDG:
        raise OSError(errno.EINVAL, f"rump_lwproc_rfork: bad flags {flags:#x}")
    arena, t, lid = _current()
    ppid = t.w[t.lwp(lid) + L_PID]
    t.lock.enter_nowrap()
    try:
        parent = t.find_proc(ppid)
        p = proc_alloc(t, parent)
        try:
            new = _new_context(arena, t, p)
        except OSError:
            proc_free(t, p)  # nothing to release: it took no references yet
            raise
    finally:
        t.lock.exit()
    try:
        if rump_proc_vfs_init is not None:
            rump_proc_vfs_init(arena, p)
        descrip.fd_fork(arena, p, flags)
    except OSError:
        lwp_release(t, new)
        raise
    event.knote_fork(arena, parent, p)
    event.knote_proc(arena, parent, ppid, P_NFORK)
    _switch(arena, t, new)


def rump_lwproc_newproc() -> None:
    """rump_lwproc_newproc(3): ``rump_lwproc_rfork(RUMP_RFFDG)``."""
    rump_lwproc_rfork(RUMP_RFFDG)


def rump_lwproc_newlwp(pid: int) -> None:
    """rump_lwproc_newlwp(3): switch the calling thread to a new lwp in process
    ``pid``.  Raises ProcessLookupError (ESRCH) if there is no such process."""
    arena, t, _ = _current()
    t.lock.enter_nowrap()
    try:
        new = _new_context(arena, t, t.find_proc(pid))
    finally:
        t.lock.exit()
    _switch(arena, t, new)


def rump_lwproc_switch(l: int | None) -> None:
    """rump_lwproc_switch(3): make ``l`` the calling thread's lwp; None returns the
    thread to its implicit context.  Switching to an lwp that is running on another
    thread panics, as in rump."""
    arena, t, lid = _current()
    if l is None:
        switch_home(arena)
        return
    if isinstance(l, bool) or not isinstance(l, int):
        raise TypeError(f"rump_lwproc_switch: l must be an lwp id or None, not {l!r}")
    if l == lid:
        return
    # Check and claim under proc_lock: two threads switching to the same idle lwp
    # at once must not both adopt it; the second sees it running and panics.
    valid = 1 <= l <= NLWP and t.w[t.lwp(l) + L_FLAGS] & LW_CONTEXT
    t.lock.enter_nowrap()
    idle = valid and t.w[t.lwp(l) + L_STATE] == LSIDL
    if idle:
        t.w[t.lwp(l) + L_STATE] = LSONPROC
    t.lock.exit()
    if not idle:
        state = "not an lwp context" if not valid else "running on another thread"
        panic_in(arena, f"rump_lwproc_switch: lwp {l} is {state}")
    _switch(arena, t, l)


def rump_lwproc_releaselwp() -> None:
    """rump_lwproc_releaselwp(3): release the calling thread's lwp and return to the
    implicit context; the process goes with its last lwp.  Without an lwp context
    to release, rump aborts: rumpmp panics."""
    arena, t, lid = _current()
    if not t.w[t.lwp(lid) + L_FLAGS] & LW_CONTEXT:
        panic_in(arena, "rump_lwproc_releaselwp: no lwp context to release")
    if t.w[t.lwp(lid) + L_SPECIFIC]:  # its destructors run as the lwp, before it goes
        specificdata.lwp_specific_exit(arena, t.lwp(lid))
    switch_home(arena)
    lwp_release(t, lid)


def rump_lwproc_curlwp() -> int | None:
    """rump_lwproc_curlwp(3): the calling thread's lwp, None in an implicit context.
    rumpmp's lwps are ints (an lwp id), not pointers."""
    _, t, lid = _current()
    if not lid or t.w[t.lwp(lid) + L_FLAGS] & LW_IMPLICIT:
        return None
    return lid
