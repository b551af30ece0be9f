"""The kernel side of the sysproxy server (rump's spops): what serving a client asks
of the kernel.  ``new_client`` runs for the host's handshake; the rest runs in the
CPUs, for the lwps that serve the client's connection (``rumpmp.sp.spserve``).

Fork cookies live in the arena (the "spcookie" table, under proc_lock): a client's
PREFORK is served in the CPU that holds its connection, and its child's FORK
handshake is answered by the host, which takes the cookie back from the table."""

from __future__ import annotations

import errno
import hmac

from hypercalls import clock, rnd
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.cred import prot, resource, signals
from rumpmp.rumpkern.file import descrip, event
from rumpmp.rumpkern.sched import lwproc
from rumpmp.rumpkern.syscall import sysent
from rumpmp.sys.proc import (
    P_NEXEC,
    P_PID,
    P_SPCLIENT,
    P_SPRAISE,
    RLIMIT_NOFILE,
    RUMP_RFCFDG,
    RUMP_RFFDG,
)
from rumpmp.sys.sp import C_COOKIE, C_EXPIRES, C_PID, COOKIE_WORDS, NCOOKIE

SIGKILL = 9
INITPROC = 1
COOKIE_BYTES = 16  # 128 random bits


def new_client(
    cookie: bytes | None, name: str, uid: int | None, gid: int | None, nofile: int
) -> tuple[int, int, int, int]:
    """The process of a new connection: a child of initproc with no descriptors
    (GUEST: ``cookie`` None), or a copy of the process a fork cookie names, ids and
    descriptors included (FORK: ESRCH for a forged, used or expired cookie); named
    ``name``, its open-files limit ``nofile``, its ids ``uid``/``gid`` where given.
    (pid, the lwp context that holds it, uid, gid)."""
    if cookie is None:
        parent, flags = INITPROC, RUMP_RFCFDG
    else:
        parent, flags = take_cookie(cookie), RUMP_RFFDG
    pid, holder = sysent.new_process(flags, parent)
    lwproc.rump_lwproc_switch(holder)
    try:
        uid, gid = _setup(name, uid, gid, nofile)
    except BaseException:
        lwproc.rump_lwproc_releaselwp()  # the process goes with its only lwp
        raise
    lwproc.rump_lwproc_switch(None)
    return pid, holder, uid, gid


def _setup(name: str, uid: int | None, gid: int | None, nofile: int) -> tuple[int, int]:
    arena = _arena.current()
    prot.proc_setcomm(name)
    resource.rump_sys_setrlimit(RLIMIT_NOFILE, nofile, nofile)
    ids = (prot.rump_sys_geteuid(), prot.rump_sys_getegid())
    if uid is not None and gid is not None and ids != (uid, gid):
        prot.rump_sys_setgroups([])
        prot.rump_sys_setgid(gid)
        prot.rump_sys_setuid(uid)
    arena.w[curproc_word(arena) + P_SPCLIENT] = -1  # a client's, not served yet
    return prot.rump_sys_geteuid(), prot.rump_sys_getegid()


def client_exec(name: str) -> None:
    """The client exec'd (rumpclient_exec): close its FD_CLOEXEC descriptors and
    take its new name."""
    arena = _arena.current()
    descrip.fd_closeexec(arena)
    prot.proc_setcomm(name)
    p = curproc_word(arena)
    event.knote_proc(arena, p, arena.w[p + P_PID], P_NEXEC)


def client_gone(pid: int) -> None:
    """The client has disconnected: its process's sleeping calls end (EINTR)."""
    signals.interrupt(pid, SIGKILL)


def served_by(arena: Arena, pid: int, cpu: int) -> list[int]:
    """Record that ``cpu`` serves client ``pid`` (signals for it go there); the
    signals raised for it meanwhile, taken."""
    return _take_raised(arena, pid, cpu + 1)


def take_raised(arena: Arena, pid: int) -> list[int]:
    """The signals raised for client ``pid`` (RUMP_SIGMODEL_RAISE), taken."""
    try:
        return _take_raised(arena, pid, None)
    except ProcessLookupError:
        return []


def _take_raised(arena: Arena, pid: int, serving: int | None) -> list[int]:
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        p = t.find_proc(pid)
        if serving is not None:
            arena.w[p + P_SPCLIENT] = serving
        bits, arena.w[p + P_SPRAISE] = arena.w[p + P_SPRAISE], 0
    finally:
        t.lock.exit()
    return [sig for sig in range(1, 64) if bits & (1 << sig)]


# -- fork cookies ---------------------------------------------------------------------


def new_cookie(pid: int, lifetime: int) -> bytes:
    """A fork cookie for process ``pid`` (rumpclient_prefork), refused after
    ``lifetime`` ns; EAGAIN when the table is full of live ones."""
    arena = _arena.current()
    cookie = rnd.getrandom(COOKIE_BYTES)
    now = clock.monotonic_ns()
    t = tables(arena)
    w = arena.w
    t.lock.enter_nowrap()
    try:
        for c in _cookies(arena):
            if not w[c + C_PID] or w[c + C_EXPIRES] < now:
                w[c + C_PID], w[c + C_EXPIRES] = pid, now + lifetime
                w[c + C_COOKIE : c + C_COOKIE + 2] = memoryview(cookie).cast("q")
                return cookie
    finally:
        t.lock.exit()
    raise OSError(errno.EAGAIN, "too many fork cookies waiting")


def take_cookie(cookie: bytes) -> int:
    """The process a fork cookie names, once; ESRCH for a forged, used or expired
    one, as rump answers (every live cookie is compared, in constant time)."""
    arena = _arena.current()
    found = _find(arena, cookie, 0, clock.monotonic_ns())
    if not found:
        raise ProcessLookupError(errno.ESRCH, "no such fork cookie")
    return found


def cancel_cookie(pid: int, cookie: object) -> bool:
    """rumpclient_fork_cancel: drop process ``pid``'s cookie; whether it was there."""
    return bool(_find(_arena.current(), cookie, pid, clock.monotonic_ns()))


def drop_cookies(arena: Arena, pid: int) -> None:
    """Process ``pid``'s client has gone: its cookies go too."""
    t = tables(arena)
    t.lock.enter_nowrap()
    for c in _cookies(arena):
        if arena.w[c + C_PID] == pid:
            arena.w[c + C_PID] = 0
    t.lock.exit()


def _cookies(arena: Arena) -> range:
    base = arena.region_word("spcookie")
    return range(base, base + NCOOKIE * COOKIE_WORDS, COOKIE_WORDS)


def _find(arena: Arena, cookie: object, pid: int, now: int) -> int:
    """Take the live cookie equal to ``cookie`` (of process ``pid``, if not 0); the
    process it named, or 0."""
    if not isinstance(cookie, bytes) or len(cookie) != COOKIE_BYTES:
        return 0
    t = tables(arena)
    w = arena.w
    found = 0
    t.lock.enter_nowrap()
    try:
        for c in _cookies(arena):
            held = bytes(w[c + C_COOKIE : c + C_COOKIE + 2])
            live = w[c + C_PID] and w[c + C_EXPIRES] >= now and (not pid or w[c + C_PID] == pid)
            if hmac.compare_digest(held, cookie) and live:  # no early exit
                found = c
        if found:
            pid, w[found + C_PID] = w[found + C_PID], 0
    finally:
        t.lock.exit()
    return pid if found else 0
