"""Remote clients served inside the CPUs (rumpuser_sp.c's server loop, run by lwps of
the clients' own processes).

The host accepts a connection, answers its handshake (which makes the client's
process) and hands the connection to a CPU over that CPU's channel
(``hypercalls.sp.Channel``).  From then on the host is out of the way:

- each CPU runs a *receiver*, a kernel thread started with the kernel's first
  server: it takes the connections handed to it and starts the first lwp of each,
  in the client's process and bound to this CPU; it sends the signals raised for
  its clients (RAISE); at a halt, or when their server closes, it ends their
  connections;
- a connection's lwp reads a frame and runs it itself: a system call goes straight
  to ``rump_syscall`` and its answer straight back to the socket.  While it runs a
  call nobody reads, so if the call blocks (sleeps, waits for a lock), the
  scheduler says so (``onproc.on_block``) and another lwp of the connection takes
  over reading: an idle one, or one the receiver makes.  A client's threads may so
  have up to ``max_inflight`` calls in flight, each in an lwp of its process;
- a connection's state (``_Conn``) is this CPU process's own: only lwps holding
  this CPU touch it, one at a time, so it needs no lock.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from hypercalls import clock, sp, thread
from hypercalls.sync import Shutdown
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena, onproc
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.sched import kthread, scheduler
from rumpmp.rumpkern.syscall import sysent
from rumpmp.sp import spkern, wire
from rumpmp.sys.cpu import CI_SPCONNS, CI_SPSLOT, cpu_word
from rumpmp.sys.lwp import L_PARK, LW_SYSTEM
from rumpmp.sys.param import PRI_KTHREAD, PRI_USER
from rumpmp.sys.proc import P_SPRAISE
from rumpmp.sys.sp import CLOSE, HANDOVER
from rumpmp.sys.syscall import FILLS

#: How long an idle lwp of a connection waits to be needed before it ends.
LINGER = 5.0
#: How often a receiver looks at the kernel's state when nothing wakes it.
POLL = 1.0


@dataclass(eq=False)
class _Idle:
    """An lwp of a connection waiting, parked, to be needed as its reader."""

    slot: int
    go: bool = False


@dataclass(eq=False)
class _Conn:
    """One client's connection, served on this CPU."""

    arena: Arena
    conn: sp.Conn
    pid: int
    server: int
    max_inflight: int  # calls at once (more: EAGAIN)
    max_memory: int  # bytes of requests at once (more: ENOMEM)
    cookie_lifetime: int  # ns a fork cookie waits for its FORK handshake
    proc: int = 0  # its process's record (a word index)
    reading: bool = False  # an lwp reads (or waits to read) the next frame
    closed: bool = False
    inflight: int = 0
    held: int = 0
    lwps: int = 0  # made for it and not ended
    idle: list[_Idle] = field(default_factory=list)
    wanted: bool = False  # a reader is needed and none is idle: the receiver makes one

    def pass_reading(self) -> None:
        """The call this lwp runs blocks: let another lwp read meanwhile (the
        scheduler's ``on_block``: holding the CPU still, so it only posts)."""
        if self.closed or self.reading:
            return
        if self.idle:
            idle = self.idle.pop()
            idle.go = True
            self.arena.pool.unpark(idle.slot)
        elif self.lwps <= self.max_inflight:  # at most a reader and the calls in flight
            self.wanted = True
            self.arena.pool.unpark(receiver_slot(self.arena, _arena.here.cpu))

    def hang_up(self) -> None:
        """End the connection: its process's sleeping calls are interrupted, its
        idle lwps end, and each other lwp once its call returns."""
        if self.closed:
            return
        self.closed = True
        self.conn.shutdown()
        spkern.client_gone(self.pid)
        for idle in self.idle:
            self.arena.pool.unpark(idle.slot)

    def send(self, parts: list[wire.Part]) -> None:
        try:
            self.conn.send(parts)
        except OSError:
            self.hang_up()  # the client went

    def error(self, reqno: int, ftype: int, err: int, message: str, kind: str = "os") -> None:
        body = wire.encode((kind, message[:200]))
        self.send(wire.frame(wire.ERROR, ftype, reqno, err, body))


#: This CPU's connections, by their client's pid.
_conns: dict[int, _Conn] = {}


def receiver_slot(arena: Arena, cpu: int) -> int:
    """The park slot of ``cpu``'s receiver: post it after telling the CPU something."""
    return arena.w[cpu_word(arena, cpu) + CI_SPSLOT]


# -- the receiver -------------------------------------------------------------------------


def start_receivers() -> None:
    """Start every CPU's receiver, once per kernel (the first server does)."""
    arena = _arena.current()
    t = tables(arena)
    t.lock.enter_nowrap()
    started, arena.w[_arena.H_SPSERVING] = arena.w[_arena.H_SPSERVING], 1
    t.lock.exit()
    if started:
        return
    for cpu in range(arena.ncpu):
        arena.w[cpu_word(arena, cpu) + CI_SPSLOT] = arena.pool.alloc(0)
        kthread.lwp_create(arena, "spserver", _receive, (), PRI_KTHREAD, cpu, LW_SYSTEM)


def _receive() -> None:
    """Body of a CPU's receiver."""
    arena = _arena.current()
    cpu, channel = _arena.here.cpu, _arena.here.channel
    assert channel is not None
    slot = receiver_slot(arena, cpu)
    try:
        while arena.state == _arena.RUNNING:
            for conn, message in channel.take():
                if conn is None:
                    (server,) = CLOSE.unpack(message)
                    for c in list(_conns.values()):
                        if c.server == server:
                            c.hang_up()
                else:
                    _adopt(arena, cpu, conn, message)
            for c in list(_conns.values()):
                _tend(arena, cpu, c)
            arena.pool.park(slot, POLL)
    except Shutdown:
        pass
    for c in list(_conns.values()):  # the kernel stops: its clients see their end
        c.conn.shutdown()


def _adopt(arena: Arena, cpu: int, conn: sp.Conn, message: bytes) -> None:
    """Serve a connection handed over: its first lwp, in its process (which the
    host kept with an lwp context until now)."""
    pid, holder, server, *limits = HANDOVER.unpack(message)
    c = _Conn(arena, conn, pid, server, *limits)
    _conns[pid] = c
    try:
        c.proc = tables(arena).find_proc(pid)
        raised = spkern.served_by(arena, pid, cpu)
        _new_lwp(arena, cpu, c)
    except OSError:  # no lwp to be had (or no process): the connection ends
        del _conns[pid]
        conn.close()
        return
    finally:
        sysent.end_process(holder)
    arena.w[cpu_word(arena, cpu) + CI_SPCONNS] += 1
    _raise(c, raised)


def _tend(arena: Arena, cpu: int, c: _Conn) -> None:
    """What a connection needs of its receiver: a new lwp, its signals sent."""
    if c.closed:
        return
    if c.wanted:
        c.wanted = False
        with contextlib.suppress(OSError):  # the lwp table is full: frames wait for a call
            _new_lwp(arena, cpu, c)
    if arena.w[c.proc + P_SPRAISE]:  # looked at first without proc_lock
        _raise(c, spkern.take_raised(arena, c.pid))


def _raise(c: _Conn, signals: list[int]) -> None:
    for sig in signals:  # rumpuser_sp_raise
        c.send(wire.frame(wire.REQ, wire.RAISE, 0, sig))


def _new_lwp(arena: Arena, cpu: int, c: _Conn) -> None:
    kthread.lwp_create(arena, "spclient", serve, (c.pid,), PRI_USER, cpu, 0, pid=c.pid)
    c.lwps += 1


# -- a connection's lwps ----------------------------------------------------------------


def serve(pid: int) -> None:
    """Body of an lwp of a client's connection (in the client's process, bound to
    the connection's CPU): read a frame and run it, or wait while another lwp
    reads, until the connection ends."""
    arena = _arena.current()
    c = _conns[pid]
    me = _Idle(arena.w[tables(arena).lwp(thread.curlwp()) + L_PARK])
    wanted = scheduler.wanted_by_others(arena, _arena.here.cpu)
    try:
        while not c.closed:
            if c.reading:
                if not _wait_turn(c, me):
                    break
                continue
            c.reading = True
            try:
                frame = _read_frame(c.conn, wanted)
            except (EOFError, OSError, wire.WireError):
                c.hang_up()  # the client went, or sent something malformed
                break
            finally:
                c.reading = False
            try:
                _run(c, *frame)
            except (wire.WireError, OSError):
                c.hang_up()  # a malformed request costs the client its connection
            except BaseException:
                c.hang_up()  # this lwp ends, saying why in dmesg: nobody would read
                raise
    finally:
        c.lwps -= 1
        if c.closed and not c.lwps:  # the last one out: the process ends with it
            _conns.pop(pid, None)
            spkern.drop_cookies(arena, pid)
            arena.w[cpu_word(arena, _arena.here.cpu) + CI_SPCONNS] -= 1
            c.conn.close()


def _wait_turn(c: _Conn, me: _Idle) -> bool:
    """Wait, idle, until the connection needs this lwp to read; False if it ends,
    or nobody needed this lwp for LINGER seconds (it ends then)."""
    me.go = False
    c.idle.append(me)
    deadline = clock.monotonic_ns() + int(LINGER * 1e9)
    while not (me.go or c.closed):
        left = (deadline - clock.monotonic_ns()) / 1e9
        if left <= 0:
            c.idle.remove(me)
            return False
        c.arena.pool.park(me.slot, left)
    if not me.go:
        c.idle.remove(me)
    return not c.closed


def _read_frame(conn: sp.Conn, wanted: Callable[[], bool]) -> tuple[int, int, int, int, bytearray]:
    """The next frame: checked for a moment holding the CPU (the next call of a loop
    comes soon), then waited for with the CPU released."""
    thread.spin_until(lambda: conn.readable() or wanted())
    return wire.read_frame(conn)


def _run(c: _Conn, reqno: int, cls: int, ftype: int, union: int, body: bytearray) -> None:
    """Answer one frame of the client's."""
    if cls != wire.REQ:
        raise wire.WireError("a client sends requests only")
    if ftype == wire.SYSCALL:
        _syscall(c, reqno, union, body)
    elif ftype == wire.PREFORK:
        cancel = wire.decode(body) if body else None  # None: a new cookie
        try:
            if cancel is None:
                answer: bytes | bool = spkern.new_cookie(c.pid, c.cookie_lifetime)
            else:  # fork_cancel, of one of this client's cookies
                answer = spkern.cancel_cookie(c.pid, cancel)
        except OSError as e:
            c.error(reqno, wire.PREFORK, e.errno or errno.EIO, str(e))
            return
        c.send(wire.frame(wire.RESP, wire.PREFORK, reqno, 0, wire.encode(answer)))
    elif ftype == wire.HANDSHAKE and union == wire.HANDSHAKE_EXEC:
        name = wire.decode(body)
        if not isinstance(name, str):
            raise wire.WireError("an EXEC handshake names the new program")
        spkern.client_exec(f"{c.conn.address()} {name}"[:63])
        c.send(wire.frame(wire.RESP, wire.HANDSHAKE, reqno, 0, wire.encode(None)))
    else:
        raise wire.WireError(f"unexpected {wire.TYPE_NAMES[ftype]} request")


def _syscall(c: _Conn, reqno: int, num: int, body: bytearray) -> None:
    if c.inflight >= c.max_inflight:
        c.error(reqno, wire.SYSCALL, errno.EAGAIN, "over this client's limit")
        return
    if c.held + len(body) > c.max_memory:
        c.error(reqno, wire.SYSCALL, errno.ENOMEM, "over this client's limit")
        return
    c.inflight += 1
    c.held += len(body)
    onproc.on_block = c.pass_reading
    try:
        ok, value = entry.call(_call, num, body)
    finally:
        onproc.on_block = None
        c.inflight -= 1
        c.held -= len(body)
    if c.arena.w[c.proc + P_SPRAISE]:  # it signalled its own process: RAISE comes first
        _raise(c, spkern.take_raised(c.arena, c.pid))
    if ok:
        c.send(wire.frame(wire.RESP, wire.SYSCALL, reqno, 0, value))  # type: ignore[arg-type]
    elif isinstance(value, TypeError):  # an argument of the wrong type: TypeError there
        c.error(reqno, wire.SYSCALL, errno.EINVAL, str(value), "type")
    elif isinstance(value, OSError):
        c.error(reqno, wire.SYSCALL, value.errno or errno.EIO, value.strerror or str(value))
    else:  # whatever else kernel code raised: the call fails, the kernel stays up
        c.error(reqno, wire.SYSCALL, errno.EIO, f"{type(value).__name__}: {value}")


def _call(num: int, body: bytearray) -> list[wire.Part]:
    """Run system call ``num`` with the arguments in ``body``; its encoded result."""
    try:
        args = wire.decode(body)
    except wire.WireError as e:
        raise OSError(errno.EINVAL, f"malformed arguments: {e}") from None
    entry_ = sysent.lookup(num)
    if not isinstance(args, tuple):
        raise OSError(errno.EINVAL, "arguments must be a tuple")
    fills = FILLS.get(num)
    if fills is not None and fills < len(args):  # the client sent the buffers' sizes
        args = (*args[:fills], _buffers(args[fills]), *args[fills + 1 :])
    sysent.check_args(entry_, args)
    result = sysent.serve(num, args)
    try:
        return wire.encode_parts(result)
    except TypeError as e:  # not the client's fault
        raise OSError(errno.EIO, str(e)) from None


def _buffers(sizes: object) -> list[bytearray]:
    """Buffers of the sizes a client sent for a call to fill (readv)."""
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes
    ):
        raise OSError(errno.EINVAL, "a call's buffers travel as a list of their sizes")
    if sum(sizes) > wire.MAX_FRAME // 2:
        raise OSError(errno.EINVAL, "buffers too large for one frame")
    return [bytearray(n) for n in sizes]
