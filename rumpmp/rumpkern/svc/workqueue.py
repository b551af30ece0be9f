"""workqueue(9): deferred work run by kernel threads (subr_workqueue.c).

A workqueue has one worker kernel thread, or with WQ_PERCPU one bound to each CPU.
Each worker owns a FIFO of work items in shared memory, a kernel mutex guarding it
(initialised at the queue's ``ipl``, as NetBSD does) and a condvar the idle worker
sleeps on: enqueueing never polls, it wakes the worker.  As in NetBSD, a worker
takes the whole pending list at once and runs it as a batch; a generation count,
odd while a batch runs, lets ``workqueue_wait`` wait for the batch without looking
into it.

rumpmp differs from NetBSD in that a work item is any picklable object (NetBSD
embeds a ``struct work`` in the caller's structure): it travels as a cloudpickle
blob in the kernel heap and ``func(wk, arg)`` receives an unpickled copy, so share
state through kernel handles such as a kmem buffer.  ``workqueue_wait`` identifies
an item the way wait channels do (``sleepq.wchan_key``: a handle's offset, an int,
a string); items without such an identity (a callable, say) can be queued but not
waited for one by one.  ``workqueue_create`` returns the queue and raises OSError
instead of returning an errno, and CPUs are indices where NetBSD passes a
``cpu_info``.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Callable

from hypercalls import thread, waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import kprintf
from rumpmp.rumpkern.locking import biglock, lockdebug
from rumpmp.rumpkern.locking.condvar import (
    cv_broadcast,
    cv_destroy,
    cv_init_in,
    cv_wait,
    kcondvar_t,
)
from rumpmp.rumpkern.locking.mutex import (
    IPL_HIGH,
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init_in,
)
from rumpmp.rumpkern.locking.sleepq import wchan_key
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put, dumps
from rumpmp.rumpkern.sched import kthread
from rumpmp.sys.param import PRI_COUNT, PRI_KTHREAD, PRI_NONE

WQ_MPSAFE = 0x01  # without it, work items run holding the big kernel lock
WQ_PERCPU = 0x02
_WQ_FLAGS = WQ_MPSAFE | WQ_PERCPU

# Header words of a queue's record in the kernel heap.
W_FUNC = 0  # 3 words: blob of (func, arg)
W_NWORKERS = 3
W_FLAGS = 4
W_MAGIC = 5
_HDR_WORDS = 8
WQ_MAGIC = 0x776F726B71  # "workq"

# Words of each worker's part of the record (two cache lines).
Q_HEAD = 0  # a waitq list (head, tail) of pending nodes
Q_TAIL = 1
Q_GEN = 2  # batches started + batches finished: odd while a batch runs
Q_IDLE = 3  # the worker sleeps on the condvar: enqueue must wake it
Q_DYING = 4
Q_LWP = 5  # the worker's lwp id; 0 if rump faked the thread (threads off)
Q_MTX = 6  # offset and generation of the mutex's lock record
Q_CV = 8  # offset and generation of the condvar's lock record
Q_WORDS = 16

# A node is one heap block: these words, then the item's pickle.  (One allocation
# per item: blob_put would need a second.)
N_NEXT = 0  # waitq link
N_KEY = 1  # the item's identity for workqueue_wait, 0 if it has none
N_GEN = 2  # the block's heap generation, to free it from its offset
N_LEN = 3  # length of the pickle
N_DATA = 4 * 8

_INT64 = 1 << 63


class workqueue_t(Handle):
    """A workqueue handle; pickles by reference (kernel prefix, record offset and
    generation) and is rebuilt once per process from the shared record."""

    __slots__ = ("arena", "flags", "locks", "name", "nworkers", "rec")

    def __init__(self, arena: Arena, rec: kmem.KBuf, name: str) -> None:
        w, r = arena.w, rec.offset // 8
        self.arena, self.rec, self.name = arena, rec, name
        self.nworkers, self.flags = w[r + W_NWORKERS], w[r + W_FLAGS]
        self.locks = [_locks_of(arena, self._q(i), f"{name}/{i}") for i in range(self.nworkers)]

    def __reduce__(self) -> tuple:
        return (_wq_attach, (self.arena.prefix, self.rec.offset, self.rec.gen, self.name))

    def _what(self) -> str:
        return self.name

    def _q(self, worker: int) -> int:
        """Word index of a worker's part of the record."""
        return self.rec.offset // 8 + _HDR_WORDS + worker * Q_WORDS


def _locks_of(arena: Arena, q: int, name: str) -> tuple[kmutex_t, kcondvar_t]:
    """Handles of a worker's mutex and condvar, from the lock records it names."""
    m = kmutex_t(arena, lockdebug.record_at(arena, q + Q_MTX), name)
    return m, kcondvar_t(arena, lockdebug.record_at(arena, q + Q_CV), name)


def _record_bytes(nworkers: int) -> int:
    return (_HDR_WORDS + nworkers * Q_WORDS) * 8


def _wq_attach(prefix: str, offset: int, gen: int, name: str) -> workqueue_t:
    """Unpickle a handle: this process's one workqueue_t for that record."""
    arena = Arena.attach(prefix)

    def make() -> workqueue_t:
        nworkers = arena.w[offset // 8 + W_NWORKERS]
        rec = kmem._make_kbuf(arena, offset, _record_bytes(nworkers), gen)
        return workqueue_t(arena, rec, name)

    return arena.attached(("workqueue", offset, gen), make)


def _check(wq: workqueue_t, func: str) -> None:
    """EINVAL for a queue that has been destroyed (NetBSD leaves this undefined)."""
    if not kmem.is_live(wq.arena, wq.rec) or wq.arena.w[wq.rec.offset // 8 + W_MAGIC] != WQ_MAGIC:
        raise OSError(errno.EINVAL, f"{func}: {wq.name} has been destroyed")


# -- creation and destruction ---------------------------------------------------------


def workqueue_create_in(
    arena: Arena, name: str, func: Callable, arg: object, prio: int, ipl: int, flags: int
) -> workqueue_t:
    """workqueue_create on a given kernel (boot uses it from the host)."""
    if flags & ~_WQ_FLAGS:
        raise OSError(errno.EINVAL, f"workqueue_create: unknown flags {flags & ~_WQ_FLAGS:#x}")
    if not PRI_NONE <= prio < PRI_COUNT or not 0 <= ipl <= IPL_HIGH:
        raise OSError(errno.EINVAL, f"workqueue_create: bad prio {prio} or ipl {ipl}")
    if not callable(func):
        raise OSError(errno.EINVAL, f"workqueue_create: {func!r} is not callable")
    nworkers = arena.ncpu if flags & WQ_PERCPU else 1
    rec = kmem.kmem_zalloc_in(arena, _record_bytes(nworkers))
    w, r = arena.w, rec.offset // 8
    w[r + W_NWORKERS], w[r + W_FLAGS] = nworkers, flags
    try:
        blob_put(arena, (func, arg), r + W_FUNC)
        for i in range(nworkers):
            q = r + _HDR_WORDS + i * Q_WORDS
            m = mutex_init_in(arena, ipl=ipl)
            w[q + Q_MTX], w[q + Q_MTX + 1] = m.rec.offset, m.rec.gen
            cv = cv_init_in(arena)
            w[q + Q_CV], w[q + Q_CV + 1] = cv.rec.offset, cv.rec.gen
        w[r + W_MAGIC] = WQ_MAGIC
        wq = _wq_attach(arena.prefix, rec.offset, rec.gen, name)
        _start_workers(wq, PRI_KTHREAD if prio == PRI_NONE else prio)
    except OSError:
        _teardown(arena, rec, name)
        raise
    return wq


def _start_workers(wq: workqueue_t, prio: int) -> None:
    percpu = wq.flags & WQ_PERCPU
    for i in range(wq.nworkers):
        lid = kthread.kthread_create_in(
            wq.arena,
            prio,
            kthread.KTHREAD_MPSAFE | kthread.KTHREAD_MUSTJOIN,
            i if percpu else None,
            _worker,
            (wq, i),
            f"{wq.name}/{i}" if percpu else wq.name,
        )
        wq.arena.w[wq._q(i) + Q_LWP] = lid  # 0: rump faked it (threads off)


def workqueue_create(
    name: str, func: Callable[[object, object], None], arg: object, prio: int, ipl: int, flags: int
) -> workqueue_t:
    """workqueue_create(9): a queue whose workers run ``func(wk, arg)`` for each item.

    Workers are kernel threads at priority ``prio`` (PRI_NONE: PRI_KTHREAD); the
    queue's mutexes are initialised at ``ipl``.  ``flags``: WQ_MPSAFE, WQ_PERCPU
    (one worker bound to each CPU).  rumpmp returns the new queue instead of
    filling in a ``struct workqueue **`` and raises OSError (EINVAL for bad
    arguments, or the error of the allocation that failed) instead of returning it.
    """
    return workqueue_create_in(_arena.current(), name, func, arg, prio, ipl, flags)


def workqueue_destroy(wq: workqueue_t) -> None:
    """workqueue_destroy(9): let the workers finish every queued item, join them and
    free the queue.  NetBSD leaves enqueueing during destroy undefined; so does
    rumpmp.  Called from one of the queue's own workers: EDEADLK."""
    _check(wq, "workqueue_destroy")
    arena, w = wq.arena, wq.arena.w
    if thread.curlwp() in {w[wq._q(i) + Q_LWP] for i in range(wq.nworkers)}:
        raise OSError(errno.EDEADLK, f"workqueue_destroy: called from a worker of {wq.name}")
    for i, (m, cv) in enumerate(wq.locks):
        mutex_enter(m)
        w[wq._q(i) + Q_DYING] = 1
        w[wq._q(i) + Q_IDLE] = 0
        cv_broadcast(cv)
        mutex_exit(m)
    _teardown(arena, wq.rec, wq.name)


def _teardown(arena: Arena, rec: kmem.KBuf, name: str) -> None:
    """Join the workers and free everything a (possibly half-made) queue holds."""
    w, r = arena.w, rec.offset // 8
    for i in range(w[r + W_NWORKERS]):
        q = r + _HDR_WORDS + i * Q_WORDS
        if w[q + Q_LWP]:
            kthread.kthread_join(w[q + Q_LWP])
        _free_nodes(arena, waitq.take_all(w, q + Q_HEAD))  # left only where no worker ran
        # A half-made queue has no locks past the failure.
        if w[q + Q_MTX]:
            mutex_destroy(kmutex_t(arena, lockdebug.record_at(arena, q + Q_MTX), name))
        if w[q + Q_CV]:
            cv_destroy(kcondvar_t(arena, lockdebug.record_at(arena, q + Q_CV), name))
    if w[r + W_FUNC]:
        blob_free(arena, r + W_FUNC)
    w[r + W_MAGIC] = 0
    arena.cache.pop(("workqueue", rec.offset, rec.gen), None)
    kmem.kmem_free_in(arena, rec, len(rec))


# -- enqueueing -----------------------------------------------------------------------


def _key(wk: object, func: str = "") -> int:
    """The item's identity for workqueue_wait, as an int64.  An item without one gets
    0 (it can be queued, not waited for), or EINVAL when ``func`` needs it."""
    try:
        key = wchan_key(wk)
    except TypeError:
        if not func:
            return 0
        raise OSError(errno.EINVAL, f"{func}: {wk!r} cannot be identified") from None
    return key if -_INT64 <= key < _INT64 else hash(key) or 1


def _target(wq: workqueue_t, ci: int | None) -> int:
    """The worker an item for CPU ``ci`` goes to; EINVAL where NetBSD asserts."""
    if not wq.flags & WQ_PERCPU:
        if ci is not None:
            raise OSError(errno.EINVAL, f"workqueue_enqueue: {wq.name} is not WQ_PERCPU")
        return 0
    cpu = _arena.here.cpu if ci is None else ci
    if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < wq.nworkers:
        where = "the host is no CPU" if ci is None else f"no cpu{ci}"
        raise OSError(errno.EINVAL, f"workqueue_enqueue: {where}")
    return cpu


def workqueue_enqueue(wq: workqueue_t, wk: object, ci: int | None) -> None:
    """workqueue_enqueue(9): queue ``wk``; the worker will run ``func(wk, arg)``.

    With WQ_PERCPU the item goes to the worker of CPU ``ci``, or of the current CPU
    if ``ci`` is None; without it ``ci`` must be None (NetBSD asserts, rumpmp
    raises EINVAL).  A queue whose thread rump faked (threads off) raises ENXIO.
    """
    _check(wq, "workqueue_enqueue")
    i = _target(wq, ci)
    arena, w = wq.arena, wq.arena.w
    q = wq._q(i)
    if not w[q + Q_LWP]:
        raise OSError(errno.ENXIO, f"workqueue_enqueue: {wq.name} has no worker (threads off)")
    data = dumps(wk)
    node = kmem.kmem_alloc_in(arena, N_DATA + len(data))
    off = node.offset
    n = off // 8
    w[n + N_NEXT], w[n + N_KEY], w[n + N_GEN], w[n + N_LEN] = 0, _key(wk), node.gen, len(data)
    arena.buf[off + N_DATA : off + N_DATA + len(data)] = data
    m, cv = wq.locks[i]
    mutex_enter(m)
    waitq.append(w, q + Q_HEAD, n, N_NEXT)
    if w[q + Q_IDLE]:  # wake the worker only when it sleeps: a busy one finds the item
        w[q + Q_IDLE] = 0
        cv_broadcast(cv)  # the condvar is shared with workqueue_wait: signal could miss
    mutex_exit(m)


# -- the worker -----------------------------------------------------------------------


def _take_node(arena: Arena, n: int) -> object:
    """Unpickle and free the node at word ``n``: its item."""
    w, off = arena.w, n * 8
    size = w[n + N_LEN]
    item = pickle.loads(arena.buf[off + N_DATA : off + N_DATA + size])
    _free_node(arena, n)
    return item


def _free_node(arena: Arena, n: int) -> None:
    size = N_DATA + arena.w[n + N_LEN]
    kmem.kmem_free_in(arena, kmem._make_kbuf(arena, n * 8, size, arena.w[n + N_GEN]), size)


def _free_nodes(arena: Arena, first: int) -> None:
    for n in waitq.chain(arena.w, first, N_NEXT):
        _free_node(arena, n)


def _worker(arg: tuple[workqueue_t, int]) -> None:
    """Body of a worker: run batches in order until the queue is destroyed and drained."""
    wq, i = arg
    arena, w = wq.arena, wq.arena.w
    func, farg = blob_get(arena, wq.rec.offset // 8 + W_FUNC)
    m, cv = wq.locks[i]
    q = wq._q(i)
    mutex_enter(m)
    while True:
        if not w[q + Q_HEAD]:
            if w[q + Q_DYING]:
                break
            w[q + Q_IDLE] = 1
            cv_wait(cv, m)
            continue
        batch = waitq.take_all(w, q + Q_HEAD)
        w[q + Q_GEN] += 1  # odd: a batch runs
        mutex_exit(m)
        for n in waitq.chain(w, batch, N_NEXT):
            ok, e = biglock.call(wq.flags & WQ_MPSAFE, func, _take_node(arena, n), farg)
            if not ok:  # nobody waits for a work item: dmesg says what it raised
                entry.report(arena, f"work item of {wq.name}", e)  # type: ignore[arg-type]
        mutex_enter(m)
        w[q + Q_GEN] += 1
        cv_broadcast(cv)  # workqueue_wait callers look again (cheap if there are none)
    mutex_exit(m)


# -- waiting --------------------------------------------------------------------------


def _pending(w: memoryview, q: int, key: int) -> bool:
    return any(w[n + N_KEY] == key for n in waitq.items(w, q + Q_HEAD, N_NEXT))


def workqueue_wait(wq: workqueue_t, wk: object) -> None:
    """workqueue_wait(9): return once ``wk`` is neither queued nor running.

    ``wk`` is identified by ``sleepq.wchan_key`` (an int, string or kernel handle;
    EINVAL for anything else), so items with the same identity are waited for
    together.  As in NetBSD, a batch that is running is waited for as a whole, the
    caller must not enqueue ``wk`` again meanwhile, and a worker waiting on its own
    queue returns at once rather than deadlock.
    """
    _check(wq, "workqueue_wait")
    key = _key(wk, "workqueue_wait")
    w, me = wq.arena.w, thread.curlwp()
    for i, (m, cv) in enumerate(wq.locks):
        q = wq._q(i)
        if me and w[q + Q_LWP] == me:
            continue
        mutex_enter(m)
        found = False
        while _pending(w, q, key):
            found = True
            cv_wait(cv, m)
        gen = w[q + Q_GEN]
        while gen & 1 and w[q + Q_GEN] == gen:
            cv_wait(cv, m)
        mutex_exit(m)
        if found:
            return


# -- aiodoned -------------------------------------------------------------------------


def _aiodone(wk: object, _: object) -> None:
    """Stand-in for the seed's rump_aiodone_worker (uvm_aio_aiodone): an item with a
    ``b_iodone`` attribute is a buf, completed as ``wk.b_iodone(wk)``; rumpmp has no
    block I/O yet, so a callable item is the completion itself and is called.
    Anything else is logged and dropped."""
    if hasattr(wk, "b_iodone"):
        wk.b_iodone(wk)
    elif callable(wk):
        wk()
    else:
        kprintf(_arena.current(), f"aiodoned: {wk!r} is no buf and no callable\n")


def aiodoned_create(arena: Arena) -> workqueue_t:
    """The seed's "aiodoned" queue, made at boot when threads are on (prio 0, ipl 0,
    WQ_MPSAFE, as in rump.c)."""
    wq = workqueue_create_in(arena, "aiodoned", _aiodone, None, 0, 0, WQ_MPSAFE)
    blob_put(arena, wq, _arena.H_AIODONED)
    return wq


def aiodoned_in(arena: Arena) -> workqueue_t:
    """The aiodoned queue of a given kernel; ENXIO when threads are off."""
    if not arena.w[_arena.H_AIODONED]:
        raise OSError(errno.ENXIO, "no aiodoned queue: kernel threads are off")
    return blob_get(arena, _arena.H_AIODONED, cache=True)


def aiodoned() -> workqueue_t:
    """The kernel's aiodoned queue (``uvm.aiodone_queue``):
    ``workqueue_enqueue(aiodoned(), callback, None)``.  ENXIO when threads are off."""
    return aiodoned_in(_arena.current())
