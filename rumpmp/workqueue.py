"""workqueue(9): deferred work run by kernel threads (subr_workqueue.c).

A workqueue has one worker kernel thread, or with WQ_PERCPU one bound to each CPU.
Each worker owns a FIFO of work items in shared memory (nodes in the kernel heap,
the item itself a cloudpickle blob), a kernel mutex guarding it and a condvar the
idle worker sleeps on: enqueueing never polls, it wakes the worker.

rumpmp differs from NetBSD in that a work item is any picklable object (NetBSD
embeds a ``struct work`` in the caller's structure): ``func(wk, arg)`` receives an
unpickled copy, so share state through kernel handles such as a kmem buffer.
``workqueue_wait`` identifies an item the way wait channels do
(``sleepq.wchan_key``: a handle's offset, an int, a string); other items cannot be
waited for individually.  ``workqueue_create``
returns the queue and raises OSError instead of returning an errno.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from . import arena as _arena
from . import kmem, kthread
from .arena import Arena
from .blob import blob_free, blob_get, blob_put
from .condvar import cv_broadcast, cv_destroy, cv_init_in, cv_wait, kcondvar_t
from .mutex import kmutex_t, mutex_destroy, mutex_enter, mutex_exit, mutex_init_in
from .sleepq import wchan_key

WQ_MPSAFE = 0x01
WQ_PERCPU = 0x02

# per-worker words in the queue's record
Q_HEAD = 0  # byte offset of the first node, 0 if none
Q_TAIL = 1
Q_RUNNING = 2  # wait-channel key of the item being run, 0 if none
Q_DYING = 3
Q_LWP = 4
Q_WORDS = 8
_HDR_WORDS = 8  # W_FUNC (3 words: blob of (func, arg)), W_NWORKERS
W_FUNC = 0
W_NWORKERS = 3

# node words
N_NEXT = 0
N_KEY = 1
N_GEN = 2  # the node's own heap generation, to free it by offset
N_ITEM = 3  # 3 words: blob of the item
N_BYTES = 6 * 8


class workqueue_t:
    """A workqueue handle; pickles by reference (its locks and record do)."""

    __slots__ = ("arena", "locks", "name", "rec")

    def __init__(
        self, arena: Arena, rec: kmem.KBuf, locks: list[tuple[kmutex_t, kcondvar_t]], name: str
    ) -> None:
        self.arena, self.rec, self.locks, self.name = arena, rec, locks, name

    def __reduce__(self) -> tuple:
        return (workqueue_t, (self.arena, self.rec, self.locks, self.name))

    def __repr__(self) -> str:
        return f"<workqueue_t {self.name}>"

    def _q(self, worker: int) -> int:
        return self.rec.offset // 8 + _HDR_WORDS + worker * Q_WORDS


def workqueue_create_in(
    arena: Arena, name: str, func: Callable, arg: object, prio: int, ipl: int, flags: int
) -> workqueue_t:
    """workqueue_create on a given kernel (boot uses it from the host)."""
    nworkers = arena.ncpu if flags & WQ_PERCPU else 1
    rec = kmem.kmem_zalloc_in(arena, (_HDR_WORDS + nworkers * Q_WORDS) * 8)
    w, r = arena.w, rec.offset // 8
    w[r + W_NWORKERS] = nworkers
    blob_put(arena, (func, arg), r + W_FUNC)
    locks = [
        (mutex_init_in(arena, name=f"{name}/{i}"), cv_init_in(arena, name)) for i in range(nworkers)
    ]
    wq = workqueue_t(arena, rec, locks, name)
    for i in range(nworkers):
        lid = kthread.kthread_create_in(
            arena,
            prio,
            kthread.KTHREAD_MPSAFE | kthread.KTHREAD_MUSTJOIN,
            i if flags & WQ_PERCPU else None,
            _worker,
            (wq, i),
            f"{name}/{i}" if flags & WQ_PERCPU else name,
        )
        if not lid:  # threads are off and rump fakes this queue's thread
            break
        w[wq._q(i) + Q_LWP] = lid
    return wq


def workqueue_create(
    name: str, func: Callable[[object, object], None], arg: object, prio: int, ipl: int, flags: int
) -> workqueue_t:
    """workqueue_create(9): a queue whose workers run ``func(wk, arg)`` for each item,
    at priority ``prio``.  ``ipl`` is accepted; rumpmp has no interrupt levels to
    block."""
    return workqueue_create_in(_arena.current(), name, func, arg, prio, ipl, flags)


def workqueue_enqueue(wq: workqueue_t, wk: object, ci: int | None) -> None:
    """workqueue_enqueue(9): queue ``wk``.  With WQ_PERCPU it runs on CPU ``ci`` (the
    current CPU if None); otherwise ``ci`` must be None (EINVAL)."""
    arena = wq.arena
    nworkers = arena.w[wq.rec.offset // 8 + W_NWORKERS]
    if nworkers == 1 and ci is not None and arena.ncpu > 1:
        raise OSError(errno.EINVAL, f"workqueue_enqueue: {wq.name} is not WQ_PERCPU")
    worker = (_arena.here.cpu if ci is None else ci) if nworkers > 1 else 0
    if not 0 <= worker < nworkers:
        raise OSError(errno.EINVAL, f"workqueue_enqueue: no cpu{ci}")
    node = kmem.kmem_zalloc_in(arena, N_BYTES)
    n = node.offset // 8
    arena.w[n + N_KEY] = _key(wk)
    arena.w[n + N_GEN] = node.gen
    blob_put(arena, wk, n + N_ITEM)
    m, cv = wq.locks[worker]
    q = wq._q(worker)
    w = arena.w
    mutex_enter(m)
    if w[q + Q_TAIL]:
        w[w[q + Q_TAIL] // 8 + N_NEXT] = node.offset
    else:
        w[q + Q_HEAD] = node.offset
    w[q + Q_TAIL] = node.offset
    cv_broadcast(cv)
    mutex_exit(m)


def _key(wk: object) -> int:
    """The item's identity for workqueue_wait; 0 for items that have none (a
    callable, say), which cannot be waited for one by one."""
    try:
        return wchan_key(wk)
    except TypeError:
        return 0


def _pop(wq: workqueue_t, q: int) -> tuple[int, object]:
    """Take the first node (caller holds the worker's mutex): (key, item)."""
    arena, w = wq.arena, wq.arena.w
    off = w[q + Q_HEAD]
    n = off // 8
    w[q + Q_HEAD] = w[n + N_NEXT]
    if not w[q + Q_HEAD]:
        w[q + Q_TAIL] = 0
    key, item = w[n + N_KEY], blob_get(arena, n + N_ITEM)
    blob_free(arena, n + N_ITEM)
    kmem.kmem_free_in(arena, kmem._make_kbuf(arena, off, N_BYTES, w[n + N_GEN]), N_BYTES)
    return key, item


def _worker(arg: tuple[workqueue_t, int]) -> None:
    """Body of a worker: run items in order until the queue is destroyed and drained."""
    wq, i = arg
    arena, w = wq.arena, wq.arena.w
    func, farg = blob_get(arena, wq.rec.offset // 8 + W_FUNC)
    m, cv = wq.locks[i]
    q = wq._q(i)
    mutex_enter(m)
    while True:
        while not w[q + Q_HEAD] and not w[q + Q_DYING]:
            cv_wait(cv, m)
        if not w[q + Q_HEAD]:
            break
        key, item = _pop(wq, q)
        w[q + Q_RUNNING] = key
        mutex_exit(m)
        func(item, farg)
        mutex_enter(m)
        w[q + Q_RUNNING] = 0
        cv_broadcast(cv)  # workqueue_wait callers look again
    mutex_exit(m)


def _busy_with(wq: workqueue_t, q: int, key: int) -> bool:
    w = wq.arena.w
    if w[q + Q_RUNNING] == key:
        return True
    off = w[q + Q_HEAD]
    while off:
        if w[off // 8 + N_KEY] == key:
            return True
        off = w[off // 8 + N_NEXT]
    return False


def workqueue_wait(wq: workqueue_t, wk: object) -> None:
    """workqueue_wait(9): return once ``wk`` is neither queued nor running."""
    key = wchan_key(wk)
    for i, (m, cv) in enumerate(wq.locks):
        mutex_enter(m)
        while _busy_with(wq, wq._q(i), key):
            cv_wait(cv, m)
        mutex_exit(m)


def workqueue_destroy(wq: workqueue_t) -> None:
    """workqueue_destroy(9): let the workers finish every queued item, join them and
    free the queue."""
    arena, w = wq.arena, wq.arena.w
    for i, (m, cv) in enumerate(wq.locks):
        mutex_enter(m)
        w[wq._q(i) + Q_DYING] = 1
        cv_broadcast(cv)
        mutex_exit(m)
    for i, (m, cv) in enumerate(wq.locks):
        if w[wq._q(i) + Q_LWP]:
            kthread.kthread_join(w[wq._q(i) + Q_LWP])
        mutex_destroy(m)
        cv_destroy(cv)
    blob_free(arena, wq.rec.offset // 8 + W_FUNC)
    kmem.kmem_free_in(arena, wq.rec, len(wq.rec))


# -- aiodoned -------------------------------------------------------------------------


def _aiodone(wk: object, _: object) -> None:
    """Stand-in for uvm_aio_aiodone: rumpmp has no block I/O yet, so an item is the
    completion itself, a callable run in the aiodoned thread."""
    if callable(wk):
        wk()


def aiodoned_create(arena: Arena) -> workqueue_t:
    """The seed's "aiodoned" queue (at boot, when threads are on)."""
    from .scheduler import PRI_BIO

    wq = workqueue_create_in(arena, "aiodoned", _aiodone, None, PRI_BIO, 0, WQ_MPSAFE)
    blob_put(arena, wq, _arena.H_AIODONED)
    return wq


def aiodoned() -> workqueue_t:
    """The kernel's aiodoned queue: ``workqueue_enqueue(aiodoned(), callback, None)``."""
    arena = _arena.current()
    if not arena.w[_arena.H_AIODONED]:
        raise OSError(errno.ENXIO, "no aiodoned queue: kernel threads are off")
    return blob_get(arena, _arena.H_AIODONED, cache=True)  # type: ignore[return-value]
