"""The system call table (init_sysent.c) and its one dispatcher (rump_syscall).

Each entry has its number, its name, the kernel function that serves it
(``rump_sys_<name>``), the types of its arguments and whether it is MPSAFE.  The
core's calls are in the table from the start; a component adds its own as it
initialises (``rump_syscall_boot_establish``: the file system's open, stat, ...),
and each kernel records in its arena which calls it serves, so a kernel booted
without the file system answers ENOSYS for them.  The dispatcher checks the number
and the arguments and turns every failure into an errno: ``ENOSYS`` for a call
this kernel does not serve, ``EINVAL`` for arguments that do not fit, the call's
own errno otherwise; nothing else escapes.

``serve`` answers a caller in another address space (the host's ``Kernel.sys``
runs it in an lwp of the caller's process); ``call_in`` switches kernel code to a
given process for one call.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypercalls import clock
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word
from rumpmp.rumpkern.cred import prot, resource, signals
from rumpmp.rumpkern.file import sys_generic
from rumpmp.rumpkern.locking import biglock
from rumpmp.rumpkern.sched import lwproc, reboot
from rumpmp.rumpkern.svc import module, sysctl
from rumpmp.rumpkern.svc import time as kern_time
from rumpmp.sys import syscall as N
from rumpmp.sys.proc import P_RTIME


@dataclass(frozen=True)
class Sysent:
    """One system call: its number and name, the kernel function that serves it,
    its parameters' names and accepted types, and whether it runs without the big
    lock."""

    num: int
    name: str
    func: Callable[..., Any]
    params: tuple[tuple[str, tuple[type, ...]], ...] = ()
    mpsafe: bool = True


#: The argument types a Sysent's parameters name.
INT = (int,)
ANY = (object,)
STR = (str,)
BYTES = (bytes, bytearray, memoryview)
LIST = (list, tuple)
TIME = (int, float, type(None))
FD = (("fd", INT),)
PATH = (("path", STR),)


def _descriptor_calls() -> list[Sysent]:
    """The generic calls on descriptors (rumpkern/file)."""
    G = sys_generic
    return [
        Sysent(N.SYS_read, "read", G.rump_sys_read, (*FD, ("size", INT))),
        Sysent(N.SYS_write, "write", G.rump_sys_write, (*FD, ("data", BYTES))),
        Sysent(N.SYS_pread, "pread", G.rump_sys_pread, (*FD, ("size", INT), ("offset", INT))),
        Sysent(N.SYS_pwrite, "pwrite", G.rump_sys_pwrite, (*FD, ("data", BYTES), ("offset", INT))),
        Sysent(N.SYS_readv, "readv", G.rump_sys_readv, (*FD, ("buffers", LIST))),
        Sysent(N.SYS_writev, "writev", G.rump_sys_writev, (*FD, ("buffers", LIST))),
        Sysent(N.SYS_close, "close", G.rump_sys_close, FD),
        Sysent(N.SYS_dup, "dup", G.rump_sys_dup, FD),
        Sysent(N.SYS_dup2, "dup2", G.rump_sys_dup2, (*FD, ("newfd", INT))),
        Sysent(N.SYS_dup3, "dup3", G.rump_sys_dup3, (*FD, ("newfd", INT), ("flags", INT))),
        Sysent(N.SYS_fcntl, "fcntl", G.rump_sys_fcntl, (*FD, ("cmd", INT), ("arg", INT))),
        Sysent(N.SYS_ioctl, "ioctl", G.rump_sys_ioctl, (*FD, ("cmd", INT), ("arg", INT))),
        Sysent(N.SYS_fstat, "fstat", G.rump_sys_fstat, FD),
        Sysent(N.SYS_pipe, "pipe", G.rump_sys_pipe),
        Sysent(N.SYS_pipe2, "pipe2", G.rump_sys_pipe2, (("flags", INT),)),
        Sysent(N.SYS_kqueue, "kqueue", G.rump_sys_kqueue),
        Sysent(
            N.SYS_kevent,
            "kevent",
            G.rump_sys_kevent,
            (
                ("kq", INT),
                ("changes", (*LIST, type(None))),
                ("nevents", INT),
                ("timeout", TIME),
            ),
        ),
        Sysent(N.SYS_poll, "poll", G.rump_sys_poll, (("fds", LIST), ("timeout", INT))),
        Sysent(N.SYS_pollts, "pollts", G.rump_sys_pollts, (("fds", LIST), ("timeout", TIME))),
        Sysent(
            N.SYS_select,
            "select",
            G.rump_sys_select,
            (("rlist", LIST), ("wlist", LIST), ("xlist", LIST), ("timeout", TIME)),
        ),
    ]


_CORE_CALLS = (
    Sysent(N.SYS_getpid, "getpid", prot.rump_sys_getpid),
    Sysent(N.SYS_gettimeofday, "gettimeofday", kern_time.rump_sys_gettimeofday),
    Sysent(
        N.SYS_clock_gettime,
        "clock_gettime",
        kern_time.rump_sys_clock_gettime,
        (("clock_id", INT),),
    ),
    Sysent(
        N.SYS_clock_getres, "clock_getres", kern_time.rump_sys_clock_getres, (("clock_id", INT),)
    ),
    Sysent(N.SYS_nanosleep, "nanosleep", kern_time.rump_sys_nanosleep, (("rqtp", ANY),)),
    Sysent(
        N.SYS_clock_nanosleep,
        "clock_nanosleep",
        kern_time.rump_sys_clock_nanosleep,
        (("clock_id", INT), ("flags", INT), ("rqtp", ANY)),
    ),
    Sysent(N.SYS_kill, "kill", signals.rump_sys_kill, (("pid", INT), ("sig", INT))),
    Sysent(N.SYS_setuid, "setuid", prot.rump_sys_setuid, (("uid", INT),)),
    Sysent(N.SYS_getuid, "getuid", prot.rump_sys_getuid),
    Sysent(N.SYS_geteuid, "geteuid", prot.rump_sys_geteuid),
    Sysent(N.SYS_getppid, "getppid", prot.rump_sys_getppid),
    Sysent(N.SYS_getegid, "getegid", prot.rump_sys_getegid),
    Sysent(N.SYS_getgid, "getgid", prot.rump_sys_getgid),
    Sysent(N.SYS_getgroups, "getgroups", prot.rump_sys_getgroups),
    Sysent(N.SYS_setgroups, "setgroups", prot.rump_sys_setgroups, (("groups", (list, tuple)),)),
    Sysent(N.SYS_setgid, "setgid", prot.rump_sys_setgid, (("gid", INT),)),
    Sysent(
        N.SYS___sysctl,
        "__sysctl",
        sysctl.rump_sys___sysctl,
        (("name", (str, tuple)), ("new", ANY)),
    ),
    Sysent(
        N.SYS_modctl,
        "modctl",
        module.rump_sys_modctl,
        (("cmd", INT), ("arg", ANY)),
        mpsafe=False,
    ),
    Sysent(N.SYS_getrlimit, "getrlimit", resource.rump_sys_getrlimit, (("resource", INT),)),
    Sysent(
        N.SYS_setrlimit,
        "setrlimit",
        resource.rump_sys_setrlimit,
        (("resource", INT), ("soft", INT), ("hard", INT)),
    ),
    Sysent(
        N.SYS_reboot,
        "reboot",
        reboot.rump_sys_reboot,
        (("howto", INT), ("bootstr", (str, type(None)))),
    ),
    *_descriptor_calls(),
)

#: Every call this program has code for: the core's, and those components add with
#: ``syscall_establish`` when they are linked (imported).  Every kernel serves the
#: core's; which of the others a kernel serves is in its own table, in its arena
#: (``sys.syscall.SYSENT_REGION``).
SYSENT: dict[int, Sysent] = {}
BY_NAME: dict[str, Sysent] = {}


def syscall_establish(entries: Iterable[Sysent]) -> None:
    """Add ``entries`` to this program's calls (NetBSD's syscall_establish); a
    kernel serves them once it establishes them at boot.  EINVAL for a number
    past SYS_MAXSYSCALL."""
    for e in entries:
        if not 0 < e.num < N.SYS_MAXSYSCALL:
            raise OSError(errno.EINVAL, f"system call number {e.num} out of range")
        SYSENT[e.num] = BY_NAME[e.name] = e


def rump_syscall_boot_establish(arena: Arena, entries: Iterable[Sysent]) -> None:
    """Kernel ``arena`` serves ``entries`` (rump's call of the same name: a
    component with system calls establishes them as it initialises, at boot,
    before the CPUs start)."""
    entries = list(entries)
    syscall_establish(entries)
    base = arena.region_word(N.SYSENT_REGION[0])
    for e in entries:
        arena.w[base + e.num] = 1


syscall_establish(_CORE_CALLS)
_CORE_NUMS = frozenset(e.num for e in _CORE_CALLS)


def lookup(num: object) -> Sysent:
    """The entry of call ``num`` if this kernel serves it; ENOSYS if not."""
    entry = SYSENT.get(num) if type(num) is int else None
    if entry is not None:
        if num in _CORE_NUMS:
            return entry
        arena = _arena.current()
        if arena.w[arena.region_word(N.SYSENT_REGION[0]) + entry.num]:
            return entry
    raise OSError(errno.ENOSYS, f"no system call {num!r}")


def check_args(entry: Sysent, args: tuple[Any, ...]) -> None:
    """TypeError naming the parameter if ``args`` do not fit ``entry``."""
    if len(args) > len(entry.params):
        raise TypeError(f"{entry.name}() takes {len(entry.params)} arguments, not {len(args)}")
    for (name, types), value in zip(entry.params, args, strict=False):
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise TypeError(
                f"{entry.name}: {name} must be {_names(types)}, not {type(value).__name__}"
            )


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("anything" if t is object else t.__name__ for t in types)


def rump_syscall(num: int, args: tuple[Any, ...] = ()) -> Any:
    """Serve system call ``num`` with ``args`` in the calling lwp's process; its
    result, or OSError with the errno (never another exception)."""
    entry = lookup(num)
    if not isinstance(args, (tuple, list)):  # (a tuple: "tuple | list" is built at each call)
        raise OSError(errno.EINVAL, f"{entry.name}: arguments must be a tuple")
    try:
        check_args(entry, tuple(args))
        if entry.mpsafe:
            return entry.func(*args)
        biglock.KERNEL_LOCK(1)
        try:
            return entry.func(*args)
        finally:
            biglock.KERNEL_UNLOCK_ONE()
    except OSError:
        raise
    except (TypeError, ValueError) as e:
        raise OSError(errno.EINVAL, f"{entry.name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a system call answers with an errno, always
        raise OSError(errno.EIO, f"{entry.name}: {type(e).__name__}: {e}") from None


def serve(num: int, args: tuple[Any, ...]) -> Any:
    """``rump_syscall`` for a caller in another address space (the host, a remote
    client): for a call that fills buffers, (its result, the buffers' contents).
    The time it takes counts as its process's (kern.proc2)."""
    start = clock.monotonic_ns()
    try:
        result = rump_syscall(num, args)
    finally:
        arena = _arena.current()
        arena.w[curproc_word(arena) + P_RTIME] += clock.monotonic_ns() - start
    if num not in N.FILLS:
        return result
    return result, [bytes(b) for b in args[N.FILLS[num]]]


def call_in(pid: int, num: int, args: tuple[Any, ...]) -> Any:
    """``serve`` in process ``pid``, in an lwp context of its own made for the call."""
    lwproc.rump_lwproc_newlwp(pid)
    try:
        return serve(num, args)
    finally:
        lwproc.rump_lwproc_releaselwp()


def new_process(flags: int, parent: int | None) -> tuple[int, int]:
    """A process for the host, a child of ``parent`` (None: of proc0): its pid and
    the lwp that keeps it alive between calls."""
    if parent is not None:
        lwproc.rump_lwproc_newlwp(parent)
    in_parent = lwproc.rump_lwproc_curlwp()  # None in the implicit context (proc0)
    try:
        lwproc.rump_lwproc_rfork(flags)
    except BaseException:
        if in_parent is not None:
            lwproc.rump_lwproc_releaselwp()
        raise
    pid, holder = prot.rump_sys_getpid(), lwproc.rump_lwproc_curlwp()
    lwproc.rump_lwproc_switch(in_parent)  # the child's lwp waits, idle, for calls
    if in_parent is not None:
        lwproc.rump_lwproc_releaselwp()  # the one made in the parent for this
    assert holder is not None
    return pid, holder


def end_process(holder: int) -> None:
    """Release the holder lwp: the process ends with it (if no call is in it)."""
    lwproc.rump_lwproc_switch(holder)
    lwproc.rump_lwproc_releaselwp()
