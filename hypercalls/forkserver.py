"""The fork server: the one process that forks every virtual CPU of this host process.

A process that forks while another of its threads holds a lock (the logging module's,
an allocator's, the import lock) leaves that lock held forever in the child; Python
3.12 warns about it.  rumpmp's host is rarely single-threaded by the time it boots a
kernel (its own watcher threads, the program's threads), so the CPUs are forked by a
server that has only ever had one thread: forked from the host at its first boot if
the host has no other thread then (and is not in the middle of an import, whose lock
the server would keep), else started afresh (``python -m hypercalls.forkserver``).
Either way it has the kernel's modules imported, so a CPU starts with its code
loaded, as a fork from the host did.

A request asks for a group of children (a kernel's CPUs) and carries what a fork
from the host would have given them: the function and each child's arguments
(pickled), the host's environment, working directory, import path and entry-point
scan, its standard input, output and error, and each child's descriptors (passed
with SCM_RIGHTS over a SOCK_SEQPACKET socket), and what to prepare first (the
kernel attached, its semaphores opened: then every child inherits them).  Work can
be announced ahead (``ahead``), for the server to do while the host is busy.  The
server answers with the children's pids.  It reaps its children and writes each
one's exit code to a pipe whose read end the host holds: the host waits on that
pipe as on a child's sentinel.  If the server dies, the next request starts a new
one.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

import cloudpickle

from hypercalls import dl

#: The largest request: a function and arguments pickled, the environment and path.
MAX_REQUEST = 1 << 20
#: How often an idle server with work announced ahead does a step of it (s), and
#: how long it keeps at it before it gives up (a boot that failed never comes).
AHEAD_POLL = 0.0002
AHEAD_LIMIT = 10.0
_PID = struct.Struct("<q")
_STATUS = struct.Struct("<i")
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

#: This process's fork server: (this process's pid, the socket, the server's pid).
_server: tuple[int, socket.socket, int] | None = None
_lock = threading.Lock()


class ServedProcess:
    """A child of the fork server, as the host sees it: pid, a sentinel that becomes
    readable when it has exited, and its exit code (negative: the signal).  Any
    thread may ask; the sentinel stays open until ``close``."""

    def __init__(self, pid: int, status_fd: int) -> None:
        self.pid = pid
        self.sentinel = status_fd
        self._exitcode: int | None = None
        self._lock = threading.Lock()

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None:
            self.join(0)
        return self._exitcode

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the child to exit.  (Under the lock:
        ``close`` from another thread must not pull the sentinel from under it.)"""
        with self._lock:
            if self._exitcode is not None or self.sentinel < 0:
                return
            ready, _, _ = select.select([self.sentinel], [], [], timeout)
            if ready:
                data = os.read(self.sentinel, _STATUS.size)
                # No status: the server died before it could reap the child.
                self._exitcode = _STATUS.unpack(data)[0] if data else -signal.SIGKILL

    def close(self) -> None:
        """Let go of the sentinel (the host, once it waits for the child no more)."""
        with self._lock:
            if self.sentinel >= 0:
                os.close(self.sentinel)
                self.sentinel = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _start(preload: Sequence[str]) -> socket.socket:
    """This process's fork server (started now if it has none, importing
    ``preload``): forked when that is safe, else a new program.  Holds ``_lock``."""
    global _server
    if _server is not None and _server[0] == os.getpid():
        return _server[1]
    host, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if threading.active_count() == 1 and not _importing():
        pid = os.fork()
        if pid == 0:  # the server: it never returns into the host's code
            host.close()
            _serve_forever(served, preload)
    else:
        pid = _exec_server(served, preload)
    served.close()
    _server = (os.getpid(), host, pid)
    return host


def server_pid() -> int | None:
    """This process's fork server's pid, if it has one."""
    return _server[2] if _server is not None and _server[0] == os.getpid() else None


def _importing() -> bool:
    """Whether a module is being imported (its lock held: a forked server would keep
    it, and every import of that package in a CPU would wait for it forever)."""
    return any(
        getattr(getattr(m, "__spec__", None), "_initializing", False)
        for m in list(sys.modules.values())
    )


def _exec_server(served: socket.socket, preload: Sequence[str]) -> int:
    served.set_inheritable(True)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "hypercalls.forkserver", str(served.fileno()), *preload],
            dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
            file_actions=[(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)],
        )
    finally:
        os.close(null)


def _forget_server() -> None:
    """Let go of the server: in a forked child of the host (it is its parent's), or
    once it has died (reaped, if it was this process's child)."""
    global _server
    if _server is not None:
        with contextlib.suppress(OSError):
            _server[1].close()
        if _server[0] == os.getpid():
            with contextlib.suppress(OSError):
                os.waitpid(_server[2], os.WNOHANG)
    _server = None


os.register_at_fork(after_in_child=_forget_server)


def ahead(
    key: str,
    func: Callable[..., tuple[Callable[[], bool], Callable[[], None]]],
    args: tuple,
    preload: Sequence[str] = (),
) -> None:
    """Have the server start on work a later ``spawn_group(key, ...)`` needs, while
    this process does something else: ``func(*args)`` returns (step, release); the
    server calls ``step()`` whenever it is idle, until the group comes (whose
    ``prepare`` takes the work over) or, if it returns False or AHEAD_LIMIT seconds
    pass, it calls ``release()``."""
    message = cloudpickle.dumps(("ahead", key, func, args))
    with _lock:
        try:
            _start(preload).send(message)
        except OSError:  # the server is gone: the group will start a new one
            _forget_server()


def spawn_group(
    key: str,
    target: Callable[..., object],
    args: Sequence[tuple],
    pass_fds: Sequence[Sequence[int]],
    prepare: tuple[Callable[..., Callable[[], None]], tuple] | None = None,
    preload: Sequence[str] = (),
) -> list[ServedProcess]:
    """Have the server fork one child per ``args[i]``, running ``target(*args[i],
    *fds)`` where ``fds`` are its copies of ``pass_fds[i]``.  ``prepare`` is
    (function, arguments) called in the server first, its result called once the
    children are forked: what every child should inherit (a kernel attached, its
    semaphores open) is done there once.  A server started for this imports
    ``preload`` first."""
    request = cloudpickle.dumps(
        ("spawn", key, target, list(args), prepare, dict(os.environ), os.getcwd(),
         list(sys.path), _host_modules(), dl.scanned())
    )  # fmt: skip
    pipes = [os.pipe() for _ in args]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        stdio = [fd if _valid(fd) else null for fd in (0, 1, 2)]
        fds = [*stdio, *(w for _, w in pipes), *(fd for group in pass_fds for fd in group)]
        reply = _ask(request, fds, _PID.size * len(args), preload)
    except OSError:
        for r, _ in pipes:
            os.close(r)
        raise
    finally:
        for _, w in pipes:
            os.close(w)
        os.close(null)
    pids = [_PID.unpack_from(reply, i * _PID.size)[0] for i in range(len(args))]
    return [ServedProcess(pid, r) for pid, (r, _) in zip(pids, pipes, strict=True)]


def _ask(request: bytes, fds: list[int], size: int, preload: Sequence[str]) -> bytes:
    """Send a request and its descriptors; the server's answer of ``size`` bytes.  A
    server found dead is replaced once; ECHILD if the new one fails too."""
    with _lock:
        for _ in range(2):
            try:
                sock = _start(preload)
                socket.send_fds(sock, [request], fds)
                reply = sock.recv(size)
            except OSError:
                reply = b""
            if len(reply) == size:
                return reply
            _forget_server()  # (the next attempt starts a new server)
    raise OSError(errno.ECHILD, "the fork server is gone")


def _valid(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _host_modules() -> list[str]:
    """The kernel's modules the host has imported: a CPU has them too."""
    return [m for m in sys.modules if m.startswith(("rumpmp", "hypercalls"))]


# -- the server ----------------------------------------------------------------------


def _serve_forever(sock: socket.socket, preload: Sequence[str]) -> None:
    """Fork a child per request until the host's end closes; never returns."""
    try:
        # Not the host's terminal or pipes: a shell waiting for the host's output must
        # not wait for the server's copy.  (Its other descriptors stay open: objects it
        # inherited own some, and would close them again, reused.  The CPUs close all
        # they do not need; the server ends with the host.)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        for sig in _GROUP_SIGNALS:  # like the CPUs, it ends when the host has gone
            signal.signal(sig, signal.SIG_IGN)
        for name in preload:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        _Server(sock).run()
    finally:
        os._exit(0)


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: dict[int, int] = {}  # pid -> the write end of its status pipe
        # key -> (a step of work announced ahead, what undoes it, when to give it up)
        self.ahead: dict[str, tuple[Callable[[], bool], Callable[[], None], float]] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def run(self) -> None:
        while True:
            idle = AHEAD_POLL if self.ahead else None
            ready, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [], idle)
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
                self.reap()
            if self.sock.fileno() in ready:
                try:
                    data, fds, _, _ = socket.recv_fds(self.sock, MAX_REQUEST, 64)
                except OSError:
                    return
                if not data:
                    return  # the host has gone
                message = pickle.loads(data)
                if message[0] == "ahead":
                    _, key, func, args = message
                    step, release = func(*args)
                    self.ahead[key] = (step, release, time.monotonic() + AHEAD_LIMIT)
                else:
                    self.fork(_Request(*message[1:]), fds)
            elif self.ahead:
                self.work_ahead()

    def work_ahead(self) -> None:
        """A step of each preparation the host announced (while it is busy elsewhere)."""
        for key, (step, release, give_up) in list(self.ahead.items()):
            if not step() or time.monotonic() > give_up:  # (the group is not coming)
                del self.ahead[key]
                release()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.children.pop(pid, None)
            if w is not None:
                with contextlib.suppress(OSError):
                    os.write(w, _STATUS.pack(os.waitstatus_to_exitcode(status)))
                os.close(w)

    def fork(self, request: _Request, fds: list[int]) -> None:
        self.ahead.pop(request.key, None)  # (its preparation is finished now)
        n = len(request.args)
        stdio, status, passed = fds[:3], fds[3 : 3 + n], fds[3 + n :]
        per_child = len(passed) // n
        request.prepare_imports()  # here, once: every later child starts with them
        gc.freeze()  # (the children's collections leave the server's objects alone,
        # so their pages stay shared instead of being copied as each child scans them)
        release = request.prepare[0](*request.prepare[1]) if request.prepare else None
        pids = []
        try:
            for i, args in enumerate(request.args):
                mine = passed[i * per_child : (i + 1) * per_child]
                pid = os.fork()
                if pid == 0:
                    self._child(request.target, (*args, *mine), request.env, stdio, mine)
                self.children[pid] = status[i]
                pids.append(pid)
        finally:
            for fd in (*stdio, *passed):
                os.close(fd)
            with contextlib.suppress(OSError):  # (the host waits for this, not the rest)
                self.sock.send(b"".join(_PID.pack(pid) for pid in pids))
            if release is not None:
                release()

    def _child(
        self,
        target: Callable[..., object],
        args: tuple,
        env: dict[str, str],
        stdio: list[int],
        keep: list[int],
    ) -> None:
        """In the new child: become what the host asked for, run ``target(*args)``
        with its descriptors ``keep`` (the rest are the server's and the others'), exit."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sig in _GROUP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            for i, fd in enumerate(stdio):
                os.dup2(fd, i)
            _close_all_but(set(keep))
            if os.environ != env:  # (usually the same: the server was forked from the host)
                os.environ.clear()
                os.environ.update(env)
            target(*args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child's last word, then its exit code
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def _close_all_but(keep: set[int]) -> None:
    """Close every descriptor above stderr except ``keep``."""
    low = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


class _Request(NamedTuple):
    """What the host asks for: ``target(*a)`` for each ``a`` in ``args``, in its
    environment, working directory and import path, with the modules it has
    imported, after ``prepare``; ``key`` ends the work announced ahead for it."""

    key: str
    target: Callable[..., object]
    args: list[tuple]
    prepare: tuple[Callable[..., Callable[[], None]], tuple] | None
    env: dict[str, str]
    cwd: str
    path: list[str]
    modules: list[str]
    entry_points: dict[str, list[tuple[str, str]]]

    def prepare_imports(self) -> None:
        """In the server: the host's directory and path, and its modules imported."""
        os.chdir(self.cwd)
        sys.path[:] = self.path
        for module in self.modules:
            if module not in sys.modules:
                with contextlib.suppress(Exception):
                    importlib.import_module(module)
        dl.adopt(self.entry_points)


if __name__ == "__main__":
    _serve_forever(socket.socket(fileno=int(sys.argv[1])), sys.argv[2:])
