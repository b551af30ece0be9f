"""threadpool(9) (kern_threadpool.c): pools of kernel threads that run jobs.

There is one unbound pool per priority, shared by every caller and counted
(``threadpool_get``/``threadpool_put``), and one set of per-CPU pools per priority
(``threadpool_percpu_*``), whose threads are bound to their CPU.  A pool is a queue
of jobs and its worker kthreads, in the kernel heap under the pool's mutex; a
worker is started when a job is scheduled and no worker is idle (up to
``MAX_THREADS``), and leaves after ``IDLE_TICKS`` without work.

A job belongs to its caller, who serialises it with the job's lock, as NetBSD's
caller does: ``threadpool_schedule_job`` queues it unless it is queued or running
already, a worker runs ``fn(job)``, and ``fn`` calls ``threadpool_job_done`` with the
lock held.  ``threadpool_cancel_job_async`` takes a queued job off its queue (and
says False if it is running); ``threadpool_cancel_job`` then waits for it to finish.
A ``fn`` that raises is reported in dmesg and its job marked done.

rumpmp differs from NetBSD in the call shape, as mutex_init does: the *_get calls
and ``threadpool_job_init`` return what NetBSD fills in.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.args import int_arg
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.locking import lockdebug
from rumpmp.rumpkern.locking.condvar import (
    cv_broadcast,
    cv_destroy,
    cv_init,
    cv_signal,
    cv_timedwait,
    cv_wait,
    kcondvar_t,
)
from rumpmp.rumpkern.locking.mutex import (
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init,
    mutex_init_in,
    mutex_owned,
)
from rumpmp.rumpkern.locking.sleepq import kpause
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.rumpkern.sched.kthread import KTHREAD_MPSAFE, kthread_create
from rumpmp.sys.param import PRI_KTHREAD, PRI_NONE

PRI_KERNEL_RT = 192  # NetBSD's first real-time kernel priority
MAX_THREADS = 16  # workers per pool
IDLE_TICKS = 3000  # a worker with nothing to do for this long (30 s at 100 Hz) leaves

# The registry (region "threadpool"): its lock, then an entry per (priority, kind).
G_LOCK = 0  # the lock's record: offset, generation
NENTRIES = 32
E_KEY = 0  # priority + 2 (0: free entry); + 1000 for a per-CPU set
E_REFS = 1
E_BLOB = 2  # 3 words: the pickled handle
_E_WORDS = 5
REGION = ("threadpool", (2 + NENTRIES * _E_WORDS) * 8)

# Pool record words.
P_QUEUE = 0  # 2 words: the waitq of job records
P_IDLE = 2
P_NTHREADS = 3
P_DYING = 4
_P_WORDS = 8

# Job record words.
J_STATE = 0
J_LINK = 1  # waitq link
J_QUEUED_ON = 2  # the pool record (word index) whose queue holds it, or 0
J_REFS = 3  # workers holding the record between their queue and its lock
J_FUNC = 4  # 3 words: blob of (fn, lock, cv, name)
J_GEN = 7  # the record's heap generation: a worker rebuilds the job's handle from it
_J_WORDS = 8
IDLE, QUEUED, RUNNING = 0, 1, 2


def threadpool_init(arena: Arena) -> None:
    """The registry's lock (the host, at boot)."""
    lock = mutex_init_in(arena, name="threadpools")
    r = arena.region_word("threadpool")
    arena.w[r + G_LOCK], arena.w[r + G_LOCK + 1] = lock.rec.offset, lock.rec.gen


def _registry_lock(arena: Arena) -> kmutex_t:
    def attach() -> kmutex_t:
        lock = lockdebug.record_at(arena, arena.region_word("threadpool") + G_LOCK)
        return kmutex_t(arena, lock, "threadpools")

    return arena.attached("threadpools", attach)


class threadpool_t(Handle):
    """A pool: its record, lock and condvar, the CPU its threads are bound to (None
    for an unbound pool) and their priority; pickles by reference."""

    __slots__ = ("arena", "ci", "cv", "lock", "pri", "rec")

    def __init__(
        self, arena: Arena, rec: kmem.KBuf, lock: kmutex_t, cv: kcondvar_t, ci: int | None, pri: int
    ) -> None:
        self.arena, self.rec, self.lock, self.cv, self.ci, self.pri = arena, rec, lock, cv, ci, pri

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.lock, self.cv, self.ci, self.pri)

    def _what(self) -> str:
        return f"pri {self.pri}" + ("" if self.ci is None else f" cpu{self.ci}")


class threadpool_percpu_t(Handle):
    """A pool per CPU (NetBSD's struct threadpool_percpu)."""

    __slots__ = ("pools", "pri")

    def __init__(self, pools: list[threadpool_t], pri: int) -> None:
        self.pools, self.pri = pools, pri

    def _args(self) -> tuple:
        return (self.pools, self.pri)

    def _what(self) -> str:
        return f"pri {self.pri}, {len(self.pools)} CPUs"


class threadpool_job_t(Handle):
    """A job: its record, function, lock (the caller's) and condvar."""

    __slots__ = ("arena", "cv", "fn", "lock", "name", "rec")

    def __init__(
        self,
        arena: Arena,
        rec: kmem.KBuf,
        fn: Callable[[threadpool_job_t], None],
        lock: kmutex_t,
        cv: kcondvar_t,
        name: str,
    ) -> None:
        self.arena, self.rec, self.fn, self.lock, self.cv, self.name = (
            arena,
            rec,
            fn,
            lock,
            cv,
            name,
        )

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.fn, self.lock, self.cv, self.name)

    def _what(self) -> str:
        return self.name


def _check_pri(pri: object, func: str) -> int:
    pri = int_arg(pri, "pri", func)
    if not PRI_NONE <= pri < 1000 - 2:
        raise OSError(errno.EINVAL, f"{func}: bad priority {pri}")
    return pri


# -- pools -----------------------------------------------------------------------------


def _pool_create(arena: Arena, pri: int, ci: int | None) -> threadpool_t:
    rec = kmem.kmem_zalloc_in(arena, _P_WORDS * 8)
    return threadpool_t(arena, rec, mutex_init(), cv_init("tpool"), ci, pri)


def _pool_destroy(pool: threadpool_t) -> None:
    """Stop the pool's workers and free it; no job may be queued."""
    w, p = pool.arena.w, pool.rec.offset // 8
    mutex_enter(pool.lock)
    if w[p + P_QUEUE]:
        panic_in(pool.arena, f"threadpool_put: pool {pool._what()} has jobs queued")
    w[p + P_DYING] = 1
    cv_broadcast(pool.cv)
    while w[p + P_NTHREADS]:
        cv_wait(pool.cv, pool.lock)
    mutex_exit(pool.lock)
    cv_destroy(pool.cv)
    mutex_destroy(pool.lock)
    kmem.kmem_free_in(pool.arena, pool.rec, _P_WORDS * 8)


def _get(pri: int, percpu: bool, func: str) -> threadpool_t | threadpool_percpu_t:
    """The shared pool (or per-CPU set) of ``pri``, made on first use; counted."""
    arena = _arena.current()
    key = _check_pri(pri, func) + 2 + (1000 if percpu else 0)
    w, r = arena.w, arena.region_word("threadpool") + 2
    lock = _registry_lock(arena)
    mutex_enter(lock)
    try:
        entries = [r + i * _E_WORDS for i in range(NENTRIES)]
        for e in entries:
            if w[e + E_KEY] == key:
                w[e + E_REFS] += 1
                return blob_get(arena, e + E_BLOB, cache=True)
        free = next((e for e in entries if not w[e + E_KEY]), 0)
        if not free:
            raise OSError(errno.ENOMEM, f"{func}: all {NENTRIES} thread pools are in use")
        if percpu:
            made: threadpool_t | threadpool_percpu_t = threadpool_percpu_t(
                [_pool_create(arena, pri, ci) for ci in range(arena.ncpu)], pri
            )
        else:
            made = _pool_create(arena, pri, None)
        blob_put(arena, made, free + E_BLOB)
        w[free + E_KEY], w[free + E_REFS] = key, 1
        return made
    finally:
        mutex_exit(lock)


def _put(pri: int, percpu: bool, func: str) -> None:
    arena = _arena.current()
    key = _check_pri(pri, func) + 2 + (1000 if percpu else 0)
    w, r = arena.w, arena.region_word("threadpool") + 2
    lock = _registry_lock(arena)
    mutex_enter(lock)
    try:
        e = next((r + i * _E_WORDS for i in range(NENTRIES) if w[r + i * _E_WORDS] == key), 0)
        if not e:
            panic_in(arena, f"{func}: no pool of priority {pri} is held")
        w[e + E_REFS] -= 1
        if w[e + E_REFS]:
            return
        made = blob_get(arena, e + E_BLOB)
        blob_free(arena, e + E_BLOB)
        w[e + E_KEY] = 0
    finally:
        mutex_exit(lock)
    for pool in made.pools if percpu else [made]:
        _pool_destroy(pool)


def threadpool_get(pri: int = PRI_NONE) -> threadpool_t:
    """threadpool_get(9): the unbound pool of priority ``pri`` (every caller of one
    priority shares it); give it back with threadpool_put."""
    return _get(pri, False, "threadpool_get")  # type: ignore[return-value]


def threadpool_put(pool: threadpool_t, pri: int = PRI_NONE) -> None:
    """threadpool_put(9): drop a reference; the last one stops the pool."""
    _put(pri, False, "threadpool_put")


def threadpool_percpu_get(pri: int = PRI_NONE) -> threadpool_percpu_t:
    """threadpool_percpu_get(9): the per-CPU pools of priority ``pri``."""
    return _get(pri, True, "threadpool_percpu_get")  # type: ignore[return-value]


def threadpool_percpu_put(pcpu: threadpool_percpu_t, pri: int = PRI_NONE) -> None:
    """threadpool_percpu_put(9)."""
    _put(pri, True, "threadpool_percpu_put")


def threadpool_percpu_ref(pcpu: threadpool_percpu_t) -> threadpool_t:
    """threadpool_percpu_ref(9): this CPU's pool."""
    return pcpu.pools[_arena.here.cpu]


def threadpool_percpu_ref_remote(pcpu: threadpool_percpu_t, ci: int) -> threadpool_t:
    """threadpool_percpu_ref_remote(9): CPU ``ci``'s pool (an index here)."""
    if isinstance(ci, bool) or not isinstance(ci, int) or not 0 <= ci < len(pcpu.pools):
        raise OSError(errno.EINVAL, f"threadpool_percpu_ref_remote: no cpu{ci!r}")
    return pcpu.pools[ci]


# -- workers ----------------------------------------------------------------------------


def _worker(pool: threadpool_t) -> None:
    """A pool's thread: run queued jobs; leave when idle too long or the pool goes."""
    w, p = pool.arena.w, pool.rec.offset // 8
    mutex_enter(pool.lock)
    while True:
        j = waitq.pop(w, p + P_QUEUE, J_LINK)
        if not j:
            if w[p + P_DYING]:
                break
            w[p + P_IDLE] += 1
            timed_out = cv_timedwait(pool.cv, pool.lock, IDLE_TICKS)
            w[p + P_IDLE] -= 1
            if timed_out and not w[p + P_QUEUE]:
                break
            continue
        w[j + J_QUEUED_ON] = 0
        w[j + J_REFS] += 1  # (under the pool's lock, as every change of it)
        mutex_exit(pool.lock)
        _run(_job_at(pool.arena, j))
        mutex_enter(pool.lock)
        w[j + J_REFS] -= 1
    w[p + P_NTHREADS] -= 1
    cv_broadcast(pool.cv)  # a threadpool_put may wait for the last worker
    mutex_exit(pool.lock)


def _job_at(arena: Arena, j: int) -> threadpool_job_t:
    fn, lock, cv, name = blob_get(arena, j + J_FUNC, cache=True)
    rec = kmem.kbuf_at(arena, j * 8, _J_WORDS * 8, arena.w[j + J_GEN])
    return threadpool_job_t(arena, rec, fn, lock, cv, name)


def _run(job: threadpool_job_t) -> None:
    w, j = job.arena.w, job.rec.offset // 8
    mutex_enter(job.lock)
    # Cancelled since it was queued, or queued again (another worker will run it).
    runnable = w[j + J_STATE] == QUEUED and not w[j + J_QUEUED_ON]
    if runnable:
        w[j + J_STATE] = RUNNING
    mutex_exit(job.lock)
    if not runnable:
        return
    ok, e = entry.call(job.fn, job)
    if not ok:
        entry.report(job.arena, f"threadpool job {job.name}", e)  # type: ignore[arg-type]
        mutex_enter(job.lock)
        if w[j + J_STATE] == RUNNING:
            threadpool_job_done(job)
        mutex_exit(job.lock)


# -- jobs ---------------------------------------------------------------------------------


def threadpool_job_init(
    fn: Callable[[threadpool_job_t], None], lock: kmutex_t, name: str = "job"
) -> threadpool_job_t:
    """threadpool_job_init(9): a job that runs ``fn(job)``, serialised by ``lock``."""
    if not callable(fn):
        raise TypeError(f"threadpool_job_init: fn must be callable, not {type(fn).__name__}")
    if not isinstance(lock, kmutex_t):
        raise TypeError(f"threadpool_job_init: lock must be a kmutex_t, not {type(lock).__name__}")
    arena = _arena.current()
    rec = kmem.kmem_zalloc_in(arena, _J_WORDS * 8)
    cv = cv_init(name)
    blob_put(arena, (fn, lock, cv, name), rec.offset // 8 + J_FUNC)
    arena.w[rec.offset // 8 + J_GEN] = rec.gen
    return threadpool_job_t(arena, rec, fn, lock, cv, name)


def _held(job: threadpool_job_t, func: str) -> int:
    if not mutex_owned(job.lock):
        panic_in(job.arena, f"{func}: the job's lock is not held")
    return job.rec.offset // 8


def threadpool_job_done(job: threadpool_job_t) -> None:
    """threadpool_job_done(9): from the job's function, with its lock held: it has
    finished (it may be scheduled again)."""
    j = _held(job, "threadpool_job_done")
    job.arena.w[j + J_STATE] = IDLE
    cv_broadcast(job.cv)


def threadpool_schedule_job(pool: threadpool_t, job: threadpool_job_t) -> None:
    """threadpool_schedule_job(9): with the job's lock held, queue it on ``pool``
    unless it is queued or running already."""
    j = _held(job, "threadpool_schedule_job")
    w, p = pool.arena.w, pool.rec.offset // 8
    if w[j + J_STATE] != IDLE:
        return
    w[j + J_STATE] = QUEUED
    mutex_enter(pool.lock)
    waitq.append(w, p + P_QUEUE, j, J_LINK)
    w[j + J_QUEUED_ON] = p
    start = not w[p + P_IDLE] and w[p + P_NTHREADS] < MAX_THREADS
    if start:
        w[p + P_NTHREADS] += 1
    else:
        cv_signal(pool.cv)
    mutex_exit(pool.lock)
    if start:
        where = "" if pool.ci is None else f"/{pool.ci}"
        pri = PRI_KTHREAD if pool.pri == PRI_NONE else pool.pri
        kthread_create(pri, KTHREAD_MPSAFE, pool.ci, _worker, pool, f"poolthread{where}")


def threadpool_cancel_job_async(pool: threadpool_t, job: threadpool_job_t) -> bool:
    """threadpool_cancel_job_async(9): with the job's lock held, take it off the
    queue if it has not started; False if it is running."""
    j = _held(job, "threadpool_cancel_job_async")
    w = job.arena.w
    state = w[j + J_STATE]
    if state == RUNNING:
        return False
    if state == QUEUED:
        p = pool.rec.offset // 8
        mutex_enter(pool.lock)
        if w[j + J_QUEUED_ON] == p:
            waitq.remove(w, p + P_QUEUE, j, J_LINK)
            w[j + J_QUEUED_ON] = 0
        mutex_exit(pool.lock)
        w[j + J_STATE] = IDLE
    return True


def threadpool_cancel_job(pool: threadpool_t, job: threadpool_job_t) -> None:
    """threadpool_cancel_job(9): with the job's lock held, cancel it, or wait for it
    to finish if it is running."""
    if threadpool_cancel_job_async(pool, job):
        return
    w, j = job.arena.w, job.rec.offset // 8
    while w[j + J_STATE] != IDLE:
        cv_wait(job.cv, job.lock)


def threadpool_job_destroy(job: threadpool_job_t) -> None:
    """threadpool_job_destroy(9): free an idle job (waiting for a worker that still
    looks at it to let go)."""
    w, j = job.arena.w, job.rec.offset // 8
    if w[j + J_STATE] != IDLE:
        panic_in(job.arena, f"threadpool_job_destroy: job {job.name} is queued or running")
    while w[j + J_REFS]:
        kpause("tpjobdst", False, 1)
    cv_destroy(job.cv)
    blob_free(job.arena, j + J_FUNC)
    kmem.kmem_free_in(job.arena, job.rec, _J_WORDS * 8)
