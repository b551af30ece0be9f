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

A request carries what a fork from the host would have given the CPU: the function
and arguments (pickled), the host's environment, working directory and import path,
its standard input, output and error, and the descriptors the CPU needs (passed with
SCM_RIGHTS over a SOCK_SEQPACKET socket).  The server answers with the child's pid.
It reaps its children and writes each one's exit code to a pipe whose read end the
host holds: the host waits on that pipe as on a child's sentinel.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Sequence

import cloudpickle

#: The largest request: a function and arguments pickled, the environment and path.
MAX_REQUEST = 1 << 20
_PID = struct.Struct("<q")
_STATUS = struct.Struct("<i")
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

#: This process's connection to its fork server: (owner pid, socket), or None.
_server: tuple[int, socket.socket] | None = None
_lock = threading.Lock()


class ServedProcess:
    """A child of the fork server, as the host sees it: pid, a sentinel that becomes
    readable when it has exited, and its exit code (negative: the signal).  Any
    thread may ask; the sentinel stays open until ``close``."""

    def __init__(self, pid: int, status_fd: int, name: str) -> None:
        self.pid = pid
        self.name = name
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

    def is_alive(self) -> bool:
        return self.exitcode is None

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
        _exec_server(served, preload)
    served.close()
    _server = (os.getpid(), host)
    return host


def _importing() -> bool:
    """Whether a module is being imported (its lock held: a forked server would keep
    it, and every import of that package in a CPU would wait for it forever)."""
    return any(
        getattr(getattr(m, "__spec__", None), "_initializing", False)
        for m in list(sys.modules.values())
    )


def _exec_server(served: socket.socket, preload: Sequence[str]) -> None:
    served.set_inheritable(True)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "hypercalls.forkserver", str(served.fileno()), *preload],
            dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
            file_actions=[(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)],
        )
    finally:
        os.close(null)


def _forget_server() -> None:
    """In a forked child of the host: the server is its parent's."""
    global _server
    if _server is not None:
        with contextlib.suppress(OSError):
            _server[1].close()
    _server = None


os.register_at_fork(after_in_child=_forget_server)


def spawn(
    target: Callable[..., object],
    args: tuple,
    name: str,
    pass_fds: Sequence[int] = (),
    preload: Sequence[str] = (),
) -> ServedProcess:
    """Have the server fork a child running ``target(*args, *fds)``, where ``fds``
    are the child's copies of ``pass_fds``; a server started for it imports
    ``preload`` first."""
    request = cloudpickle.dumps(
        (target, args, dict(os.environ), os.getcwd(), list(sys.path), _host_modules())
    )
    status_r, status_w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        stdio = [fd if _valid(fd) else null for fd in (0, 1, 2)]
        with _lock:
            sock = _start(preload)
            socket.send_fds(sock, [request], [status_w, *stdio, *pass_fds])
            reply = sock.recv(_PID.size)
    except OSError as e:
        os.close(status_r)
        raise OSError(e.errno, f"the fork server is gone: {e.strerror or e}") from None
    finally:
        os.close(status_w)
        os.close(null)
    if len(reply) != _PID.size:
        os.close(status_r)
        raise OSError(errno.ECHILD, "the fork server is gone")
    return ServedProcess(_PID.unpack(reply)[0], status_r, name)


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
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sock.fileno()  # (the host's other descriptors are none of its business)
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)
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
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [])
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
                self.fork(data, fds)

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

    def fork(self, data: bytes, fds: list[int]) -> None:
        status_w, stdio, passed = fds[0], fds[1:4], fds[4:]
        pid = os.fork()
        if pid == 0:
            self._child(data, stdio, passed, status_w)
        self.children[pid] = status_w
        for fd in (*stdio, *passed):
            os.close(fd)
        with contextlib.suppress(OSError):
            self.sock.send(_PID.pack(pid))

    def _child(self, data: bytes, stdio: list[int], passed: list[int], status_w: int) -> None:
        """In the new child: become what the host asked for, run it, exit."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sig in _GROUP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            for fd in (
                self.sock.fileno(),
                self.wake_r,
                self.wake_w,
                status_w,
                *self.children.values(),
            ):
                os.close(fd)
            for i, fd in enumerate(stdio):
                os.dup2(fd, i)
                os.close(fd)
            target, args, env, cwd, path, modules = pickle.loads(data)
            os.environ.clear()
            os.environ.update(env)
            os.chdir(cwd)
            sys.path[:] = path
            for module in modules:
                if module not in sys.modules:
                    with contextlib.suppress(Exception):
                        importlib.import_module(module)
            target(*args, *passed)
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


if __name__ == "__main__":
    _serve_forever(socket.socket(fileno=int(sys.argv[1])), sys.argv[2:])
