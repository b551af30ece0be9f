"""The lwp each host thread keeps in each process it calls into: the host's side.

``Kernel.run``, ``Kernel.sys``, ``Process.run`` and ``Process.sys`` run their call in
the calling thread's lwp of that process (``rumpmp.rumpkern.sched.hostcall`` is the
lwp's side), as a rump host thread keeps its implicit lwp.  The lwp is made by the
thread's first call there, on the CPU the call asks for (one lwp per CPU asked for)
or where the kernel places it, and kept: a later call is its arguments written into
the lwp's record, one post there and one post back.  Functions are pickled once per
kernel and unpickled once per CPU process.

An lwp is retired, and ends once it has answered what it was asked, when its thread
ends, when its thread gives up waiting (a timeout, Ctrl-C: the call is detached and
the next call gets a fresh lwp), when its process is released (``release``), or
when a thread has more than ``PER_THREAD`` of them (the oldest goes).  A halt ends
them all.
"""

from __future__ import annotations

import threading  # the host side: each host thread has its own lwps
import weakref
from collections.abc import Callable

from hypercalls import param, sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem.blob import dumps, payload_put
from rumpmp.rumpkern.sched import hostcall, kthread
from rumpmp.rumpkern.sched.hostcall import Call
from rumpmp.sys.lwp import (
    IO_PAYLOAD_BYTES,
    L_ANSWERED,
    L_CALLS,
    L_PARK,
    L_RETIRE,
    L_STATE,
    LSZOMB,
    LW_HOSTCALL,
    LW_IMPLICIT,
    LW_WAITER,
)

#: How many lwps one host thread keeps in one kernel (in as many processes or CPUs).
PER_THREAD = 16

Poll = Callable[[], None] | None


class HostLwp:
    """One host thread's lwp in one process (on one CPU, if the calls ask for one)."""

    def __init__(self, arena: Arena, lid: int, reply: int) -> None:
        t = tables(arena)
        self.arena, self.lid, self.reply = arena, lid, reply  # reply: the thread's park slot
        self.l = t.lwp(lid)
        self.entry_word, self.result_word = t.entry(lid), t.result(lid)
        self.seq = 1  # the first call travels with the lwp's creation
        self.lock = threading.Lock()  # a call in progress; release() waits for it
        self.retired = False

    @classmethod
    def start(
        cls, arena: Arena, pid: int, cpu: int, call: Call, deadline: int | None, poll: Poll
    ) -> tuple[HostLwp, tuple[bool, object]]:
        """Make the calling thread's lwp in process ``pid`` (on ``cpu``, or where the
        kernel places it if -1) and run its first call."""
        flags = LW_WAITER | LW_IMPLICIT | LW_HOSTCALL
        reply = arena.pool.park_slot()
        lid = kthread.lwp_create(
            arena, "hostcall", hostcall.serve, (call,), 0, cpu, flags, pid, reply
        )
        lwp = cls(arena, lid, reply)
        return lwp, lwp._wait(deadline, poll)

    def call(self, call: Call, deadline: int | None, poll: Poll) -> tuple[bool, object] | None:
        """Run ``call`` in this lwp: (ok, value), or None if it has been retired."""
        data = dumps(call)  # before anything changes: a call that cannot be pickled fails alone
        arena, w = self.arena, self.arena.w
        with self.lock:
            if self.retired:
                return None
            self.seq += 1
            payload_put(arena, self.entry_word, IO_PAYLOAD_BYTES, data)
            w[self.l + L_CALLS] = self.seq
            arena.pool.unpark(w[self.l + L_PARK])
            return self._wait(deadline, poll)

    def _wait(self, deadline: int | None, poll: Poll) -> tuple[bool, object]:
        """Wait for the answer to call ``self.seq``; a wait given up detaches it."""
        arena, w, l, seq = self.arena, self.arena.w, self.l, self.seq

        def answered() -> bool:
            return w[l + L_ANSWERED] >= seq or w[l + L_STATE] == LSZOMB

        try:
            arena.pool.wait_until(self.reply, answered, deadline, poll, "call")
        except sync.Shutdown:
            raise  # the kernel is going: nothing to detach
        except BaseException:  # a timeout, Ctrl-C: the lwp answers nobody, then ends
            self.retire()
            raise
        if w[l + L_ANSWERED] >= seq:
            return kthread.take_result(arena, self.result_word)
        self.retired = True  # the call ended the lwp (kthread_exit): its result is the answer
        return kthread.collect(arena, self.lid)

    def retire(self, join: bool = False) -> None:
        """Have the lwp end once it has answered what it was asked; with ``join``,
        wait until it has."""
        arena = self.arena
        if self.retired or arena.state != _arena.RUNNING:
            self.retired = True
            return
        self.retired = True
        arena.w[self.l + L_RETIRE] = 1
        park = arena.w[self.l + L_PARK]
        if park:  # 0: not started yet; it reads L_RETIRE after its first call
            arena.pool.unpark(park)
        if join:
            kthread.wait_lwp(arena, self.lid)
            kthread.collect(arena, self.lid)
        else:
            kthread.detach(arena, self.lid)


class _ThreadLwps(dict[tuple[int, int], HostLwp]):
    """One host thread's lwps in one kernel, by (pid, CPU or -1).  When the thread
    ends (its thread-local storage goes, and this with it) they are retired and the
    thread's park slot is given back."""

    def __init__(self, arena: Arena) -> None:
        super().__init__()
        self.arena = arena
        self.slot = arena.pool.park_slot()
        self.pid = param.getpid()  # a forked child's copy must leave its parent's lwps be

    def __del__(self) -> None:
        try:  # (at the interpreter's exit, module globals may be None already)
            if param.getpid() != self.pid or self.arena.state != _arena.RUNNING:
                return
            for lwp in self.values():
                lwp.retire()
            self.arena.pool.free_park_slot(self.slot)
        except Exception:  # noqa: BLE001 - the kernel, or the interpreter, is going
            pass


class HostLwps:
    """Every host thread's lwps in one kernel."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self._mine = threading.local()
        self._lock = threading.Lock()  # guards _by_pid
        self._by_pid: dict[int, weakref.WeakSet[HostLwp]] = {}

    def call(
        self, pid: int, cpu: int, call: Call, deadline: int | None, poll: Poll
    ) -> tuple[bool, object]:
        """Run ``call`` in the calling thread's lwp of process ``pid`` (on ``cpu``,
        -1 for wherever it is): its (ok, value)."""
        mine: _ThreadLwps | None = getattr(self._mine, "lwps", None)
        if mine is None:
            mine = self._mine.lwps = _ThreadLwps(self.arena)
        lwp = mine.get((pid, cpu))
        if lwp is not None:
            result = lwp.call(call, deadline, poll)
            if result is not None:
                if lwp.retired:  # the call ended it (kthread_exit) or was given up
                    del mine[(pid, cpu)]
                return result
            del mine[(pid, cpu)]
        if len(mine) >= PER_THREAD:
            mine.pop(next(iter(mine))).retire()
        lwp, result = HostLwp.start(self.arena, pid, cpu, call, deadline, poll)
        if not lwp.retired:
            mine[(pid, cpu)] = lwp
            with self._lock:
                self._by_pid.setdefault(pid, weakref.WeakSet()).add(lwp)
        return result

    def release(self, pid: int) -> None:
        """End every host thread's lwp in process ``pid``; a call in progress in one
        finishes first."""
        with self._lock:
            lwps = list(self._by_pid.pop(pid, ()))
        for lwp in lwps:
            with lwp.lock:
                lwp.retire(join=True)
