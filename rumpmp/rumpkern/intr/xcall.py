"""xcall(9): cross-calls, a function run on every CPU or on one (subr_xcall.c).

As in NetBSD, cross-calls of one priority run one at a time: an issuer waits until
the previous cross-call has finished, stores the function and its arguments,
advances the sequence number ``headp`` and wakes the targets; each target runs the
function and the last to finish advances ``donep``, which ``xc_wait`` waits for.
Low-priority cross-calls run in each CPU's xcall lwp (PRI_XCALL); XC_HIGHPRI ones
run from each CPU's SOFTINT_SERIAL softint, ahead of every ordinary lwp.  Each
target runs the function in its own process, so a broadcast runs truly in
parallel.

The host enters the same machinery (``Kernel.xc_broadcast``/``xc_unicast``): it is
the fast path into a running kernel, with no lwp to create.  It also asks for each
CPU's return value (or exception), which NetBSD's void cross-call functions do not
have.  Functions travel as cloudpickle blobs cached by each process, arguments and
results as pickles in buffers of the region (or the heap when they are large).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from hypercalls import clock, sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry, evcnt, kernhist
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import kprintf
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.intr import softint
from rumpmp.rumpkern.mem.blob import (
    Ref,
    blob_free_ref,
    blob_get,
    blob_put,
    blob_ref,
    dumps,
    payload_drop,
    payload_get,
    payload_put,
)
from rumpmp.rumpkern.sched import kthread, scheduler
from rumpmp.sys.kernhist import EV_XC_SEND, EV_XC_SERVE
from rumpmp.sys.lwp import L_PARK
from rumpmp.sys.param import PRI_XCALL

XC_HIGHPRI = 0x01  # run from a softint, ahead of ordinary cross-calls
XC_HIGHPRI_IPL = 0x02  # accepted; rumpmp has one softint level for high-priority calls
LOW, HIGH = 0, 1
XC_PRI_BIT = 1 << 62  # set in the tickets of high-priority cross-calls, as in NetBSD

# state words, one state per priority
X_LOCK = 0  # pool slot of the spin lock
X_CV = 1  # pool slot of the condvar issuers and xc_wait sleep on
X_HEADP = 2  # cross-calls issued
X_DONEP = 3  # cross-calls finished
X_BUSY = 4  # one is in flight, or its results are not collected yet
X_TARGET = 5  # CPU index, or -1 for every CPU
X_PENDING = 6  # targets that have not finished
X_COLLECT = 7  # the issuer wants every CPU's result
X_FUNC = 8  # 3 words: blob of the function
X_SIH = 11  # the HIGHPRI softint's handle index + 1
X_ABANDONED = 12  # the host gave up collecting: the last target frees the results
X_REPLY = 13  # park slot of the issuer collecting results: posted when all are done
X_ARGS = 16  # payload buffer (blob.payload_put) for the pickled (arg1, arg2)
STATE_BYTES = 4096

# per-CPU record words
XC_SEEN = 0  # per priority: the last sequence number this CPU has looked at
XC_LWP = 2  # the CPU's xcall lwp
XC_RESULT = 8  # payload buffers for the result, one per priority
RESULT_BYTES = 2048
CPU_BYTES = XC_RESULT * 8 + 2 * RESULT_BYTES

#: Functions cached per process, as blobs (issuer) and unpickled (target).
FUNC_CACHE = 64


def region(ncpu: int) -> tuple[str, int]:
    return ("xcall", 2 * STATE_BYTES + ncpu * CPU_BYTES)


def _state(arena: Arena, prio: int) -> int:
    return arena.region_word("xcall") + prio * STATE_BYTES // 8


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("xcall") + (2 * STATE_BYTES + cpu * CPU_BYTES) // 8


class _State:
    """One priority's cross-call state as seen by this process."""

    def __init__(self, arena: Arena, prio: int) -> None:
        self.arena = arena
        self.prio = prio
        self.x = x = _state(arena, prio)
        self.lock = sync.Mutex.attach(arena.pool, arena.w[x + X_LOCK], sync.MTX_SPIN)
        self.cv = sync.CondVar.attach(arena.pool, arena.w[x + X_CV])


def _xstate(arena: Arena, prio: int) -> _State:
    return arena.attached(("xcall", prio), lambda: _State(arena, prio))


# -- boot ---------------------------------------------------------------------------


def xc_init(arena: Arena) -> None:
    """xc_init: both priorities' locks and condvars (at boot, before the CPUs start)."""
    for prio in (LOW, HIGH):
        x = _state(arena, prio)
        arena.w[x + X_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
        arena.w[x + X_CV] = sync.CondVar(arena.pool).slot


def xc_startup(arena: Arena) -> None:
    """The high-priority softint (once the CPUs are up)."""
    if not arena.w[_arena.H_THREADS]:
        kprintf(arena, "rump kernel threads not enabled, xcall not functional\n")
        return
    sih = softint.softint_establish_in(
        arena, softint.SOFTINT_SERIAL | softint.SOFTINT_MPSAFE, _xc_highpri_intr, None
    )
    arena.w[_state(arena, HIGH) + X_SIH] = sih.index + 1


def xc_init_cpu(arena: Arena, cpu: int) -> None:
    """xc_init_cpu: this CPU's xcall lwp (per-CPU boot step)."""
    if not arena.w[_arena.H_THREADS]:
        return
    lid = kthread.kthread_create_in(
        arena, PRI_XCALL, kthread.KTHREAD_MPSAFE, cpu, _xc_thread, None, f"xcall/{cpu}"
    )
    arena.w[record(arena, cpu) + XC_LWP] = lid


# -- payloads -----------------------------------------------------------------------


def _func_blob(arena: Arena, st: _State, func: Callable) -> None:
    """Make ``func`` the state's function, reusing this process's blob of it."""
    cache: dict[int, tuple[Callable, Ref]] = arena.attached(("xcall.funcs", st.prio), dict)
    w, x = arena.w, st.x
    ref = cache.get(id(func))
    if ref is None or ref[0] is not func:
        if len(cache) >= FUNC_CACHE:  # nothing runs while we hold the state: free the oldest
            _, old = cache.pop(next(iter(cache)))
            blob_free_ref(arena, old)
        blob_put(arena, func, x + X_FUNC)
        ref = cache[id(func)] = (func, blob_ref(arena, x + X_FUNC))
    w[x + X_FUNC], w[x + X_FUNC + 1], w[x + X_FUNC + 2] = ref[1]


def _func(arena: Arena, x: int) -> Callable:
    """The state's function, unpickled once per process."""
    cache: dict[Ref, Callable] = arena.attached("xcall.unpickled", dict)
    key = blob_ref(arena, x + X_FUNC)
    func = cache.get(key)
    if func is None:
        if len(cache) >= FUNC_CACHE:
            cache.pop(next(iter(cache)))
        func = cache[key] = blob_get(arena, x + X_FUNC)
    return func


# -- issuing --------------------------------------------------------------------------


def _wait_locked(
    st: _State, done: Callable[[], bool], deadline: int | None, poll: Callable[[], None] | None
) -> None:
    """With ``st.lock`` held, sleep on the state's condvar until ``done()``.

    A host caller may pass a monotonic ``deadline`` (ns: TimeoutError when it passes)
    and a ``poll`` function run between waits (it raises to give up, e.g. on a held
    Ctrl-C).  Either way out releases the lock; a normal return keeps it.
    """
    while not done():
        if deadline is None and poll is None:
            st.cv.wait(st.lock)
            continue
        left = (
            sync.POLL
            if deadline is None
            else min(sync.POLL, (deadline - clock.monotonic_ns()) / 1e9)
        )
        if left <= 0:
            st.lock.exit()
            raise TimeoutError(errno.ETIMEDOUT, "cross-call timed out")
        st.cv.timedwait(st.lock, 0, int(left * 1e9))
        if poll is not None:
            try:
                poll()
            except BaseException:
                st.lock.exit()
                raise


def issue(
    arena: Arena,
    flags: int,
    func: Callable,
    arg1: object,
    arg2: object,
    target: int,
    collect: bool,
    deadline: int | None = None,
    poll: Callable[[], None] | None = None,
) -> int:
    """Start a cross-call on ``target`` (a CPU, or -1 for all); returns its sequence
    number.  With ``collect`` the state stays busy until ``collect_results`` (or
    ``abandon``).  ``deadline`` and ``poll`` bound the wait for the previous call."""
    if not arena.w[_arena.H_THREADS]:
        raise OSError(errno.ENOTSUP, "xcall needs kernel threads (RUMP_THREADS=1)")
    if target != -1 and not 0 <= target < arena.ncpu:
        raise OSError(errno.EINVAL, f"xc_unicast: no cpu{target}")
    prio = HIGH if flags & XC_HIGHPRI else LOW
    st = _xstate(arena, prio)
    w, x = arena.w, st.x
    args = dumps((arg1, arg2))
    st.lock.enter()
    _wait_locked(st, lambda: not w[x + X_BUSY], deadline, poll)
    w[x + X_BUSY] = 1
    st.lock.exit()
    try:
        payload_drop(arena, x + X_ARGS)  # the previous call's, now that every CPU is done with it
        _func_blob(arena, st, func)
        payload_put(arena, x + X_ARGS, STATE_BYTES - X_ARGS * 8, args)
    except BaseException:  # an unpicklable function, say: free the state again
        _release(st)
        raise
    st.lock.enter()
    w[x + X_TARGET] = target
    w[x + X_COLLECT] = int(collect)
    w[x + X_REPLY] = arena.pool.park_slot() if collect else 0
    w[x + X_ABANDONED] = 0
    w[x + X_PENDING] = arena.ncpu if target == -1 else 1
    w[x + X_HEADP] += 1
    where = w[x + X_HEADP]
    st.lock.exit()
    ticket = where | (XC_PRI_BIT if prio == HIGH else 0)
    if kernhist.state.on:
        kernhist.emit(EV_XC_SEND, thread.curlwp(), target, ticket)
    for cpu in range(arena.ncpu) if target == -1 else (target,):
        _kick(arena, prio, cpu)
    return ticket


def _release(st: _State) -> None:
    """Mark the state free for the next cross-call and wake whoever waits for it."""
    st.lock.enter_nowrap()
    st.arena.w[st.x + X_BUSY] = 0
    st.cv.broadcast()
    st.lock.exit()


def _kick(arena: Arena, prio: int, cpu: int) -> None:
    """Wake ``cpu``'s xcall lwp, or schedule its high-priority softint."""
    w = arena.w
    if prio == HIGH:
        sih = softint.softint_t(arena, w[_state(arena, HIGH) + X_SIH] - 1)
        softint.schedule_in(arena, sih, cpu)
        return
    lid = w[record(arena, cpu) + XC_LWP]
    park = w[tables(arena).lwp(lid) + L_PARK] if lid else 0
    if park:  # not started yet: it looks for work as soon as it starts
        arena.pool.unpark(park)


def _prio_of(where: int) -> int:
    return HIGH if where & XC_PRI_BIT else LOW


def wait_in(
    arena: Arena,
    where: int,
    deadline: int | None = None,
    poll: Callable[[], None] | None = None,
) -> None:
    """Wait until the cross-call with ticket ``where`` has finished everywhere."""
    st = _xstate(arena, _prio_of(where))
    seq = where & ~XC_PRI_BIT
    w, x = arena.w, st.x
    st.lock.enter()
    _wait_locked(st, lambda: w[x + X_DONEP] >= seq, deadline, poll)
    st.lock.exit()


def _await_reply(
    arena: Arena, st: _State, seq: int, deadline: int | None, poll: Callable[[], None] | None
) -> None:
    """The issuer's wait for cross-call ``seq``: check the done counter for a moment,
    then park on its own slot, which the last target posts once it has dropped the
    state's lock (so the issuer never wakes into a held lock)."""
    w, x = arena.w, st.x
    me = arena.pool.park_slot()

    def done() -> bool:
        return w[x + X_DONEP] >= seq

    arena.pool.wait_until(me, done, deadline, poll, "cross-call")


def _result_words(arena: Arena, prio: int, target: int) -> list[int]:
    """Where each target of a collected cross-call left its result."""
    cpus = range(arena.ncpu) if target == -1 else (target,)
    return [record(arena, cpu) + XC_RESULT + prio * RESULT_BYTES // 8 for cpu in cpus]


def collect_results(
    arena: Arena,
    where: int,
    target: int,
    deadline: int | None = None,
    poll: Callable[[], None] | None = None,
) -> list[tuple[bool, object]]:
    """Wait for cross-call ``where`` (issued with ``collect``), take every target's
    (ok, value) and free the state for the next cross-call.  If the wait ends early
    (timeout, poll raising, shutdown) the call is abandoned: see ``abandon``."""
    prio = _prio_of(where)
    try:
        _await_reply(arena, _xstate(arena, prio), where & ~XC_PRI_BIT, deadline, poll)
    except BaseException:
        abandon(arena, where)
        raise
    results = []
    for word in _result_words(arena, prio, target):
        results.append(payload_get(arena, word))
        payload_drop(arena, word)
    _release(_xstate(arena, prio))
    return results


def abandon(arena: Arena, where: int) -> None:
    """The issuer will not collect cross-call ``where``: if it has finished, drop its
    results and free the state now; else the last target to finish does (``_finish``)."""
    prio = _prio_of(where)
    st = _xstate(arena, prio)
    w, x = arena.w, st.x
    st.lock.enter_nowrap()
    done = w[x + X_DONEP] >= where & ~XC_PRI_BIT
    if not done:
        w[x + X_ABANDONED] = 1
    st.lock.exit()
    if done:
        _drop_results(arena, prio)


def _drop_results(arena: Arena, prio: int) -> None:
    """Free the results of a finished, abandoned cross-call and the state with them."""
    st = _xstate(arena, prio)
    for word in _result_words(arena, prio, arena.w[st.x + X_TARGET]):
        payload_drop(arena, word)
    _release(st)


# -- running --------------------------------------------------------------------------


def run_pending(arena: Arena, prio: int, cpu: int) -> bool:
    """Run the cross-call of ``prio`` that ``cpu`` has not seen yet, if it targets
    ``cpu``; whether there was one to look at.

    The sequence number and the target are read together under the state's lock:
    read apart, a CPU that is not a target of call N could see N's number and the
    target of call N+1 (issued as soon as N finished), run N+1 under N's number and
    count it twice.  Once this CPU is a target of ``seq``, nothing else in the state
    changes until it has finished, so the function and arguments need no lock.
    """
    w = arena.w
    st = _xstate(arena, prio)
    x = st.x
    r = record(arena, cpu)
    if w[r + XC_SEEN + prio] >= w[x + X_HEADP]:  # the cheap look: nothing new
        return False
    st.lock.enter_nowrap()
    seq, target, collect = w[x + X_HEADP], w[x + X_TARGET], w[x + X_COLLECT]
    st.lock.exit()
    w[r + XC_SEEN + prio] = seq
    if target not in (-1, cpu):
        return True
    start = kernhist.now() if kernhist.state.on else 0
    ok, value = entry.call(_call_pending, arena, x)
    if start:
        ticket = seq | (XC_PRI_BIT if prio == HIGH else 0)
        kernhist.emit(EV_XC_SERVE, thread.curlwp(), ticket, kernhist.now() - start)
    if not ok and not collect:  # issued by kernel code, which gets no results
        entry.report(arena, f"cross-call on cpu{cpu}", value)  # type: ignore[arg-type]
    kind = evcnt.EV_XC_HIGHPRI if prio == HIGH else evcnt.EV_XC_UNICAST
    w[evcnt.count_word(arena, cpu, kind + (target == -1 and prio == LOW))] += 1
    if collect:
        result = (True, value) if ok else (False, entry.portable(value, cpu))  # type: ignore[arg-type]
        word = r + XC_RESULT + prio * RESULT_BYTES // 8
        try:
            data = dumps(result)
        except Exception as e:  # noqa: BLE001 - the issuer must learn what went wrong
            data = dumps((False, RuntimeError(f"result could not be pickled: {e!r}")))
        payload_put(arena, word, RESULT_BYTES, data)
    _finish(arena, prio, seq)
    return True


def _call_pending(arena: Arena, x: int) -> object:
    func = _func(arena, x)
    arg1, arg2 = payload_get(arena, x + X_ARGS)
    return func(arg1, arg2)


def _finish(arena: Arena, prio: int, seq: int) -> None:
    st = _xstate(arena, prio)
    w, x = arena.w, st.x
    st.lock.enter_nowrap()
    w[x + X_PENDING] -= 1
    last = w[x + X_PENDING] == 0
    abandoned = last and w[x + X_ABANDONED]
    reply = w[x + X_REPLY] if last else 0
    if last:
        w[x + X_DONEP] = seq
        if not w[x + X_COLLECT]:
            w[x + X_BUSY] = 0
        st.cv.broadcast()  # kernel code in xc_wait, or issuers waiting for the state
    st.lock.exit()
    if reply:  # straight to the issuer, after the lock is dropped
        arena.pool.unpark(reply)
    if abandoned:  # the host gave up waiting: nobody else will free the results
        _drop_results(arena, prio)


def _xc_thread(_: object) -> None:
    """Body of a CPU's xcall lwp: run each low-priority cross-call aimed at it."""
    arena = _arena.current()
    cpu = _arena.here.cpu
    w = arena.w
    park = w[tables(arena).lwp(thread.curlwp()) + L_PARK]
    headp, seen = _state(arena, LOW) + X_HEADP, record(arena, cpu) + XC_SEEN + LOW

    def more() -> bool:
        return w[headp] > w[seen]

    wanted = scheduler.wanted_by_others(arena, cpu)
    while True:
        if run_pending(arena, LOW, cpu):
            continue
        # While no other lwp wants this CPU, wait for the next call keeping it: that
        # spares a release and a retake of the CPU per call in a loop of calls.
        if thread.spin_until(lambda: more() or wanted()) and more():
            continue
        arena.pool.park_spinning(park, more)  # the CPU is released meanwhile


def _xc_highpri_intr(_: object) -> None:
    """The SOFTINT_SERIAL handler: run the pending high-priority cross-call."""
    run_pending(_arena.current(), HIGH, _arena.here.cpu)


# -- xcall(9) -------------------------------------------------------------------------


def xc_broadcast(flags: int, func: Callable[[Any, Any], object], arg1: object, arg2: object) -> int:
    """xc_broadcast(9): run ``func(arg1, arg2)`` on every CPU; returns the ticket
    for xc_wait.  Waits first while another cross-call of the same priority runs."""
    return issue(_arena.current(), flags, func, arg1, arg2, -1, False)


def xc_unicast(
    flags: int, func: Callable[[Any, Any], object], arg1: object, arg2: object, ci: int
) -> int:
    """xc_unicast(9): run ``func(arg1, arg2)`` on CPU ``ci`` (an index here, where
    NetBSD takes a cpu_info); returns the ticket for xc_wait."""
    arena = _arena.current()
    if isinstance(ci, bool) or not isinstance(ci, int):
        raise TypeError(f"xc_unicast: ci must be a CPU index, not {type(ci).__name__}")
    if not 0 <= ci < arena.ncpu:
        raise OSError(errno.EINVAL, f"xc_unicast: no cpu{ci}")
    return issue(arena, flags, func, arg1, arg2, ci, False)


def xc_wait(where: int) -> None:
    """xc_wait(9): wait until the cross-call with ticket ``where`` has run everywhere."""
    wait_in(_arena.current(), where)
