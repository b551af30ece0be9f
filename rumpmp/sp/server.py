"""The sysproxy server (rumpuser_sp.c, rump_init_server): a kernel's system calls
for other programs, over unix and TCP sockets (protocol in ``rumpmp.sp.wire``).

This is its host side: a thread accepts connections and a short-lived thread per
connection answers its handshake, making its rump process, then hands the
connection to the CPU serving the fewest (``hypercalls.sp.Channel``).  The calls
themselves never pass through the host: an lwp of the client's process in that CPU
reads them and runs them (``rumpmp.sp.spserve``).

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
import itertools
import threading  # the server's host side: an accepting thread, a thread per handshake
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hypercalls import param, rnd, sp
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.syscall import sysent
from rumpmp.sp import spkern, spserve, wire
from rumpmp.sys.cpu import CI_SPCONNS, cpu_word
from rumpmp.sys.sp import CLOSE, HANDOVER


class Kernel(Protocol):
    """What the server needs of its kernel (rumpmp.Kernel, named without importing
    it: its ``listen`` imports this)."""

    _arena: Arena

    @property
    def _channels(self) -> list[sp.Channel]: ...

    def run(self, func: Callable[..., Any], *args: Any) -> Any: ...

    def sysctl(self, name: str, value: object = None) -> object: ...


#: The uid and gid of a TCP client whose token grants nothing more (NetBSD's nobody).
NOBODY = 32767


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
    cookie_lifetime: float = 30.0  # seconds a fork cookie waits for its FORK handshake


_numbers = itertools.count(1)  # each server's, so a CPU knows whose connections end


class Server:
    """A kernel's sysproxy server at one URL; ``close`` (or the kernel's halt) ends
    it, its connections and their processes, and removes a unix socket's file."""

    def __init__(self, kernel: Kernel, url: str, options: Options | None = None) -> None:
        self.kernel = kernel
        self.options = options = options or Options()
        if options.listen_any and options.token is None:
            raise ValueError("listening on every address needs a token (--token-file)")
        kernel.run(spserve.start_receivers)
        self.listener = sp.listen(url, options.mode, options.listen_any)
        self.url = url
        self.number = next(_numbers)
        self.system = (
            str(kernel.sysctl("kern.ostype")),
            str(kernel.sysctl("kern.osrelease")),
            param.machine(),
        )
        self._handed = [0] * kernel._arena.ncpu  # connections handed to each CPU
        self._welcoming: set[sp.Conn] = set()  # in their handshake
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, name="rumpsp-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn = self.listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                full = self._served() + len(self._welcoming) >= self.options.max_clients
                if not full:
                    self._welcoming.add(conn)
            if full:
                conn.close()
                continue
            threading.Thread(
                target=self._welcome, args=(conn,), name="rumpsp-handshake", daemon=True
            ).start()

    def _served(self) -> int:
        """Connections the CPUs serve."""
        arena = self.kernel._arena
        return sum(arena.w[cpu_word(arena, i) + CI_SPCONNS] for i in range(arena.ncpu))

    # -- a connection's handshake -----------------------------------------------------------

    def _welcome(self, conn: sp.Conn) -> None:
        """Answer a new connection's handshake and hand it to a CPU."""
        handed = False
        try:
            handed = self._hand_over(conn, *self._handshake(conn))
        except (EOFError, OSError, wire.WireError, ValueError):
            pass  # the peer went, sent something malformed, or the kernel stopped
        finally:
            with self._lock:
                self._welcoming.discard(conn)
            if handed:
                conn.release()  # the CPU has its own descriptor of it now
            else:
                conn.close()

    def _handshake(self, conn: sp.Conn) -> tuple[int, int]:
        """The client's process, made as its GUEST or FORK handshake asks: (its pid,
        the lwp context holding it)."""
        nonce = rnd.getrandom(wire.NONCE_BYTES)
        conn.send([wire.banner(*self.system, nonce)])
        reqno, cls, ftype, kind, body = wire.read_frame(conn)
        if (cls, ftype) != (wire.REQ, wire.HANDSHAKE) or kind not in (
            wire.HANDSHAKE_GUEST,
            wire.HANDSHAKE_FORK,
        ):
            raise wire.WireError("the first frame must be a GUEST or FORK handshake")
        args = wire.decode(body)
        if not (isinstance(args, tuple) and len(args) == 2):
            raise wire.WireError("a handshake is (name or cookie, proof)")
        what, answer = args
        if not self._authenticated(conn, nonce, kind, answer):
            _error(conn, reqno, errno.EACCES, "authentication failed")
            raise wire.WireError("authentication failed")
        if kind == wire.HANDSHAKE_GUEST and not isinstance(what, str):
            raise wire.WireError("a GUEST handshake names the client's program")
        fork = kind == wire.HANDSHAKE_FORK
        uid, gid = (None, None) if fork else self._ids(conn)  # a forked client keeps its own
        name = f"{conn.address()} {'fork' if fork else what}"[:63]
        try:
            pid, holder, uid, gid = self.kernel.run(
                spkern.new_client, what if fork else None, name, uid, gid, self.options.max_files
            )
        except OSError as e:
            _error(conn, reqno, e.errno or errno.EIO, str(e))
            raise
        try:
            conn.send(wire.frame(wire.RESP, wire.HANDSHAKE, reqno, 0, wire.encode((pid, uid, gid))))
        except OSError:
            self.kernel.run(sysent.end_process, holder)
            raise
        return pid, holder

    def _ids(self, conn: sp.Conn) -> tuple[int, int]:
        """The uid and gid a new client's process runs with."""
        cred = conn.peer_cred()
        if self.options.root_clients:
            return 0, 0
        if cred is not None:
            return cred[1], cred[2]
        token = self.options.token
        return (token.uid, token.gid) if token else (NOBODY, NOBODY)

    def _authenticated(self, conn: sp.Conn, nonce: bytes, kind: int, answer: object) -> bool:
        token = self.options.token
        if token is None or conn.peer_cred() is not None:
            return True  # unix sockets: the file's mode and the peer's ids decide
        return isinstance(answer, bytes) and hmac.compare_digest(
            answer, wire.proof(token.secret, nonce, kind)
        )

    def _hand_over(self, conn: sp.Conn, pid: int, holder: int) -> bool:
        """Give the connection to the CPU serving the fewest (then the one handed the
        fewest: connections handed at once spread before any is counted); whether it
        went (if not, its process goes with the lwp context that held it)."""
        arena = self.kernel._arena
        with self._lock:
            cpu = min(
                range(arena.ncpu),
                key=lambda i: (arena.w[cpu_word(arena, i) + CI_SPCONNS], self._handed[i]),
            )
            self._handed[cpu] += 1
        opts = self.options
        message = HANDOVER.pack(
            pid,
            holder,
            self.number,
            opts.max_inflight,
            opts.max_memory,
            int(opts.cookie_lifetime * 1e9),
        )
        try:
            self.kernel._channels[cpu].hand_over(conn, message)
        except OSError:  # the CPU has gone: the kernel is stopping
            with contextlib.suppress(Exception):
                self.kernel.run(sysent.end_process, holder)
            return False
        arena.pool.unpark(spserve.receiver_slot(arena, cpu))
        return True

    def close(self) -> None:
        """Stop listening, end every connection (their processes go), remove the
        socket file."""
        if self._closed:
            return
        self._closed = True
        self.listener.close()
        with self._lock:
            welcoming = list(self._welcoming)
        for conn in welcoming:
            conn.shutdown()
        arena = self.kernel._arena
        for cpu, channel in enumerate(self.kernel._channels):
            with contextlib.suppress(Exception):  # a CPU that has gone took its clients along
                channel.tell(CLOSE.pack(self.number))
                arena.pool.unpark(spserve.receiver_slot(arena, cpu))

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(conn: sp.Conn, reqno: int, err: int, message: str) -> None:
    """Refuse a handshake with ``err``."""
    body = wire.encode(("os", message[:200]))
    with contextlib.suppress(OSError):
        conn.send(wire.frame(wire.ERROR, wire.HANDSHAKE, reqno, err, body))
