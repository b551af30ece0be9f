"""The sysproxy server (rumpuser_sp.c, rump_init_server): a kernel's system calls
for other programs, over unix and TCP sockets (protocol in ``rumpmp.sp.wire``).

It runs in the kernel's host process: a thread accepts connections, a thread per
connection reads its frames, and a pool of worker threads runs their system calls,
each as ``Kernel.run`` in the client's rump process, so calls from many clients
(and many threads of one client) run on the kernel's CPUs in parallel.

Each connection is a rump process: a child of initproc with a clean descriptor
table (GUEST), or a copy of another client's process made with a fork cookie
(FORK).  Safer than rump by default:

- a unix socket's file is mode 0600; TCP binds loopback unless ``listen_any``,
  which needs a token;
- a client runs with its own credentials, not root's: a unix-socket peer's uid and
  gid (SO_PEERCRED), over TCP an unprivileged uid (or what the token grants);
  ``root_clients`` gives every client root, as rump does;
- with a token, a TCP client proves it holds it by an HMAC of the banner's nonce
  (the token never crosses the wire; compared in constant time);
- fork cookies are 128 random bits, single use, and expire;
- per client: calls in flight, bytes of requests held, open descriptors.  A client
  over a limit gets an errno; a malformed frame costs it its connection.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import queue
import threading  # the server runs in the host: a thread per connection, worker threads
import time  # fork cookies expire
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hypercalls import param, rnd, sp, thread
from rumpmp.host import process
from rumpmp.host.process import Process
from rumpmp.rumpkern.arena import H_SPRAISE, Arena
from rumpmp.rumpkern.syscall import sysent
from rumpmp.sp import spkern, wire
from rumpmp.sys.proc import RUMP_RFCFDG, RUMP_RFFDG
from rumpmp.sys.syscall import FILLS


class Kernel(process.Kernel, Protocol):
    """What the server needs of its kernel: what a Process does, and the arena and
    sysctl (rumpmp.Kernel, named without importing it: its ``listen`` imports this)."""

    _arena: Arena

    def sysctl(self, name: str, value: object = None) -> object: ...


#: The uid and gid of a TCP client whose token grants nothing more (NetBSD's nobody).
NOBODY = 32767
INITPROC = 1
COOKIE_LIFETIME = 30.0  # seconds a fork cookie may wait for its FORK handshake


@dataclass(frozen=True)
class Token:
    """A shared secret, and the ids a TCP client that proves it holds it gets."""

    secret: bytes
    uid: int = NOBODY
    gid: int = NOBODY


def load_token(path: str) -> Token:
    """A token file: the secret on the first line; optionally ``uid=N gid=N`` on the
    second, the ids its holders get (by default nobody's)."""
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: the first line must hold the token")
    ids = {"uid": NOBODY, "gid": NOBODY}
    for word in lines[1].decode().split() if len(lines) > 1 else []:
        key, _, value = word.partition("=")
        if key not in ids or not value.isdigit():
            raise ValueError(f"{path}: expected 'uid=N gid=N' on the second line, not {word!r}")
        ids[key] = int(value)
    return Token(lines[0].strip(), ids["uid"], ids["gid"])


@dataclass
class Options:
    """The server's policy (rump_server's options, and rumpmp's safer defaults)."""

    mode: int = 0o600  # a unix socket file's mode
    listen_any: bool = False  # TCP on a non-loopback address (needs a token)
    token: Token | None = None  # TCP clients must prove they hold it
    root_clients: bool = False  # every client is root, as in rump
    max_clients: int = 256
    max_inflight: int = 32  # calls per client at once (more: EAGAIN)
    max_memory: int = 32 << 20  # bytes of requests per client at once (more: ENOMEM)
    max_files: int = 256  # a client process's RLIMIT_NOFILE
    workers: int = 128


@dataclass
class _Cookie:
    process: Process
    expires: float


@dataclass(eq=False)
class Client:
    """One connection and the rump process it speaks for."""

    server: Server
    conn: sp.Conn
    process: Process | None = None
    uid: int = 0
    gid: int = 0
    inflight: int = 0
    held: int = 0  # bytes of requests in flight
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    # -- the connection's thread ---------------------------------------------------------

    def run(self) -> None:
        try:
            self._handshake()
            while not self.closed:
                self._one_frame()
        except (EOFError, OSError, wire.WireError, ValueError):
            pass  # the peer went, or sent something malformed: the connection ends
        finally:
            self.server._drop(self)

    def _read_frame(self) -> tuple[int, int, int, int, bytearray]:
        body_len, reqno, cls, ftype, union = wire.parse_header(
            self.conn.recv_exact(wire.HEADER_SIZE)
        )
        return reqno, cls, ftype, union, self.conn.recv_exact(body_len)

    def _handshake(self) -> None:
        srv = self.server
        nonce = rnd.getrandom(wire.NONCE_BYTES)
        self.conn.send([wire.banner(*srv.system, nonce)])
        reqno, cls, ftype, kind, body = self._read_frame()
        if (cls, ftype) != (wire.REQ, wire.HANDSHAKE) or kind not in (
            wire.HANDSHAKE_GUEST,
            wire.HANDSHAKE_FORK,
        ):
            raise wire.WireError("the first frame must be a GUEST or FORK handshake")
        args = wire.decode(body)
        if not (isinstance(args, tuple) and len(args) == 2):
            raise wire.WireError("a handshake is (name or cookie, proof)")
        what, answer = args
        if not self._authenticated(nonce, kind, answer):
            self._error(reqno, wire.HANDSHAKE, errno.EACCES, "authentication failed")
            raise wire.WireError("authentication failed")
        try:
            self.process = self._make_process(kind, what)
            pid = self.process.run(
                spkern.client_setup,
                f"{self._address()} {what if isinstance(what, str) else 'fork'}"[:63],
                self.uid,
                self.gid,
                srv.options.max_files,
            )
        except OSError as e:
            self._error(reqno, wire.HANDSHAKE, e.errno or errno.EIO, str(e))
            raise
        srv._register(self, pid)
        self.conn.send(
            wire.frame(wire.RESP, wire.HANDSHAKE, reqno, 0, wire.encode((pid, self.uid, self.gid)))
        )

    def _address(self) -> str:
        """The client's address as ps shows it (a unix-socket peer by its pid)."""
        cred = self.conn.peer_cred()
        return f"unix:{cred[0]}" if cred else self.conn.peer

    def _authenticated(self, nonce: bytes, kind: int, answer: object) -> bool:
        token = self.server.options.token
        if token is None or self.conn.peer_cred() is not None:
            return True  # unix sockets: the file's mode and the peer's ids decide
        return isinstance(answer, bytes) and hmac.compare_digest(
            answer, wire.proof(token.secret, nonce, kind)
        )

    def _make_process(self, kind: int, what: object) -> Process:
        srv = self.server
        if kind == wire.HANDSHAKE_FORK:
            parent = srv._take_cookie(what)
            if parent is None:  # forged, used or expired: as rump answers, no such process
                raise ProcessLookupError(errno.ESRCH, "no such fork cookie")
            child = parent.fork(RUMP_RFFDG)
            self.uid, self.gid = srv._ids_of(parent)
            return child
        cred = self.conn.peer_cred()
        if srv.options.root_clients:
            self.uid = self.gid = 0
        elif cred is not None:
            _, self.uid, self.gid = cred
        else:
            token = srv.options.token
            self.uid, self.gid = (token.uid, token.gid) if token else (NOBODY, NOBODY)
        if not isinstance(what, str):
            raise wire.WireError("a GUEST handshake names the client's program")
        return Process(srv.kernel, RUMP_RFCFDG, INITPROC)

    def _one_frame(self) -> None:
        reqno, cls, ftype, union, body = self._read_frame()
        if cls != wire.REQ:
            raise wire.WireError("a client sends requests only")
        if ftype == wire.SYSCALL:
            self._syscall(reqno, union, body)
        elif ftype == wire.PREFORK:
            cancel = wire.decode(body) if body else None
            answer: bytes | bool
            if cancel is None:  # a new cookie
                answer = self.server._new_cookie(self)
            else:  # fork_cancel: the cookie is dropped (one of this client's only)
                answer = self.server._cancel_cookie(self, cancel)
            self.conn.send(wire.frame(wire.RESP, wire.PREFORK, reqno, 0, wire.encode(answer)))
        elif ftype == wire.HANDSHAKE and union == wire.HANDSHAKE_EXEC:
            name = wire.decode(body)
            if not isinstance(name, str):
                raise wire.WireError("an EXEC handshake names the new program")
            assert self.process is not None
            self.process.run(spkern.client_exec, f"{self._address()} {name}"[:63])
            self.conn.send(wire.frame(wire.RESP, wire.HANDSHAKE, reqno, 0, wire.encode(None)))
        else:
            raise wire.WireError(f"unexpected {wire.TYPE_NAMES[ftype]} request")

    def _syscall(self, reqno: int, num: int, body: bytearray) -> None:
        opts = self.server.options
        with self.lock:
            if self.inflight >= opts.max_inflight:
                busy = errno.EAGAIN
            elif self.held + len(body) > opts.max_memory:
                busy = errno.ENOMEM
            else:
                busy = 0
                self.inflight += 1
                self.held += len(body)
        if busy:
            self._error(reqno, wire.SYSCALL, busy, "over this client's limit")
            return
        self.server.pool.submit(self._serve, reqno, num, body)

    # -- a worker thread -----------------------------------------------------------------

    def _serve(self, reqno: int, num: int, body: bytearray) -> None:
        try:
            result = self._call(num, body)
        except TypeError as e:  # an argument of the wrong type: the client raises TypeError
            self._error(reqno, wire.SYSCALL, errno.EINVAL, str(e), "type")
        except OSError as e:
            self._error(reqno, wire.SYSCALL, e.errno or errno.EIO, e.strerror or str(e))
        except Exception as e:  # noqa: BLE001 - the kernel halting, a result that cannot travel
            self._error(reqno, wire.SYSCALL, errno.EIO, f"{type(e).__name__}: {e}")
        else:
            self._send(wire.frame(wire.RESP, wire.SYSCALL, reqno, 0, result))
        finally:
            with self.lock:
                self.inflight -= 1
                self.held -= len(body)

    def _call(self, num: int, body: bytearray) -> bytes:
        try:
            args = wire.decode(body)
        except wire.WireError as e:
            raise OSError(errno.EINVAL, f"malformed arguments: {e}") from None
        entry = sysent.SYSENT.get(num)
        if entry is None:
            raise OSError(errno.ENOSYS, f"no system call {num}")
        if not isinstance(args, tuple):
            raise OSError(errno.EINVAL, "arguments must be a tuple")
        fills = FILLS.get(num)
        if fills is not None and fills < len(args):  # the client sent the buffers' sizes
            args = (*args[:fills], _buffers(args[fills]), *args[fills + 1 :])
        sysent.check_args(entry, args)
        assert self.process is not None
        result = self.process._spawn(sysent.serve, num, args)  # a worker serves many clients
        try:
            return wire.encode(result)
        except TypeError as e:  # not the client's fault
            raise OSError(errno.EIO, str(e)) from None

    def _error(self, reqno: int, ftype: int, err: int, message: str, kind: str = "os") -> None:
        body = wire.encode((kind, message[:200]))
        self._send(wire.frame(wire.ERROR, ftype, reqno, err, body))

    def _send(self, data: list[bytes]) -> None:
        with contextlib.suppress(OSError):  # the client went: its connection is ending
            self.conn.send(data)

    def raise_signal(self, sig: int) -> None:
        """rumpuser_sp_raise: the client's process got ``sig``."""
        self._send(wire.frame(wire.REQ, wire.RAISE, 0, sig))


class _Workers:
    """The server's worker threads, started as calls need them (up to ``most``):
    a queue they share, without the per-call locking and futures of
    ThreadPoolExecutor, which cost the host a third of each call under load."""

    def __init__(self, most: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple] | None] = (
            queue.SimpleQueue()
        )
        self._most = most
        self._count = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        self._queue.put((fn, args))
        with self._lock:
            if self._idle:
                self._idle -= 1  # one that waits takes it
                return
            if self._count >= self._most:
                return  # queued for the first to finish
            self._count += 1
        threading.Thread(target=self._work, name="rumpsp-worker", daemon=True).start()

    def _work(self) -> None:
        thread.never_spin()
        while (item := self._queue.get()) is not None:
            fn, args = item
            fn(*args)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Each worker ends once it has finished the call it runs."""
        for _ in range(self._count):
            self._queue.put(None)


def _buffers(sizes: object) -> list[bytearray]:
    """Buffers of the sizes a client sent for a call to fill (readv)."""
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes
    ):
        raise OSError(errno.EINVAL, "a call's buffers travel as a list of their sizes")
    if sum(sizes) > wire.MAX_FRAME // 2:
        raise OSError(errno.EINVAL, "buffers too large for one frame")
    return [bytearray(n) for n in sizes]


class Server:
    """A kernel's sysproxy server at one URL; ``close`` (or the kernel's halt) ends
    it, its connections and their processes, and removes a unix socket's file."""

    def __init__(self, kernel: Kernel, url: str, options: Options | None = None) -> None:
        self.kernel = kernel
        self.options = options = options or Options()
        if options.listen_any and options.token is None:
            raise ValueError("listening on every address needs a token (--token-file)")
        self.listener = sp.listen(url, options.mode, options.listen_any)
        self.url = url
        self.system = (
            str(kernel.sysctl("kern.ostype")),
            str(kernel.sysctl("kern.osrelease")),
            param.machine(),
        )
        self.pool = _Workers(options.workers)
        self.clients: dict[int, Client] = {}  # by pid
        self._connections: set[Client] = set()
        self._cookies: dict[bytes, _Cookie] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._raise_slot = kernel._arena.pool.alloc(0)
        kernel._arena.w[H_SPRAISE] = self._raise_slot
        for target, name in (
            (self._accept_loop, "rumpsp-accept"),
            (self._raise_loop, "rumpsp-raise"),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn = self.listener.accept()
            except OSError:
                return  # closed
            client = Client(self, conn)
            with self._lock:
                full = len(self._connections) >= self.options.max_clients
                if not full:
                    self._connections.add(client)
            if full:
                conn.close()
                continue
            threading.Thread(target=client.run, name="rumpsp-client", daemon=True).start()

    def _raise_loop(self) -> None:
        arena = self.kernel._arena
        while not self._closed:
            try:
                arena.pool.park(self._raise_slot, 0.5, wrap=False)
                raised = spkern.take_raised(arena)
            except Exception:  # noqa: BLE001 - the kernel has gone: the server ends with it
                return
            for pid, sig in raised:
                client = self.clients.get(pid)
                if client is not None:
                    client.raise_signal(sig)

    def _register(self, client: Client, pid: int) -> None:
        with self._lock:
            self.clients[pid] = client

    def _drop(self, client: Client) -> None:
        """A connection ended: wake its process's sleepers, let the process go."""
        client.closed = True
        client.conn.close()
        with self._lock:
            self._connections.discard(client)
            for pid, c in list(self.clients.items()):
                if c is client:
                    del self.clients[pid]
            for cookie, held in list(self._cookies.items()):
                if held.process is client.process:
                    del self._cookies[cookie]
        if client.process is not None and self.kernel.state == "running":
            with contextlib.suppress(OSError, RuntimeError):
                client.process.run(spkern.client_gone)
                client.process.release()

    def _new_cookie(self, client: Client) -> bytes:
        cookie = rnd.getrandom(wire.COOKIE_BYTES)
        assert client.process is not None
        with self._lock:
            now = time.monotonic()
            for c, held in list(self._cookies.items()):
                if held.expires < now:
                    del self._cookies[c]
            self._cookies[cookie] = _Cookie(client.process, now + COOKIE_LIFETIME)
        return cookie

    def _cancel_cookie(self, client: Client, cookie: object) -> bool:
        """Drop ``client``'s fork cookie; whether it was there."""
        if not isinstance(cookie, bytes):
            return False
        with self._lock:
            for c, held in list(self._cookies.items()):
                if hmac.compare_digest(c, cookie) and held.process is client.process:
                    del self._cookies[c]
                    return True
        return False

    def _take_cookie(self, cookie: object) -> Process | None:
        """The process a fork cookie names, once (compared in constant time)."""
        if not isinstance(cookie, bytes) or len(cookie) != wire.COOKIE_BYTES:
            return None
        now = time.monotonic()
        with self._lock:
            found = None
            for c in list(self._cookies):
                if hmac.compare_digest(c, cookie):  # every cookie compared: no early exit
                    found = c
            held = self._cookies.pop(found) if found is not None else None
        if held is None or held.expires < now:
            return None
        return held.process

    def _ids_of(self, process: Process) -> tuple[int, int]:
        with self._lock:
            for c in self.clients.values():
                if c.process is process:
                    return c.uid, c.gid
        return NOBODY, NOBODY

    def close(self) -> None:
        """Stop listening, end every connection (their processes go), remove the
        socket file."""
        if self._closed:
            return
        self._closed = True
        self.listener.close()
        with self._lock:
            clients = list(self._connections)
        for client in clients:
            client.conn.shutdown()
        self.pool.shutdown()
        with contextlib.suppress(Exception):
            self.kernel._arena.pool.unpark(self._raise_slot)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
