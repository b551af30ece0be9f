"""rump_daemonize_begin(3) and rump_daemonize_done(3): become a daemon around boot.

``rump_daemonize_begin()`` forks before any kernel boots: the parent waits, and
exits with the status the child hands to ``rump_daemonize_done(error)`` once it is
serving (0) or has failed (an errno); the child goes on in a session of its own.  A
server (``python -m rumpmp server``) uses them so that its parent returns only once
the kernel is up, with the boot's error if it did not come up.

Host side: this module forks and exits processes with ``os``.
"""

from __future__ import annotations

import errno
import os  # the host side may: it forks, and the parent exits with the child's word

from hypercalls import proc
from rumpmp.host import kernel as kernel_

_pipe: list[int] = []  # the child's write end while it is between begin and done


def rump_daemonize_begin() -> None:
    """Fork; the parent never returns.  EALREADY once a kernel has booted in this
    process, or if it has begun already."""
    if kernel_.boot_count() or _pipe:
        raise OSError(errno.EALREADY, "rump_daemonize_begin: must come first, and once")
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        word = b""
        while len(word) < 4 and (chunk := os.read(r, 4 - len(word))):
            word += chunk
        # The child's error, or 1 if it ended without saying.
        os._exit(int.from_bytes(word, "little") if len(word) == 4 else 1)
    os.close(r)
    os.setsid()
    os.environ[proc.DAEMON_ENV] = "1"  # its CPUs let go of the terminal at once
    _pipe.append(w)


def rump_daemonize_done(error: int) -> None:
    """Tell the waiting parent how it went: 0 (serving: stdio goes to /dev/null,
    as rump's does) or an errno, its exit status.  EINVAL without a begin."""
    if isinstance(error, bool) or not isinstance(error, int) or not 0 <= error <= 255:
        raise TypeError(f"rump_daemonize_done: error must be an errno, not {error!r}")
    if not _pipe:
        raise OSError(errno.EINVAL, "rump_daemonize_done: no rump_daemonize_begin")
    w = _pipe.pop()
    os.write(w, error.to_bytes(4, "little"))
    os.close(w)
    if error == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
