"""Processes and lwps (kern_lwp.c, kern_proc.c, rump's lwproc.c).

The proc and lwp tables are arrays of fixed-size records in the arena, guarded by
one lock (proc_lock).  An lwp's id as seen by ``curlwp`` is its table index plus one,
so 0 always means "no lwp".  lwp0 (index 0) belongs to proc0; initproc is pid 1.

An lwp is a host thread inside one CPU process and stays there for life: a Python
frame cannot move between processes.  Its CPU is chosen when it is created (its
bound CPU, or the least loaded one); until it starts, an idle CPU may steal it.
"""

from __future__ import annotations

import errno

from hypercalls import sync

from .arena import Arena

NPROC = 256
NLWP = 1024
PID_MAX = 30000
NGROUPS = 16

# proc record words
P_PID = 0  # 0: free slot
P_STATE = 1
P_NLWP = 2
P_PPID = 3
P_UID = 4
P_GID = 5
P_NGROUPS = 6
P_FDFLAGS = 7
P_NEXTLID = 8
P_GROUPS = 16  # NGROUPS words
PROC_WORDS = 32

SIDL, SACTIVE, SZOMB = 1, 2, 3  # proc states

# lwp record words
L_STATE = 0  # LSIDL..., 0 free
L_LID = 1  # lid within its process
L_PID = 2
L_CPU = 3  # CPU it runs (or will run) on
L_BOUND = 4  # bound CPU, -1 if none
L_PRI = 5
L_FLAGS = 6
L_PARK = 7  # pool slot the lwp's thread parks on
L_RUNQ = 8  # next lwp index + 1 on a run queue
L_NEWQ = 9  # next lwp index + 1 on a CPU's queue of lwps not yet started
L_ENTRY = 10  # 3 words: blob of (func, args)
L_RESULT = 13  # 3 words: blob of (ok, value)
L_REPLY = 16  # pool slot to post when the lwp ends, 0 if none
L_WCHAN = 17
L_SLEEPQ = 18
L_NAME = 24  # 32 bytes
LWP_WORDS = 32
NAME_LEN = 32

# lwp states (NetBSD's names)
LSIDL, LSRUN, LSONPROC, LSSLEEP, LSZOMB = 1, 2, 3, 4, 7

# lwp flags
LW_SYSTEM = 0x0200  # a kernel thread
LW_MUSTJOIN = 0x0400
LW_WAITER = 0x0800  # someone (the host, or kthread_join) collects its result

# header words of the proc region
T_LOCK = 0
T_NEXTPID = 1
T_NPROCS = 2
T_NLWPS = 3
_TABLE_HDR = 64

REGIONS = [
    ("proc", _TABLE_HDR + NPROC * PROC_WORDS * 8),
    ("lwp", NLWP * LWP_WORDS * 8),
]


class Tables:
    """Word indices of the proc and lwp tables of one kernel in this process."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.w = arena.w
        self.hdr = arena.region_word("proc")
        self.procs = self.hdr + _TABLE_HDR // 8
        self.lwps = arena.region_word("lwp")
        self.lock = sync.Mutex.attach(arena.pool, self.w[self.hdr + T_LOCK], sync.MTX_SPIN)

    def proc(self, slot: int) -> int:
        """Word index of proc slot ``slot``."""
        return self.procs + slot * PROC_WORDS

    def lwp(self, lid: int) -> int:
        """Word index of the lwp whose curlwp id is ``lid`` (index + 1)."""
        return self.lwps + (lid - 1) * LWP_WORDS

    def find_proc(self, pid: int) -> int:
        """Word index of the live process ``pid``; ESRCH if there is none."""
        w = self.w
        for slot in range(NPROC):
            p = self.procs + slot * PROC_WORDS
            if w[p + P_PID] == pid and w[p + P_STATE] != SZOMB:
                return p
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}")

    def lwp_name(self, lid: int) -> str:
        off = self.lwp(lid) * 8 + L_NAME * 8
        return self.arena.get_str(off, NAME_LEN)


def tables(arena: Arena) -> Tables:
    t = arena.cache.get("lwproc")
    if t is None:
        t = arena.cache["lwproc"] = Tables(arena)
    return t


def procinit(arena: Arena) -> None:
    """Create proc_lock and the tables' bookkeeping (at boot)."""
    hdr = arena.region_word("proc")
    arena.w[hdr + T_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    arena.w[hdr + T_NEXTPID] = 0


def _alloc_pid(t: Tables) -> int:
    """The next free pid: never 0, and live pids are skipped when the counter wraps."""
    w = t.w
    live = {w[t.proc(s) + P_PID] for s in range(NPROC)}
    pid = w[t.hdr + T_NEXTPID]
    for _ in range(PID_MAX):
        pid = pid + 1 if pid < PID_MAX else 1
        if pid not in live:
            w[t.hdr + T_NEXTPID] = pid
            return pid
    raise OSError(errno.EAGAIN, "no free pid")


def proc_alloc(t: Tables, parent: int, pid: int | None = None) -> int:
    """Allocate a process (caller holds proc_lock); returns its word index.

    Credentials are inherited from the parent (word index ``parent``, or -1 for
    proc0, whose credentials are root's).
    """
    w = t.w
    for slot in range(NPROC):
        p = t.proc(slot)
        if w[p + P_PID] == 0:
            break
    else:
        raise OSError(errno.EAGAIN, "process table full")
    w[p : p + PROC_WORDS] = memoryview(bytes(PROC_WORDS * 8)).cast("q")
    w[p + P_PID] = _alloc_pid(t) if pid is None else pid
    w[p + P_STATE] = SACTIVE
    if parent >= 0:
        w[p + P_PPID] = w[parent + P_PID]
        for f in (P_UID, P_GID, P_NGROUPS, P_FDFLAGS):
            w[p + f] = w[parent + f]
        w[p + P_GROUPS : p + P_GROUPS + NGROUPS] = w[
            parent + P_GROUPS : parent + P_GROUPS + NGROUPS
        ]
    w[t.hdr + T_NPROCS] += 1
    return p


def proc_free(t: Tables, p: int) -> None:
    """Collect a process whose last lwp has gone (caller holds proc_lock)."""
    t.w[p + P_PID] = 0
    t.w[p + P_STATE] = 0
    t.w[t.hdr + T_NPROCS] -= 1


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
    w[l + L_PRI] = pri
    w[l + L_BOUND] = bound
    w[l + L_CPU] = bound
    w[l + L_FLAGS] = flags
    w[p + P_NLWP] += 1
    w[t.hdr + T_NLWPS] += 1
    t.arena.set_str(l * 8 + L_NAME * 8, NAME_LEN, name)
    return i + 1


def lwp_free(t: Tables, lid: int) -> None:
    """Release an lwp; its process is collected with its last lwp (holds proc_lock)."""
    w = t.w
    l = t.lwp(lid)
    pid = w[l + L_PID]
    w[l + L_STATE] = 0
    w[t.hdr + T_NLWPS] -= 1
    try:
        p = t.find_proc(pid)
    except ProcessLookupError:
        return
    w[p + P_NLWP] -= 1
    if w[p + P_NLWP] == 0 and pid > 1:  # proc0 and initproc live as long as the kernel
        proc_free(t, p)


def proc0_init(arena: Arena) -> None:
    """proc0 with lwp0 (pid 0), and initproc (pid 1), as the seed sets them up."""
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p0 = proc_alloc(t, -1, pid=0)
        lwp0 = lwp_alloc(t, p0, "lwp0", flags=LW_SYSTEM)
        t.w[t.lwp(lwp0) + L_STATE] = LSONPROC  # lwp0 is the host's boot context
        proc_alloc(t, p0, pid=1)
        t.w[t.hdr + T_NEXTPID] = 1
    finally:
        t.lock.exit()
