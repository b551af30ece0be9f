"""The proc and lwp tables (kern_proc.c, kern_lwp.c): finding records.

The tables are arrays of fixed-size records in the arena (layouts in ``sys/proc``
and ``sys/lwp``), guarded by one lock (proc_lock).  An lwp's id as seen by
``curlwp`` is its table index plus one, so 0 always means "no lwp".  Allocating
and freeing processes and lwps is ``lwproc``'s; this module only finds them, so
that anything may look an lwp or process up without importing that logic.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from hypercalls import sync, thread
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.sys.lwp import (
    IO_ENTRY,
    IO_RESULT,
    IO_WORDS,
    L_NAME,
    L_PID,
    L_PROCW,
    LWP_WORDS,
    NAME_LEN,
)
from rumpmp.sys.proc import NPROC, P_PID, P_STATE, PROC_WORDS, SACTIVE, T_LOCK, TABLE_HDR


class Tables:
    """Word indices of the proc and lwp tables of one kernel in this process."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.w = arena.w
        self.hdr = arena.region_word("proc")
        self.procs = self.hdr + TABLE_HDR // 8
        self.lwps = arena.region_word("lwp")
        self.io = arena.region_word("lwpio")
        self.lock = sync.Mutex.attach(arena.pool, self.w[self.hdr + T_LOCK], sync.MTX_SPIN)

    def proc(self, slot: int) -> int:
        """Word index of proc slot ``slot``."""
        return self.procs + slot * PROC_WORDS

    def lwp(self, lid: int) -> int:
        """Word index of the lwp whose curlwp id is ``lid`` (index + 1)."""
        return self.lwps + (lid - 1) * LWP_WORDS

    def entry(self, lid: int) -> int:
        """Word index of lwp ``lid``'s entry payload buffer (what it runs)."""
        return self.io + (lid - 1) * IO_WORDS + IO_ENTRY

    def result(self, lid: int) -> int:
        """Word index of lwp ``lid``'s result payload buffer."""
        return self.io + (lid - 1) * IO_WORDS + IO_RESULT

    def lid_of(self, l: int) -> int:
        """The curlwp id of the lwp record at word ``l`` (0 for none)."""
        return (l - self.lwps) // LWP_WORDS + 1 if l else 0

    def active(self) -> Iterator[int]:
        """Word index of every live process (the caller holds proc_lock)."""
        w = self.w
        for slot in range(NPROC):
            p = self.procs + slot * PROC_WORDS
            if w[p + P_STATE] == SACTIVE:
                yield p

    def find_proc(self, pid: int) -> int:
        """Word index of the live process ``pid``; ESRCH if there is none."""
        w = self.w
        for slot in range(NPROC):
            p = self.procs + slot * PROC_WORDS
            if w[p + P_PID] == pid and w[p + P_STATE] == SACTIVE:
                return p
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}")

    def lwp_name(self, lid: int) -> str:
        return self.arena.get_str(self.lwp(lid) * 8 + L_NAME * 8, NAME_LEN)

    def set_lwp_name(self, lid: int, name: str) -> None:
        self.arena.set_str(self.lwp(lid) * 8 + L_NAME * 8, NAME_LEN, name)


def tables(arena: Arena) -> Tables:
    return arena.attached("proc", lambda: Tables(arena))


def curproc_word(arena: Arena) -> int:
    """Word index of the current lwp's process."""
    t = tables(arena)
    l = t.lwp(thread.curlwp())
    p, pid = t.w[l + L_PROCW], t.w[l + L_PID]
    if p and t.w[p + P_PID] == pid and t.w[p + P_STATE] == SACTIVE:
        return p  # the hint lwp_alloc left, still this lwp's process
    return t.find_proc(pid)
