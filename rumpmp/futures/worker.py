"""The kernel side of the Executor: a worker thread on each CPU serving the task
queue (``rumpmp.futures.layout``), and the helpers ``map`` and ``initializer`` run.

A worker takes the next tasks off the queue (as many at once as its share of the
queue, when tasks are short: thousands of tiny tasks then cost a few dozen trips to
the queue's lock), runs each as kernel code, leaves its result in its record and
posts whoever waits for it.  With nothing queued it waits keeping its CPU for a
moment, if no other lwp wants the CPU, then parked.  Kernel code: it reaches the
host only through hypercalls.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypercalls import clock, sync, thread, waitq
from rumpmp.futures.layout import (
    DONE,
    Q_ASLEEP,
    Q_COLLECTOR,
    Q_DONE,
    Q_LOCK,
    Q_QUEUED,
    Q_STOP,
    Q_TASK_NS,
    Q_TASKS,
    Q_WORKERS,
    QUEUE_BYTES,
    RESULT_BYTES,
    RUNNING,
    T_CPU,
    T_ENTRY,
    T_NEXT,
    T_NS,
    T_RESULT,
    T_START,
    T_STATE,
    T_WAITER,
    TAKEN,
    WK_IDLE,
    WK_PARK,
    WK_WORDS,
)
from rumpmp.kern import cpu_index
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.entry import KthreadExit
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import unpickled_function
from rumpmp.rumpkern.mem.kmem import KBuf
from rumpmp.rumpkern.sched import hostcall, kthread, scheduler
from rumpmp.sys.lwp import L_PARK

#: The most tasks a worker takes at once, and about how long a batch should run
#: (long tasks go one at a time: a CPU that dies then takes only one down).
BATCH_MAX = 512
BATCH_NS = 2_000_000


def new_queue() -> tuple[KBuf, list[int]]:
    """A task queue in the kernel heap and a worker on every CPU serving it: the
    queue's buffer (its header is at word ``offset // 8``) and the workers' lwps."""
    arena = _arena.current()
    buf = kmem.kmem_zalloc_in(arena, QUEUE_BYTES)
    q = buf.offset // 8
    arena.w[q + Q_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    flags = kthread.KTHREAD_MPSAFE | kthread.KTHREAD_MUSTJOIN
    lids = [
        kthread.kthread_create_in(arena, 0, flags, cpu, work, q, f"executor{cpu}")
        for cpu in range(arena.ncpu)
    ]
    return buf, lids


def end_queue(buf: KBuf, lids: list[int]) -> None:
    """Stop a queue's workers, wait for them to leave, and free the queue."""
    arena = _arena.current()
    w, q = arena.w, buf.offset // 8
    w[q + Q_STOP] = 1
    for cpu in range(arena.ncpu):
        park = w[q + Q_WORKERS + cpu * WK_WORDS + WK_PARK]
        if park:
            arena.pool.unpark(park)
    for lid in lids:
        kthread.kthread_join(lid)
    queue_lock(arena, q).destroy()
    kmem.kmem_free_in(arena, buf, QUEUE_BYTES)


def queue_lock(arena: Arena, q: int) -> sync.Mutex:
    """The spin mutex of the queue at word ``q``, attached once per process (keyed
    by its slot too: a later queue may take the same words)."""
    slot = arena.w[q + Q_LOCK]
    return arena.attached(
        ("taskq", q, slot), lambda: sync.Mutex.attach(arena.pool, slot, sync.MTX_SPIN)
    )


def work(q: int) -> None:
    """Body of a worker: run the queue's tasks until the queue stops or the kernel does."""
    arena = _arena.current()
    cpu = _arena.here.cpu
    w = arena.w
    lock = queue_lock(arena, q)
    wk = q + Q_WORKERS + cpu * WK_WORDS
    park = w[tables(arena).lwp(thread.curlwp()) + L_PARK]
    w[wk + WK_PARK] = park
    wanted = scheduler.wanted_by_others(arena, cpu)

    def stopping() -> bool:
        return bool(w[q + Q_STOP]) or w[_arena.H_STATE] != _arena.RUNNING

    def woken() -> bool:
        return not w[wk + WK_IDLE] or stopping()

    def more() -> bool:
        return bool(w[q + Q_QUEUED]) or stopping()

    while not stopping():
        batch = _take(arena, q, cpu, lock)
        for r in batch:
            _run(arena, q, r, cpu, lock)
        if batch or (thread.spin_until(lambda: more() or wanted()) and more()):
            continue  # (the spin kept the CPU: nobody else wanted it)
        lock.enter_nowrap()
        if not w[q + Q_QUEUED]:
            w[wk + WK_IDLE] = 1
        lock.exit()
        arena.pool.park_spinning(park, woken)  # the CPU released


def _take(arena: Arena, q: int, cpu: int, lock: sync.Mutex) -> list[int]:
    """The next tasks for this worker, marked taken: its share of the queue, as many
    as run in about BATCH_NS (one until a task has been timed)."""
    w = arena.w
    queued, task_ns = w[q + Q_QUEUED], w[q + Q_TASK_NS]
    if not queued:
        return []
    share = max(1, min(BATCH_MAX, queued // arena.ncpu, BATCH_NS // task_ns if task_ns else 1))
    batch: list[int] = []
    lock.enter_nowrap()
    while len(batch) < share and (r := waitq.pop(w, q + Q_TASKS, T_NEXT)):
        w[r + T_STATE], w[r + T_CPU] = TAKEN, cpu
        batch.append(r)
    w[q + Q_QUEUED] -= len(batch)
    lock.exit()
    return batch


def _run(arena: Arena, q: int, r: int, cpu: int, lock: sync.Mutex) -> None:
    """Run task ``r``, leave its result in its record, and tell whoever waits."""
    w = arena.w
    w[r + T_STATE] = RUNNING
    start = clock.monotonic_ns()
    try:
        result = hostcall.run(arena, cpu, hostcall.apply_entry, r + T_ENTRY)
    except KthreadExit as e:  # the task asked to end its thread: the worker goes on
        result = (True, e.ecode)
    ns = clock.monotonic_ns() - start
    kthread.publish(arena, r + T_RESULT, result, RESULT_BYTES)
    w[r + T_START], w[r + T_NS] = start, ns
    task_ns = w[q + Q_TASK_NS]  # (racy between workers: it only sizes batches)
    w[q + Q_TASK_NS] = ns if not task_ns else task_ns + (ns - task_ns) // 5
    lock.enter_nowrap()
    w[r + T_STATE] = DONE
    waitq.append(w, q + Q_DONE, r, T_NEXT)  # the host gives the record back from there
    wake = w[r + T_WAITER]
    if not wake and w[q + Q_ASLEEP]:  # nobody waits for it: the collector delivers it
        w[q + Q_ASLEEP] = 0
        wake = w[q + Q_COLLECTOR]
    lock.exit()
    if wake:
        arena.pool.unpark(wake)


# -- what the host's map and initializer run --------------------------------------------


def map_chunk(fn: bytes, chunk: list[Any], star: bool) -> tuple[list[Any], BaseException | None]:
    """One chunk of Executor.map: ``fn`` (a pickled function) applied to each item
    (to each tuple of items, with ``star``), at C speed; the results up to the first
    item that raises, and what it raised (map raises it in its place and goes no
    further)."""
    func = unpickled_function(_arena.current(), fn)
    results: list[Any] = []
    apply = itertools.starmap if star else map
    ok, error = entry.call(results.extend, apply(func, chunk))  # (extend keeps what came)
    return results, None if ok else entry.portable(error, cpu_index())  # type: ignore[arg-type]


def initialize(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
    """Cross-call: the Executor's initializer, once on each CPU."""
    initializer(*initargs)
