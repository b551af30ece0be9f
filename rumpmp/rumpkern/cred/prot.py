"""Process identity system calls (kern_prot.c): getpid, getuid, setuid and friends.

These are the calls rump's tests make through ``rump_sys_*``; they act on the
process of the calling thread's current lwp.  Changing an id never edits the
process's credential in place (a child may share it): a modified copy replaces
it, as NetBSD's do_setresuid does.  Errors raise OSError (EPERM), where rump's
``rump_sys_*`` return -1 and set errno.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.cred.kauth import kauth_cred_get, kauth_cred_t
from rumpmp.sys.lwp import L_LID, L_PID, L_STATE, NLWP
from rumpmp.sys.proc import (
    COMM_LEN,
    P_COMM,
    P_CRED,
    P_PID,
    P_PPID,
    P_RTIME,
)
from rumpmp.sys.sysctl import kinfo_proc2


def rump_sys_getpid() -> int:
    """getpid(2) of the current process."""
    arena = _arena.current()
    return arena.w[curproc_word(arena) + P_PID]


def rump_sys_getppid() -> int:
    """getppid(2)."""
    arena = _arena.current()
    return arena.w[curproc_word(arena) + P_PPID]


def rump_sys_getuid() -> int:
    """getuid(2): the real uid."""
    return kauth.kauth_cred_getuid(kauth_cred_get())


def rump_sys_geteuid() -> int:
    """geteuid(2)."""
    return kauth.kauth_cred_geteuid(kauth_cred_get())


def rump_sys_getgid() -> int:
    """getgid(2)."""
    return kauth.kauth_cred_getgid(kauth_cred_get())


def rump_sys_getegid() -> int:
    """getegid(2)."""
    return kauth.kauth_cred_getegid(kauth_cred_get())


def rump_sys_getgroups() -> list[int]:
    """getgroups(2), as a list."""
    return kauth.kauth_cred_getgroups(kauth_cred_get())


def _replace_cred(change: Callable[[kauth_cred_t], None]) -> None:
    """Give the current process a copy of its credential with ``change`` applied."""
    arena = _arena.current()
    t = tables(arena)
    new = kauth.kauth_cred_dup(kauth_cred_get())
    change(new)
    t.lock.enter_nowrap()
    try:
        p = curproc_word(arena)
        old = kauth.cred_rele_locked(arena, arena.w[p + P_CRED], arena.w[p + P_CRED + 1])
        arena.w[p + P_CRED], arena.w[p + P_CRED + 1] = new.rec.offset, new.rec.gen
    finally:
        t.lock.exit()
    if old:
        kauth.cred_free_record(arena, old)


def _permitted(id_now: tuple[int, int, int], new: int, euid: int) -> None:
    """setuid/setgid rules: root may set any id; others only back to the real or
    saved one (EPERM otherwise)."""
    real, _, saved = id_now
    if euid != 0 and new not in (real, saved):
        raise PermissionError(errno.EPERM, f"operation not permitted: set id {new}")


def rump_sys_setuid(uid: int) -> None:
    """setuid(2): as root, set the real, effective and saved uid; otherwise set the
    effective uid back to the real or saved one."""
    cred = kauth_cred_get()
    now = (
        kauth.kauth_cred_getuid(cred),
        kauth.kauth_cred_geteuid(cred),
        kauth.kauth_cred_getsvuid(cred),
    )
    _permitted(now, uid, now[1])
    root = now[1] == 0

    def change(c: kauth_cred_t) -> None:
        kauth.kauth_cred_seteuid(c, uid)
        if root:
            kauth.kauth_cred_setuid(c, uid)
            kauth.kauth_cred_setsvuid(c, uid)

    _replace_cred(change)


def rump_sys_setgid(gid: int) -> None:
    """setgid(2): like setuid, for the group ids."""
    cred = kauth_cred_get()
    now = (
        kauth.kauth_cred_getgid(cred),
        kauth.kauth_cred_getegid(cred),
        kauth.kauth_cred_getsvgid(cred),
    )
    euid = kauth.kauth_cred_geteuid(cred)
    _permitted(now, gid, euid)

    def change(c: kauth_cred_t) -> None:
        kauth.kauth_cred_setegid(c, gid)
        if euid == 0:
            kauth.kauth_cred_setgid(c, gid)
            kauth.kauth_cred_setsvgid(c, gid)

    _replace_cred(change)


def rump_sys_setgroups(groups: list[int]) -> None:
    """setgroups(2): root only (EPERM otherwise)."""
    if kauth.kauth_cred_geteuid(kauth_cred_get()) != 0:
        raise PermissionError(errno.EPERM, "operation not permitted: setgroups")
    _replace_cred(lambda c: kauth.kauth_cred_setgroups(c, list(groups)))


def proc_setcomm(name: str) -> None:
    """Name the calling process (what ``ps`` shows; a remote client's process
    carries the client's address and program)."""
    arena = _arena.current()
    arena.set_str(curproc_word(arena) * 8 + P_COMM * 8, COMM_LEN, name)


def proc2(arena: Arena, _: int) -> list[kinfo_proc2]:
    """kern.proc2 (computed when read): every process (pid, ppid, uid, gid, name,
    seconds its system calls ran)."""
    t = tables(arena)
    w = arena.w
    out = []
    t.lock.enter_nowrap()
    try:
        for p in t.active():
            cred = kauth.proc_cred(arena, p)
            name = arena.get_str(p * 8 + P_COMM * 8, COMM_LEN)
            ids = kauth.kauth_cred_geteuid(cred), kauth.kauth_cred_getegid(cred)
            out.append(kinfo_proc2(w[p + P_PID], w[p + P_PPID], *ids, name, w[p + P_RTIME] / 1e9))
    finally:
        t.lock.exit()
    return out


def rump_allbetsareoff_setid(pid: int, lid: int) -> None:
    """rump_allbetsareoff_setid(3): give the calling lwp's process the pid ``pid``
    and the lwp the lid ``lid`` (the sysproxy server makes a client's process carry
    the client's ids).  EBUSY if another process has that pid."""
    arena = _arena.current()
    for value, what in ((pid, "pid"), (lid, "lid")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OSError(errno.EINVAL, f"rump_allbetsareoff_setid: bad {what} {value!r}")
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p = curproc_word(arena)
        try:
            other = t.find_proc(pid)
        except ProcessLookupError:
            other = p
        if other != p:
            raise OSError(errno.EBUSY, f"rump_allbetsareoff_setid: pid {pid} is in use")
        old = arena.w[p + P_PID]
        arena.w[p + P_PID] = pid
        for l in range(1, NLWP + 1):  # the process's lwps name it by its pid
            if arena.w[t.lwp(l) + L_STATE] and arena.w[t.lwp(l) + L_PID] == old:
                arena.w[t.lwp(l) + L_PID] = pid
        arena.w[t.lwp(thread.curlwp()) + L_LID] = lid
    finally:
        t.lock.exit()
