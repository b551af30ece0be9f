"""The client library (rumpclient(3)): a running kernel's system calls from another
program, over the sysproxy protocol (``rumpmp.sp.wire``).  It boots nothing and
needs no kernel in this process.

::

    from rumpmp import rumpclient

    c = rumpclient.connect("unix:///tmp/kern")  # or $RUMP_SERVER
    print(c.sys.getpid(), c.sysctl("kern.hostname"))

``c.sys.<name>(...)`` are the calls ``Kernel.sys`` has, with the same arguments,
results and errors (OSError with the errno, TypeError naming a parameter); a
connection is safe to share between threads, whose calls run in parallel in the
client's one rump process.  ``prefork``/``fork_init``/``fork_cancel``/``fork`` and
``exec`` carry the rump process across ``os.fork`` and ``os.execve`` as
rumpclient(3) does; ``setconnretry`` says what happens when the server goes.
"""

from __future__ import annotations

import _signal
import contextlib
import errno
import itertools
import os
import select
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypercalls import sp, thread
from rumpmp.sp import wire
from rumpmp.sys import syscall as N
from rumpmp.sys.sysctl import typed

RETRYCONN_INFTIME, RETRYCONN_ONCE, RETRYCONN_DIE = -1, -2, -3
_CORES = os.cpu_count() or 1
#: The threads of this process waiting for a reply, of any connection.
_waiting: set[int] = set()


def _worth_spinning() -> bool:
    """Whether waiting for a reply may spin: not on a machine of one core, nor while
    another thread of this process waits too (a spinner takes its GIL)."""
    return _CORES > 1 and len(_waiting) == 1


#: Where ``exec`` leaves the connection for the program it starts.
EXEC_ENV = "RUMPMP_CLIENT_EXECFD"
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ForkHandle:
    """What ``prefork`` returns: the server's cookie for the child's connection."""

    url: str
    cookie: bytes
    secret: bytes | None


def _read_secret(token_file: str | None) -> bytes | None:
    path = token_file or os.environ.get("RUMP_TOKEN_FILE")
    if not path:
        return None
    with open(path, "rb") as f:
        secret = f.readline().strip()
    if not secret:
        raise ValueError(f"{path}: the first line must hold the token")
    return secret


class _Waiter:
    """A caller waiting for its reply.  ``done`` is released when the reply has come,
    or when the caller is to read for everyone (the reader before it has finished);
    a lock released, not an Event set, because a signal handler interrupting the
    releasing thread could be holding an Event's lock."""

    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.reply: tuple[int, int, bytearray | memoryview] | None = None  # class, union, body

    def wake(self) -> None:
        """Have the caller look again (at its reply, or whether to read)."""
        try:  # noqa: SIM105 - a hot path: no suppress() object
            self.done.release()
        except RuntimeError:  # released already: it will look
            pass


class Client:
    """A connection to a rump kernel's sysproxy server, and the rump process it is."""

    def __init__(
        self,
        url: str,
        secret: bytes | None,
        fork: ForkHandle | None = None,
        exec_fd: int | None = None,
    ) -> None:
        self.url = url
        self._secret = secret
        self._reqno = itertools.count(1)
        self._lock = threading.RLock()  # a signal handler's call may come in under it
        self._waiters: dict[int, _Waiter] = {}
        self._reader: int | None = None  # the thread reading replies for everyone
        # A call from a signal's handler that read the main thread's reply says so
        # here: the main thread's wait for bytes to read then ends.
        self._noted, self._note = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, _close_fds, self._noted, self._note)
        self._retry: float = 0.0
        self._reconnecting = threading.RLock()  # (a handler's call may reconnect too)
        self._conn: sp.Conn | None = None
        self.pid = self.uid = self.gid = -1
        self.sys = _Syscalls(self)
        if exec_fd is None:
            self._connect(fork)
        else:
            self._resume(exec_fd)

    # -- connecting ---------------------------------------------------------------------

    def _connect(self, fork: ForkHandle | None = None) -> None:
        try:
            conn = sp.connect(self.url, CONNECT_TIMEOUT)
        except OSError as e:
            raise OSError(e.errno, f"cannot connect to {self.url}: {e.strerror or e}") from None
        try:
            _, _, self.system, nonce = wire.parse_banner(conn.recv_line(wire.MAX_BANNER))
            kind = wire.HANDSHAKE_FORK if fork else wire.HANDSHAKE_GUEST
            what: object = fork.cookie if fork else _program()
            answer = wire.proof(self._secret, nonce, kind) if self._secret else None
            conn.send(wire.frame(wire.REQ, wire.HANDSHAKE, 0, kind, wire.encode((what, answer))))
            cls, union, body = _read_reply(conn)
        except ValueError as e:  # a WireError, or a banner line that never ends
            conn.close()
            raise OSError(errno.EPROTO, f"{self.url}: not a rumpmp server? {e}") from None
        except EOFError as e:
            conn.close()
            raise OSError(errno.ECONNRESET, f"{self.url}: the server hung up: {e}") from None
        except BaseException:
            conn.close()
            raise
        self._adopt(conn, cls, union, body)

    def _resume(self, fd: int) -> None:
        """After ``exec``: take over the connection the old program left at ``fd``
        (EXEC handshake: the server keeps the process, closing FD_CLOEXEC files)."""
        conn = sp.adopt(fd, self.url)
        try:
            conn.send(
                wire.frame(
                    wire.REQ, wire.HANDSHAKE, 0, wire.HANDSHAKE_EXEC, wire.encode(_program())
                )
            )
            cls, union, body = _read_reply(conn)
        except BaseException:
            conn.close()
            raise
        self._adopt(conn, cls, union, body)

    def _adopt(self, conn: sp.Conn, cls: int, union: int, body: bytearray) -> None:
        if cls == wire.ERROR:
            conn.close()
            _, message = wire.decode(body)
            raise OSError(union, f"{self.url}: {message}")
        ids = wire.decode(body)
        if ids is not None:  # an EXEC handshake keeps the ids it had
            self.pid, self.uid, self.gid = ids
        self._conn = conn
        self._poller = self._new_poller(conn)

    # -- replies ------------------------------------------------------------------------
    #
    # There is no reader thread: a caller whose reply has not come reads the replies
    # itself, for everyone, if nobody else does; else it waits to be given its reply
    # or the reading.  A caller with no other call in flight so reads its own reply,
    # with no thread in between.  In the main thread a frame is read with signals
    # held: a handler runs between frames, never inside one, and a call it makes
    # reads the replies itself (the role is its thread's already).

    def _await(self, conn: sp.Conn, reqno: int, waiter: _Waiter) -> tuple[int, int, Any] | None:
        """(class, union, the decoded body) of the reply to request ``reqno``; None
        if the connection went first."""
        me = threading.get_ident()
        _waiting.add(me)
        try:
            while waiter.reply is None and self._conn is conn:
                with self._lock:
                    outer = self._reader
                    if outer is None:
                        self._reader = me
                if outer not in (None, me):
                    waiter.done.acquire()  # the reply, or the reading, is ours
                    continue
                try:
                    self._read_until(conn, waiter, nested=outer == me)
                finally:
                    if outer is None:
                        self._pass_reading()
        finally:
            _waiting.discard(me)
            if waiter.reply is None:  # (a reply is taken off the table as it comes)
                with self._lock:
                    self._waiters.pop(reqno, None)
        if waiter.reply is None:  # the connection went during the call
            return None
        cls, union, body = waiter.reply
        try:
            return cls, union, wire.decode(body)
        finally:
            _give_back(body)

    def _new_poller(self, conn: sp.Conn) -> select.poll:
        """A wait for a reply to read, or a note from a handler's call."""
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        poller.register(self._noted, select.POLLIN)
        return poller

    def _read_until(self, conn: sp.Conn, waiter: _Waiter, nested: bool) -> None:
        """Read and route replies until ``waiter``'s has come or the server has gone."""
        main = threading.get_ident() == threading.main_thread().ident
        poller = self._new_poller(conn) if nested else self._poller  # one poll() at a time
        try:
            while waiter.reply is None:
                # A reply soon to come is looked for a moment before the wait, the
                # core yielded between looks: a wake-up across host cores costs more
                # than most calls.
                thread.spin_until(conn.readable, worth_it=_worth_spinning)
                if not main:
                    self._route(waiter, *_read_frame(conn))
                    continue
                for fd, _ in poller.poll():  # a signal's handler may run (and call) here
                    if fd == self._noted:
                        os.read(self._noted, 64)
                with _signals_held():
                    if waiter.reply is None and conn.readable():
                        self._route(waiter, *_read_frame(conn))
        except (EOFError, OSError, wire.WireError):
            self._hung_up(conn)
        if nested:  # a handler's call: the call it interrupted may have its reply now
            os.write(self._note, b"!")

    def _route(
        self,
        mine: _Waiter,
        reqno: int,
        cls: int,
        ftype: int,
        union: int,
        body: bytearray | memoryview,
    ) -> None:
        if cls == wire.REQ and ftype == wire.RAISE:
            # rumpclient raises the signal in itself: in the main thread, where a
            # handler runs and a wait is interrupted, whichever thread reads
            signal.pthread_kill(threading.main_thread().ident or 0, union)
            return
        with self._lock:
            waiter = self._waiters.pop(reqno, None)
        if waiter is not None:
            if waiter is not mine and isinstance(body, memoryview):
                body, view = bytearray(body), body  # its own thread decodes it, later
                _give_back(view)
            waiter.reply = (cls, union, body)
            waiter.wake()

    def _pass_reading(self) -> None:
        """This thread stops reading: another caller still waiting takes over."""
        with self._lock:
            self._reader = None
            if not self._waiters:
                return
            waiting = next((w for w in self._waiters.values() if w.reply is None), None)
        if waiting is not None:
            waiting.wake()

    def _hung_up(self, conn: sp.Conn) -> None:
        """``conn`` has broken: it is closed, and every call waiting on it wakes (to be
        sent again on a new connection, or to fail with ENOTCONN)."""
        with self._lock:
            gone = self._conn is conn
            if gone:
                self._conn = None
            waiters = list(self._waiters.values())
        if gone:
            conn.close()  # (a thread still reading it wakes to its end)
        for waiter in waiters:
            waiter.wake()

    def setconnretry(self, policy: float) -> None:
        """rumpclient_setconnretry(3): when the server has gone, a call reconnects
        for up to ``policy`` seconds, forever (RETRYCONN_INFTIME), once
        (RETRYCONN_ONCE), or the program exits (RETRYCONN_DIE).  By default (0) it
        fails with ENOTCONN.  A reconnection is a new rump process, and a call whose
        reply had not come is sent again (so it may run twice, as in rump)."""
        if policy not in (RETRYCONN_INFTIME, RETRYCONN_ONCE, RETRYCONN_DIE) and policy < 0:
            raise ValueError(f"setconnretry: bad policy {policy!r}")
        self._retry = policy

    def _connection(self) -> sp.Conn:
        conn = self._conn
        if conn is not None:
            return conn
        if self._retry == RETRYCONN_DIE:
            os._exit(1)
        if not self._retry:
            raise OSError(errno.ENOTCONN, f"{self.url}: not connected to the server")
        with self._reconnecting:  # one thread reconnects; the others take its connection
            return self._conn or self._reconnect()

    def _reconnect(self) -> sp.Conn:
        deadline = None if self._retry == RETRYCONN_INFTIME else time.monotonic() + self._retry
        while True:
            try:
                self._connect()
                assert self._conn is not None
                return self._conn
            except OSError:
                if self._retry == RETRYCONN_ONCE or (
                    deadline is not None and time.monotonic() > deadline
                ):
                    raise OSError(errno.ENOTCONN, f"{self.url}: cannot reconnect") from None
                time.sleep(0.1)  # a retry interval, as rumpclient's

    # -- calls ------------------------------------------------------------------------------

    def _request(self, ftype: int, union: int, payload: Any) -> tuple[int, int, Any]:
        """Send a request; (class, union, the decoded body) of its reply.  A request
        whose connection breaks before its reply has come is sent again on a new
        connection when the retry policy allows, as rumpclient's syscall_req does."""
        data = wire.encode(payload)
        while True:
            conn = self._connection()
            waiter = _Waiter()
            # A signal handler may make calls too (h_sigcli): signals wait while this
            # thread holds the locks, or a handler's frame could land inside this one's.
            with _signals_held():
                reqno = next(self._reqno)
                with self._lock:
                    self._waiters[reqno] = waiter
                try:
                    conn.send(wire.frame(wire.REQ, ftype, reqno, union, data))
                    sent = True
                except OSError:
                    with self._lock:
                        self._waiters.pop(reqno, None)
                    sent = False
            reply = self._await(conn, reqno, waiter) if sent else None
            if reply is not None:
                return reply
            self._hung_up(conn)
            if not self._retry:
                raise OSError(errno.ENOTCONN, f"{self.url}: the connection to the server went")

    def syscall(self, num: int, args: tuple[Any, ...]) -> Any:
        """System call ``num`` with ``args`` in the server's kernel."""
        fills = N.FILLS.get(num)
        sent = tuple(args)
        if fills is not None and fills < len(args):  # buffers to fill travel as sizes
            sent = (*args[:fills], [len(memoryview(b).cast("B")) for b in args[fills]])
            sent += tuple(args[fills + 1 :])
        cls, union, value = self._request(wire.SYSCALL, num, sent)
        if cls == wire.ERROR:
            kind, message = value
            if kind == "type":
                raise TypeError(message)
            raise OSError(union, message)
        if fills is None:
            return value
        value, contents = value
        for buf, data in zip(args[fills], contents, strict=True):
            memoryview(buf).cast("B")[: len(data)] = data
        return value

    def sysctl(self, name: str | tuple[int, ...], value: object = None) -> object:
        """sysctl(3), as ``Kernel.sysctl``: the value of ``name``, set to ``value``
        when given (the old value is returned).  Struct nodes come as named tuples."""
        got = self.syscall(N.SYS___sysctl, (name, value))
        return typed(name, got) if isinstance(name, str) else got

    # -- fork and exec ------------------------------------------------------------------------

    def prefork(self) -> ForkHandle:
        """rumpclient_prefork(3): a cookie for the child's connection (call it
        before ``os.fork``)."""
        cls, union, value = self._request(wire.PREFORK, 0, None)  # None: a new cookie
        if cls == wire.ERROR:
            raise OSError(union, value[1])
        return ForkHandle(self.url, value, self._secret)

    def fork_cancel(self, handle: ForkHandle) -> None:
        """rumpclient_fork_cancel(3): the fork did not happen; the server drops the
        cookie (a ``fork_init`` with it then fails with ESRCH)."""
        cls, union, value = self._request(wire.PREFORK, 0, handle.cookie)
        if cls == wire.ERROR:
            raise OSError(union, value[1])

    def fork(self) -> tuple[int, Client]:
        """rumpclient_fork(3) and ``os.fork``: (0, the child's client) in the child,
        (the child's pid, this client) in the parent."""
        handle = self.prefork()
        pid = os.fork()
        if pid == 0:
            return 0, fork_init(handle, inherited=self)
        return pid, self

    def exec(self, path: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """rumpclient_exec(3): ``os.execve`` keeping this rump process: the new
        program's ``connect()`` takes over the connection, and the server closes the
        process's FD_CLOEXEC descriptors."""
        conn = self._connection()
        fd = conn.sock.fileno()
        os.set_inheritable(fd, True)
        env = dict(os.environ if env is None else env)
        env[EXEC_ENV] = f"{fd} {self.url}"
        os.execve(path, argv, env)

    def close(self) -> None:
        """End the connection; the server lets the rump process go."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<rumpclient {self.url} pid {self.pid}>"


class _Syscalls:
    """The system calls as methods, by their names in ``rumpmp.sys.syscall``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        num = getattr(N, f"SYS_{name}", None)
        if not isinstance(num, int) or (name.startswith("_") and name != "__sysctl"):
            raise AttributeError(f"no system call {name!r}")
        client = self._client

        def call(*args: Any) -> Any:
            return client.syscall(num, args)

        call.__name__ = call.__qualname__ = name
        setattr(self, name, call)  # made once
        return call


#: The signals held back while the main thread sends: the standard ones (a handler
#: for a real-time signal is rare, and each signal held costs a little per call).
_HELD = frozenset(signal.valid_signals()) & set(range(1, signal.SIGRTMIN))
_HELD -= {signal.SIGKILL, signal.SIGSTOP}
#: signal.pthread_sigmask turns the old mask into enums, at ~40 us a call; the C
#: function it wraps returns plain ints (~1 us).
_sigmask = _signal.pthread_sigmask


class _signals_held:
    """Hold signals back from the main thread (where Python's handlers run) for a
    ``with`` block; other threads hold nothing."""

    __slots__ = ("old",)

    def __enter__(self) -> None:
        main = threading.get_ident() == threading.main_thread().ident
        self.old = _sigmask(signal.SIG_BLOCK, _HELD) if main else None

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            _sigmask(signal.SIG_SETMASK, self.old)


def _program() -> str:
    """This program's name, as ps shows it (a package run with -m by its name)."""
    path = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    if os.path.basename(path) == "__main__.py":
        return os.path.basename(os.path.dirname(path))
    return os.path.basename(path)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


#: Each thread's buffer for long replies, kept from one to the next: two megabyte
#: buffers made and dropped by every call cost the main thread a millisecond (glibc
#: gives them back to the system and faults them in again).  A reply's body is a
#: view of it until decoded; meanwhile the thread has none (a signal's handler that
#: reads in between gets a buffer of its own).
_long = threading.local()


def _read_frame(conn: sp.Conn) -> tuple[int, int, int, int, bytearray | memoryview]:
    """(request number, class, type, union, body) of the next frame.  A long body
    is a view of this thread's buffer, to be given back (``_give_back``)."""
    body_len, reqno, cls, ftype, union = wire.parse_header(conn.recv_exact(wire.HEADER_SIZE))
    if body_len < wire.BIG:
        return reqno, cls, ftype, union, conn.recv_exact(body_len)
    buf = _long.__dict__.pop("buf", None)
    if buf is None or len(buf) < body_len:
        buf = bytearray(body_len)
    body = memoryview(buf)[:body_len]
    conn.recv_into_exact(body)
    return reqno, cls, ftype, union, body


def _give_back(body: bytearray | memoryview) -> None:
    """A long body has been decoded: its buffer serves the thread's next one."""
    if isinstance(body, memoryview):
        _long.buf = body.obj


def _read_reply(conn: sp.Conn) -> tuple[int, int, bytearray]:
    _, cls, _, union, body = wire.read_frame(conn)
    return cls, union, body


def connect(url: str | None = None, token_file: str | None = None) -> Client:
    """rumpclient_init(3): a connection to the server at ``url`` (default
    $RUMP_SERVER), proving a token (``token_file`` or $RUMP_TOKEN_FILE) to a TCP
    server that wants one.  A program started by ``Client.exec`` takes over its
    parent's connection instead."""
    inherited = os.environ.pop(EXEC_ENV, None)
    if inherited:
        fd, _, exec_url = inherited.partition(" ")
        return Client(exec_url, _read_secret(token_file), exec_fd=int(fd))
    url = url or os.environ.get("RUMP_SERVER")
    if not url:
        raise OSError(errno.EINVAL, "no server: give a URL or set RUMP_SERVER")
    return Client(url, _read_secret(token_file))


def fork_init(handle: ForkHandle, inherited: Client | None = None) -> Client:
    """rumpclient_fork_init(3), in the child: its own connection, to a rump process
    with a copy of the parent's descriptors.  ``inherited``: the parent's client,
    whose connection the child lets go without ending it."""
    if inherited is not None and inherited._conn is not None:
        inherited._conn.release()  # the parent's connection: closed here, not ended
        inherited._conn = None
    return Client(handle.url, handle.secret, fork=handle)
