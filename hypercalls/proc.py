"""Starting, watching and stopping the virtual CPU processes.

A vCPU is a process forked by this host's fork server (``forkserver``: a process
that has only ever had one thread, so no lock another host thread held is left held
in a CPU; the child starts with the kernel code already imported).  Two channels tie
the processes together so that no failure goes unnoticed:

* the host watches every CPU's sentinel and learns of an unexpected exit at once;
* each child holds the read end of a *lifeline* pipe whose only write end stays in
  the host: when the host dies, for whatever reason, the read returns EOF and the
  child cleans up and exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Sequence

from hypercalls import thread
from hypercalls.forkserver import ServedProcess

#: Write ends of every lifeline this process holds; a forked child closes them all,
#: or a child of one kernel would keep another kernel's lifeline open.
_lifeline_writers: set[int] = set()


class Lifeline:
    """A pipe whose write end only the host holds."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        _lifeline_writers.add(self.write_fd)

    def close(self) -> None:
        """Close both ends in this process (the host, at halt)."""
        _lifeline_writers.discard(self.write_fd)
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _close_lifelines() -> None:
    """In a forked child: close every lifeline's write end.  A child that kept one
    (a CPU of another kernel, or a child the program forks itself) would keep that
    kernel's CPUs from noticing the host's death."""
    for fd in list(_lifeline_writers):
        with contextlib.suppress(OSError):
            os.close(fd)
    _lifeline_writers.clear()


os.register_at_fork(after_in_child=_close_lifelines)

#: What a terminal (Ctrl-C), a CI runner, ``timeout`` or ``docker stop`` sends a whole
#: process group.  CPU processes ignore them: they are the kernel, and the lifeline
#: tells them when the host has gone, so they outlive it long enough to clean up.
GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def ignore_group_signals() -> None:
    """Ignore GROUP_SIGNALS in this process (a CPU)."""
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


#: Set by a process that is becoming a daemon (rump_daemonize_begin): its CPUs,
#: forked before it lets go of its terminal, must not hold the terminal either.
DAEMON_ENV = "RUMPMP_DAEMON"


def detach_stdio_if_daemon() -> None:
    """In a CPU of a daemon: standard input, output and error go to /dev/null, so
    that whoever waits for the daemon's output (a shell's ``$(...)``) is not kept
    waiting by the CPUs' copies of it."""
    if os.environ.get(DAEMON_ENV) != "1":
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def watch_parent(lifeline_fd: int, on_death: Callable[[], None]) -> None:
    """In a child: call ``on_death()`` from a thread when the host's lifeline breaks."""

    def watch(_: object) -> None:
        while True:
            try:
                if not os.read(lifeline_fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        on_death()

    thread.thread_create(watch, None, "lifeline")


def wait_any(procs: Sequence[ServedProcess], timeout: float) -> list[int]:
    """Indices of the processes in ``procs`` that have exited (waits up to ``timeout``)."""
    live = [p.sentinel for p in procs if p.exitcode is None and p.sentinel >= 0]
    if live and len(live) == len(procs):
        # (A sentinel closed meanwhile, the kernel having stopped, only ends the wait:
        # the exit codes are read under each process's lock.)
        with contextlib.suppress(OSError, ValueError):
            select.select(live, [], [], timeout)
    return [i for i, p in enumerate(procs) if p.exitcode is not None]


def exitcode_text(code: int | None) -> str:
    """'signal SIGKILL', 'exit 70', ... for a process exit code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal to a process, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def exit(code: int) -> None:
    """End the calling process at once, without cleanup handlers (rumpuser_exit)."""
    os._exit(code)
