"""Host calls: the lwp a host thread keeps in a process (rump's implicit lwp).

In rump, a host thread that calls into the kernel gets an lwp and keeps using it.
Here that lwp lives in a CPU process and waits there, between calls, on its record
in the lwp table (LW_HOSTCALL):

- the host writes a call (the function's pickle, made once per kernel, and the
  arguments) into the lwp's entry buffer, stores the call's number in L_CALLS and
  posts the lwp's park slot;
- the lwp takes its CPU, runs the call, stores (ok, value) in its result buffer
  and the call's number in L_ANSWERED, and posts L_REPLY, the caller's park slot;
- it then waits for the next call keeping its CPU for a moment if no other lwp
  wants it (a loop of calls pays no scheduler hand-off), then parked, the CPU
  released.

The first call travels with the lwp's creation, so nothing has to be posted to an
lwp that has not started.  L_RETIRE asks the lwp to end once it has answered what it
was asked: its host thread ended or gave up waiting (a timeout, Ctrl-C), or its
process is being released.  A halt wakes every such lwp (``wake_all``), and each
leaves once it has answered what it was asked, as a halt lets running lwps finish.
The host side is ``rumpmp.host.hostlwp``.
"""

from __future__ import annotations

from typing import Any

from hypercalls import thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem.blob import payload_drop, payload_get, unpickled_function
from rumpmp.rumpkern.sched import kthread, lwproc, scheduler
from rumpmp.sys.lwp import (
    L_ANSWERED,
    L_CALLS,
    L_FLAGS,
    L_PARK,
    L_REPLY,
    L_RETIRE,
    L_STATE,
    LW_HOSTCALL,
    LWP_WORDS,
    NLWP,
)

_last = thread.local()  # .func: the function this thread's lwp ran last

#: A call as it travels: the function's pickle, its positional and keyword arguments.
Call = tuple[bytes, tuple[Any, ...], dict[str, Any] | None]


def serve(first: Call) -> None:
    """Body of a host thread's lwp: answer ``first``, then every call its host thread
    makes, until it is retired or the kernel stops."""
    arena = _arena.current()
    cpu = _arena.here.cpu
    t = tables(arena)
    lid = thread.curlwp()
    l = t.lwp(lid)
    w = arena.w
    entry_word, result_word = t.entry(lid), t.result(lid)
    _last.func = None
    _answer(arena, l, result_word, 1, run(arena, cpu, _apply, first))

    def asked() -> bool:
        return w[l + L_CALLS] > w[l + L_ANSWERED]

    def told() -> bool:
        return asked() or bool(w[l + L_RETIRE]) or w[_arena.H_STATE] != _arena.RUNNING

    wanted = scheduler.wanted_by_others(arena, cpu)
    while True:
        if not asked():
            if not (thread.spin_until(lambda: told() or wanted()) and told()):
                arena.pool.park_spinning(w[l + L_PARK], told)  # the CPU released
            if not asked():
                break
        seq = w[l + L_CALLS]
        _answer(arena, l, result_word, seq, run(arena, cpu, apply_entry, entry_word))
    payload_drop(arena, result_word)  # an answer nobody came for (a detached call)


def run(arena: Arena, cpu: int, apply: Any, what: object) -> tuple[bool, object]:
    """``apply(arena, what)`` as kernel code: (True, value) or (False, the exception
    as the caller gets it).  An lwp context the call switched to is left behind."""
    ok, value = entry.call(apply, arena, what)
    lwproc.switch_home(arena)
    if ok:
        return True, value
    scheduler.context_reset()  # it may have raised with preemption disabled
    return False, entry.portable(value, cpu)  # type: ignore[arg-type]


def _apply(arena: Arena, call: Call) -> object:
    data, args, kwargs = call
    func = unpickled_function(arena, data)
    if func is not getattr(_last, "func", None):  # named after what it runs, for panics
        _last.func = func
        tables(arena).set_lwp_name(thread.curlwp(), getattr(func, "__name__", "call"))
    return func(*args) if kwargs is None else func(*args, **kwargs)


def apply_entry(arena: Arena, word: int) -> object:
    """Run the call stored in the payload buffer at ``word`` (which is emptied)."""
    try:
        call = payload_get(arena, word)
    finally:
        payload_drop(arena, word)
    return _apply(arena, call)


def _answer(arena: Arena, l: int, word: int, seq: int, result: tuple[bool, object]) -> None:
    kthread.publish(arena, word, result)
    arena.w[l + L_ANSWERED] = seq
    arena.pool.unpark(arena.w[l + L_REPLY])


def wake_all(arena: Arena) -> None:
    """At a halt: wake every host-call lwp that waits for a call, so that it leaves."""
    t = tables(arena)
    w = arena.w
    for l in range(t.lwps, t.lwps + NLWP * LWP_WORDS, LWP_WORDS):
        if w[l + L_STATE] and w[l + L_FLAGS] & LW_HOSTCALL and w[l + L_PARK]:
            arena.pool.unpark(w[l + L_PARK])
