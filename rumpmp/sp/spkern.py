"""The kernel side of the sysproxy server (rump's spops): what the server asks of
the kernel for a client.  ``client_setup``, ``client_exec`` and ``client_gone``
run in the client's process (``Process.run``); ``take_raised`` runs in the host,
on the kernel's arena, for the server's signal thread."""

from __future__ import annotations

from rumpmp.rumpkern import arena as _arena
from rumpmp.rumpkern.arena import Arena
from rumpmp.rumpkern.sched.proc import curproc_word, tables
from rumpmp.rumpkern.svc import prot, resource, signals
from rumpmp.sys.proc import P_PID, P_SPCLIENT, P_SPRAISE, RLIMIT_NOFILE
from rumpmp.vfs import descrip

SIGKILL = 9


def client_setup(name: str, uid: int, gid: int, nofile: int) -> int:
    """Make the calling process a client's: its name, its open-files limit and the
    client's ids (a forked client's process has them from its parent already);
    its pid."""
    arena = _arena.current()
    prot.proc_setcomm(name)
    resource.rump_sys_setrlimit(RLIMIT_NOFILE, nofile, nofile)
    if (prot.rump_sys_geteuid(), prot.rump_sys_getegid()) != (uid, gid):
        prot.rump_sys_setgroups([])
        prot.rump_sys_setgid(gid)
        prot.rump_sys_setuid(uid)
    p = curproc_word(arena)
    arena.w[p + P_SPCLIENT] = 1
    return arena.w[p + P_PID]


def client_exec(name: str) -> None:
    """The client exec'd (rumpclient_exec): close its FD_CLOEXEC descriptors and
    take its new name."""
    descrip.fd_closeexec(_arena.current())
    prot.proc_setcomm(name)


def client_gone() -> None:
    """The client has disconnected: its process's sleeping calls end (EINTR)."""
    arena = _arena.current()
    signals.interrupt(arena.w[curproc_word(arena) + P_PID], SIGKILL)


def take_raised(arena: Arena) -> list[tuple[int, int]]:
    """(pid, signal) of every signal waiting for the server to send, taken."""
    t = tables(arena)
    w = arena.w
    out = []
    t.lock.enter_nowrap()
    try:
        for p in t.active():
            bits = w[p + P_SPRAISE]
            if bits and w[p + P_SPCLIENT]:
                w[p + P_SPRAISE] = 0
                out += [(w[p + P_PID], sig) for sig in range(1, 64) if bits & (1 << sig)]
    finally:
        t.lock.exit()
    return out
