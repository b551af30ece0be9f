"""Parameters and environment (rumpuser_getparam, rumpuser_getenv)."""

from __future__ import annotations

import errno
import os
import socket

#: rumpuser's special parameter names, answered by the host rather than the environment.
PARAM_NCPU = "_RUMPUSER_NCPU"
PARAM_HOSTNAME = "_RUMPUSER_HOSTNAME"


def getnhostcpu() -> int:
    """CPUs this host process may run on (rumpuser_getnhostcpu)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def getenv(name: str) -> str:
    """The host environment variable ``name``; ENOENT if unset."""
    value = os.environ.get(name)
    if value is None:
        raise FileNotFoundError(errno.ENOENT, f"{name} is not set")
    return value


def getparam(name: str) -> str:
    """A parameter for the kernel (rumpuser_getparam).

    ``PARAM_NCPU`` is ``RUMP_NCPU`` if set, ``host`` meaning the host's CPU count,
    else the host's CPU count; ``PARAM_HOSTNAME`` is ``rump-<pid>.<host>``.  Any
    other name is looked up in the environment.
    """
    if name == PARAM_NCPU:
        value = os.environ.get("RUMP_NCPU", "host")
        return str(getnhostcpu()) if value == "host" else value
    if name == PARAM_HOSTNAME:
        return f"rump-{os.getpid():05d}.{socket.gethostname()}"
    return getenv(name)


def getpid() -> int:
    """The host process id of the caller."""
    return os.getpid()


def pid_alive(pid: int) -> bool:
    """Whether a host process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def machine() -> str:
    """The host's machine name (``uname -m``): what the sysproxy banner reports."""
    return os.uname().machine
