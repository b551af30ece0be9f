"""The sysproxy transport (rumpuser_sp's sockets): addresses, listening, connecting,
and reading exactly what a frame says, for the server and the client library; and
the channels over which the host hands accepted connections to the CPU processes.

Addresses are URLs as rump_sp(7) writes them: ``unix://relative/path``,
``unix:///absolute/path``, ``tcp://127.0.0.1:port``, ``tcp://[::1]:port``.  A unix
socket is created with the mode asked for (0600 by default); TCP binds a loopback
address unless ``any_address`` allows another.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import socket
import stat
import struct
import threading
import weakref
from collections.abc import Callable

from hypercalls.thread import hooks

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def parse_url(url: str) -> tuple[int, str | tuple[str, int]]:
    """(address family, address) of a sysproxy URL; ValueError naming what is wrong."""
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise ValueError(f"{url!r}: not a URL (unix://PATH or tcp://HOST:PORT)")
    if scheme == "unix":
        return socket.AF_UNIX, rest  # "unix:///abs" leaves "/abs"; "unix://rel" leaves "rel"
    if scheme != "tcp":
        raise ValueError(f"{url!r}: unknown scheme {scheme!r} (unix or tcp)")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{url!r}: a TCP address is HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    if ":" in host:
        raise ValueError(f"{url!r}: an IPv6 address goes in brackets")
    return socket.AF_INET, (host, int(port))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Conn:
    """One connection: whole frames in and out, the peer's credentials.

    In a CPU process every wait (for bytes to read, for room to send, for the send
    lock) releases the virtual CPU first, as every blocking hypercall does; what can
    be done at once is done holding it."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        # Reentrant: a signal handler that calls in the middle of a caller's call
        # sends its own frame whole before the caller sends (frames never interleave).
        self._send_lock = threading.RLock()
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def send(self, parts: list[bytes | memoryview]) -> None:
        """Send ``parts`` (a frame's header and body) whole, in order, without
        joining them; frames from several threads never interleave."""
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        if not self._send_lock.acquire(blocking=False):
            _unscheduled(self._send_lock.acquire)
        try:
            while views:  # what goes at once goes holding the CPU
                try:
                    sent = self.sock.sendmsg(views, [], socket.MSG_DONTWAIT)
                except BlockingIOError:
                    _unscheduled(self._send_rest, views)  # the rest in one blocking wait
                    return
                _consume(views, sent)
        finally:
            self._send_lock.release()

    def recv_exact(self, n: int) -> bytearray:
        """Exactly ``n`` bytes; EOFError if the peer closes first."""
        buf = bytearray(n)
        self.recv_into_exact(memoryview(buf))
        return buf

    def recv_into_exact(self, view: memoryview) -> None:
        """Fill ``view`` exactly; EOFError if the peer closes first."""
        n = len(view)
        got = 0
        while got < n:  # what has come is taken holding the CPU
            try:
                k = self.sock.recv_into(view[got:], n - got, socket.MSG_DONTWAIT)
            except BlockingIOError:  # the rest in one blocking wait
                _unscheduled(self._recv_rest, view[got:])
                return
            if not k:
                raise EOFError("connection closed by the peer")
            got += k

    def _recv_rest(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            k = self.sock.recv_into(view[got:], len(view) - got, socket.MSG_WAITALL)
            if not k:
                raise EOFError("connection closed by the peer")
            got += k

    def _send_rest(self, views: list[memoryview]) -> None:
        while views:
            _consume(views, self.sock.sendmsg(views))

    def readable(self) -> bool:
        """Whether a read would not block (bytes, or the peer's end, are there)."""
        try:
            return bool(self._poll.poll(0))
        except RuntimeError:  # a signal's handler looks while this thread looked
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))

    def recv_line(self, limit: int) -> bytes:
        """One line, its newline included; ValueError (naming what came) past
        ``limit`` bytes, EOFError (likewise) if the peer closes first."""
        line = bytearray()
        while not line.endswith(b"\n"):
            if len(line) >= limit:
                raise ValueError(f"no line in the first {limit} bytes: {bytes(line[:60])!r}")
            k = self.sock.recv(1)
            if not k:
                raise EOFError(f"connection closed after {bytes(line[:60])!r}")
            line += k
        return bytes(line)

    def peer_cred(self) -> tuple[int, int, int] | None:
        """(pid, uid, gid) of a unix-socket peer (SO_PEERCRED); None over TCP."""
        if self.sock.family != socket.AF_UNIX:
            return None
        raw = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, gid = _PEERCRED.unpack(raw)
        return pid, uid, gid

    def address(self) -> str:
        """The peer as ps shows it: a unix-socket peer by its pid, else its address."""
        cred = self.peer_cred()
        return f"unix:{cred[0]}" if cred else self.peer

    def release(self) -> None:
        """Close this process's descriptor of a connection another process shares
        (a forked child's copy of its parent's) without ending the connection."""
        os.close(self.sock.detach())

    def shutdown(self) -> None:
        """End the connection both ways (a thread blocked reading it wakes)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.shutdown()
        self.sock.close()


def _consume(views: list[memoryview], sent: int) -> None:
    """Drop the ``sent`` bytes from the front of ``views``."""
    while views and sent >= len(views[0]):
        sent -= len(views[0])
        views.pop(0)
    if views and sent:
        views[0] = views[0][sent:]


def _peer_of(sock: socket.socket) -> str:
    """``unix``, or ``tcp:HOST:PORT``: a connection's peer."""
    if sock.family == socket.AF_UNIX:
        return "unix"
    host, port = sock.getpeername()[:2]
    return f"tcp:{host}:{port}"


def _unscheduled(wait: Callable[..., object], *args: object) -> None:
    """``wait(*args)`` with the calling lwp's CPU released (a no-op outside a CPU)."""
    hooks.unschedule()
    try:
        wait(*args)
    finally:
        hooks.schedule()


class Listener:
    """A listening socket; ``close`` also removes a unix socket's file."""

    def __init__(self, sock: socket.socket, path: str | None, url: str) -> None:
        self.sock = sock
        self.path = path
        self.url = url

    def accept(self) -> Conn:
        """The next connection; OSError once the listener is closed."""
        sock, _ = self.sock.accept()
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Conn(sock, _peer_of(sock))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def listen(url: str, mode: int = 0o600, any_address: bool = False) -> Listener:
    """Listen at ``url``.  A unix socket's file gets ``mode`` (a stale one left by a
    dead server is replaced; EADDRINUSE if a server answers there); a TCP address
    must be loopback unless ``any_address``."""
    family, address = parse_url(url)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            assert isinstance(address, str)
            path = os.path.abspath(address)
            _remove_stale(path)
            old = os.umask(0o777 & ~mode)  # the file is born with the mode: no window
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            os.chmod(path, mode)
        else:
            assert isinstance(address, tuple)
            if not any_address and not is_loopback(address[0]):
                raise PermissionError(
                    errno.EACCES, f"{url}: not a loopback address (listening on others is opt-in)"
                )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            path = None
        sock.listen(256)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, path, url)


def _remove_stale(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # nobody listens: a dead server's
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: a server is listening there")


def unlink_sockets(paths: list[str]) -> None:
    """Remove socket files a server left (its host died)."""
    for path in paths:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)


def connect(url: str, timeout: float | None = None) -> Conn:
    """A connection to the server at ``url``."""
    family, address = parse_url(url)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.settimeout(None)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return Conn(sock, url)


def adopt(fd: int, url: str) -> Conn:
    """The connection at descriptor ``fd``, left by the program that exec'd this one."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return Conn(sock, url)


class Channel:
    """How the host hands connections to one CPU process: a socket pair made before
    the CPU is forked, its descriptors passed with SCM_RIGHTS, each with a short
    message saying whose it is.  Only the host and that CPU hold its ends."""

    MAX_MESSAGE = 256

    def __init__(self, cpu_end: socket.socket | None = None) -> None:
        self._host: socket.socket | None = None  # (the CPU's half has no host end)
        if cpu_end is None:
            self._host, cpu_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._cpu = cpu_end
        self._cpu.setblocking(False)
        self._taken: weakref.WeakSet[Conn] = weakref.WeakSet()

    @classmethod
    def in_cpu(cls, fd: int) -> Channel:
        """In a CPU process: its end of the channel, from the descriptor passed to it."""
        return cls(socket.socket(fileno=fd))

    def cpu_fd(self) -> int:
        """The CPU's end, to pass to the CPU process as it is started."""
        return self._cpu.fileno()

    def hand_over(self, conn: Conn, message: bytes) -> None:
        """Send ``conn``'s descriptor and ``message`` to the CPU (this process's
        descriptor stays open: ``conn.close()`` it once handed over)."""
        socket.send_fds(self._host, [message], [conn.sock.fileno()])  # type: ignore[arg-type]

    def forked(self) -> None:
        """In the host, once the CPU is forked: its end is the CPU's alone."""
        self._cpu.close()

    def tell(self, message: bytes) -> None:
        """Send ``message`` alone."""
        self._host.send(message)  # type: ignore[union-attr]

    def take(self) -> list[tuple[Conn | None, bytes]]:
        """In the CPU: what the host has sent since the last call, in order, without
        waiting: (the connection handed over or None, the message)."""
        out: list[tuple[Conn | None, bytes]] = []
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self._cpu, self.MAX_MESSAGE, 1)
            except OSError:  # nothing more (BlockingIOError), or the host's end is gone
                return out
            if not message and not fds:
                return out  # the host's end is closed
            conn = None
            if fds:
                sock = socket.socket(fileno=fds[0])
                conn = Conn(sock, _peer_of(sock))
                self._taken.add(conn)
            out.append((conn, message))

    def hang_up(self) -> None:
        """In the CPU: end every connection taken from this channel (the host died)."""
        for conn in list(self._taken):
            conn.shutdown()

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        self._cpu.close()
