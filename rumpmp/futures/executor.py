"""``KernelExecutor``: a concurrent.futures Executor whose workers are a kernel's CPUs.

Host side.  Each CPU has a worker thread of the kernel (``rumpmp.futures.worker``)
taking tasks off a queue in the kernel heap (``rumpmp.futures.layout``).  ``submit``
writes the task into a free record and queues it: no call into the kernel, no host
thread in between.  ``Future.result`` waits on the task's record itself and the
worker posts the waiting thread.  Finished tasks go on a done list, which one host
thread (or a submit that finds no free record) empties: it sets the futures nobody
waited for (done-callbacks and ``as_completed`` rely on it) and gives the records
back.  Tasks beyond the records wait in the host, in order.

A CPU that dies panics its kernel.  Each task's state is in its record: the task
that was running on the dead CPU fails with ``CPUDied``; tasks done keep their
results; tasks queued, taken but not started, or running on another CPU (the panic
cut those short: they may run twice) go back to the queue, in order.  With
``on_cpu_death="restart"`` a fresh kernel is booted and the work goes on there;
with ``"break"`` every pending future fails and later submits raise, as a
ProcessPoolExecutor does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import statistics
import threading  # the Executor runs in the host: its collector is a host thread
import time  # the Executor may: it stamps tasks for stats() and restart records
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from hypercalls import clock, sync, waitq
from hypercalls.intr import hold_interrupts
from rumpmp.futures import worker
from rumpmp.futures.layout import (
    DONE,
    ENTRY_BYTES,
    FREE,
    NTASKS,
    Q_ASLEEP,
    Q_COLLECTOR,
    Q_DONE,
    Q_QUEUED,
    Q_TASKS,
    Q_WORKERS,
    QUEUED,
    RUNNING,
    T_CPU,
    T_ENTRY,
    T_NEXT,
    T_NS,
    T_RESULT,
    T_SEQ,
    T_START,
    T_STATE,
    T_WAITER,
    WK_IDLE,
    WK_PARK,
    WK_WORDS,
    task_word,
)
from rumpmp.host.kernel import Kernel, KernelHalted, boot
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import RumpPanic
from rumpmp.rumpkern.mem.blob import (
    PickledFunctions,
    dumps,
    payload_drop,
    payload_in_blob,
    payload_put,
)
from rumpmp.rumpkern.mem.kmem import KBuf
from rumpmp.rumpkern.sched.kthread import read_result

#: map() cuts its items into about this many chunks per CPU.
MAP_CHUNKS_PER_CPU = 2
#: How many recent tasks stats() summarises.
SAMPLES = 10_000
#: The longest the collector sleeps without looking at the executor's state (s).
COLLECTOR_POLL = 0.1
POLICIES = ("restart", "break")
#: What touching a kernel's queue raises once the kernel has stopped: its locks are
#: gone, and its memory is the host's copy of the part in front of the heap.
GONE = (sync.Shutdown, IndexError)


class CPUDied(BrokenProcessPool):
    """The CPU a task was running on died (it is a BrokenProcessPool, so handlers
    written for ProcessPoolExecutor catch it)."""

    def __init__(self, cpu: int, cause: str, task: str) -> None:
        super().__init__(f"cpu{cpu} died ({cause}) while running {task}")
        self.cpu, self.cause, self.task = cpu, cause, task


class _Future(concurrent.futures.Future):
    """A task's future: ``result`` and ``exception`` wait on the task's record.  It
    stays pending until its outcome is set (``running()`` is never true)."""

    _executor: KernelExecutor

    def __init__(self, item: _Item) -> None:
        super().__init__()
        self._item = item

    def result(self, timeout: float | None = None) -> Any:
        return super().result(self._executor._wait(self._item, timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return super().exception(self._executor._wait(self._item, timeout))

    def cancel(self) -> bool:
        """Cancel the task if it has not been taken by a worker yet."""
        if not self.done() and not self._executor._unqueue(self._item):
            return False
        return super().cancel()


class _Item:
    """A task, from submit to its outcome."""

    __slots__ = ("args", "fn", "future", "kwargs", "queued", "seq", "settled", "waited", "where")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict | None, seq: int) -> None:
        self.fn, self.args, self.seq = fn, args, seq
        self.kwargs = kwargs or None  # None for none: the task then pickles as plain data
        self.future = _Future(self)
        self.queued = clock.monotonic_ns()
        # (queue, word of its task record) once it has one: None while it waits in the
        # host.  One attribute, read at once: a kernel's stop may clear it any time.
        self.where: tuple[_Queue, int] | None = None
        self.settled = False  # its outcome is taken (by a waiter, the collector or a stop)
        self.waited = False  # a host thread waits on its record

    def describe(self) -> str:
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"{name}{self.args!r}"[:200]


@dataclass
class _Queue:
    """The task queue in one kernel."""

    kernel: Kernel
    arena: Arena
    buf: KBuf
    workers: list[int]
    q: int = field(init=False)  # word of its header
    lock: sync.Mutex = field(init=False)

    def __post_init__(self) -> None:
        self.q = self.buf.offset // 8
        self.lock = worker.queue_lock(self.arena, self.q)


class KernelExecutor(concurrent.futures.Executor):
    """An Executor that runs tasks on the CPUs of a rump kernel.

    ``max_workers`` is the number of CPUs of the kernel it boots (default: the host's
    CPUs); with ``kernel=`` it uses a running kernel and never halts it (a CPU death
    then breaks the pool: the kernel is not the executor's to replace).
    ``initializer(*initargs)`` runs once on each CPU, again after a restart.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        kernel: Kernel | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        on_cpu_death: str = "restart",
    ) -> None:
        _check_args(max_workers, kernel, initializer, initargs, on_cpu_death)
        self._own = kernel is None
        self._policy = on_cpu_death if self._own else "break"
        self._initializer, self._initargs = initializer, initargs
        self._lock = threading.Lock()
        self._items: dict[int, _Item] = {}  # by record
        self._free: list[int] = []
        self._backlog: collections.deque[_Item] = collections.deque()
        self._seq = itertools.count()
        self._functions = PickledFunctions()
        self._shutdown = False
        self._broken: BrokenProcessPool | None = None
        self._down = False  # the kernel stopped under the executor: the collector acts
        self._ending: BaseException | None = None  # why what is left fails, once it does
        self._generation = 0
        self._tasks_per_cpu: list[int] = []
        self._waits: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._runs: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._deaths: list[dict[str, Any]] = []
        self._undelivered: list[tuple[_Item, tuple[bool, object]]] = []
        k = kernel if kernel is not None else boot(max_workers)
        try:
            self._queue, self._free = self._open(k)
        except BaseException:
            if self._own:
                k.halt()
            raise
        self._collector = threading.Thread(
            target=self._collect, name="rumpmp-executor", daemon=True
        )
        self._collector.start()

    @property
    def kernel(self) -> Kernel:
        """The kernel the tasks run on now (a new one after a restart)."""
        return self._queue.kernel

    # -- the Executor interface ----------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> _Future:
        if not callable(fn):
            raise TypeError(f"submit: fn must be callable, not {type(fn).__name__}")
        item = _Item(fn, args, kwargs, next(self._seq))
        item.future._executor = self
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            queue, r = self._queue, 0
            if self._backlog or not self._free or self._down:
                self._backlog.append(item)
                reclaim = not self._free and not self._down
            else:
                r = self._free.pop()
                item.where, self._items[r] = (queue, r), item
                reclaim = False
        if reclaim:  # every record is taken: give back those of finished tasks
            self._reclaim(queue)
        elif r:
            self._place(queue, item, r)
        return item.future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """As Executor.map.  The items travel in chunks whatever ``chunksize`` says:
        with 1 (the default) about ``MAP_CHUNKS_PER_CPU`` chunks per CPU, each item
        still its own outcome (the results stop at the first exception, which is
        raised in its place, as with chunksize 1); a larger ``chunksize`` is the size
        of each chunk."""
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be an int of at least 1")
        star = len(iterables) != 1
        items = list(zip(*iterables, strict=False)) if star else list(iterables[0])
        if chunksize == 1:
            chunksize = max(1, -(-len(items) // (MAP_CHUNKS_PER_CPU * self.kernel.ncpu)))
        chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
        pickled = self._functions.pickle(fn)  # the chunks then pickle as plain data
        results = super().map(
            worker.map_chunk,
            itertools.repeat(pickled),
            chunks,
            itertools.repeat(star),
            timeout=timeout,
        )
        return itertools.chain.from_iterable(_unchunk(results))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
        if cancel_futures:
            self.cancel_pending()
        self._wake_collector()
        if wait:
            self._collector.join()

    @property
    def usable(self) -> bool:
        """Whether it still takes tasks (not shut down, not broken)."""
        return not self._shutdown and self._broken is None

    def cancel_pending(self) -> int:
        """Cancel the tasks no worker has taken yet; how many were."""
        with self._lock:
            items = [*self._backlog, *self._items.values()]
        return sum(item.future.cancel() for item in items)

    def stats(self) -> dict[str, Any]:
        """Tasks run per CPU, queue wait and run time (ms: median, p99), CPU deaths."""
        with self._lock:
            waits, runs = list(self._waits), list(self._runs)
            return {
                "tasks_per_cpu": list(self._tasks_per_cpu),
                "queued": len(self._backlog) + len(self._items),
                "queue_wait_ms": _summary(waits),
                "run_time_ms": _summary(runs),
                "cpu_deaths": list(self._deaths),
                "kernels": self._generation + 1,
            }

    # -- a kernel's queue -------------------------------------------------------------------

    def _open(self, kernel: Kernel) -> tuple[_Queue, list[int]]:
        """Set a kernel up for the executor: the initializer on every CPU, a task
        queue and its workers.  The queue, and its records (all free)."""
        if self._initializer is not None:
            kernel.xc_broadcast(0, worker.initialize, self._initializer, self._initargs)
        buf, lids = kernel.run(worker.new_queue)
        queue = _Queue(kernel, kernel._arena, buf, lids)
        kernel._add_stop_hook(self._stopped)
        self._tasks_per_cpu = self._tasks_per_cpu or [0] * kernel.ncpu
        return queue, [task_word(queue.q, i) for i in reversed(range(NTASKS))]

    def _close(self) -> None:
        """The executor is done: halt its kernel, or end its queue in the user's."""
        kernel = self._queue.kernel
        if kernel.state != "running":
            return
        if self._own:
            kernel.halt()
        else:
            kernel._remove_stop_hook(self._stopped)
            with contextlib.suppress(RumpPanic, KernelHalted):
                kernel.run(worker.end_queue, self._queue.buf, self._queue.workers)

    # -- tasks in records ----------------------------------------------------------------------

    def _place(self, queue: _Queue, item: _Item, r: int) -> None:
        """Write ``item`` into record ``r`` and queue it; wake a worker waiting for work."""
        arena, w, q = queue.arena, queue.arena.w, queue.q
        try:
            data = dumps((self._functions.pickle(item.fn), item.args, item.kwargs))
        except Exception as e:  # noqa: BLE001 - e.g. an argument that cannot be pickled
            with self._lock:
                item.settled = True
            _deliver(item, (False, e))
            self._give_back(queue, [r])
            return
        wake = 0
        try:
            with hold_interrupts():
                w[r + T_WAITER] = 0
                w[r + T_SEQ] = item.seq
                payload_put(arena, r + T_ENTRY, ENTRY_BYTES, data)
                queue.lock.enter_nowrap()
                w[r + T_STATE] = QUEUED
                waitq.append(w, q + Q_TASKS, r, T_NEXT)
                w[q + Q_QUEUED] += 1
                for cpu in range(arena.ncpu):
                    wk = q + Q_WORKERS + cpu * WK_WORDS
                    if w[wk + WK_IDLE]:
                        w[wk + WK_IDLE] = 0
                        wake = w[wk + WK_PARK]
                        break
                queue.lock.exit()
            if wake:
                arena.pool.unpark(wake)
        except GONE:
            pass  # the kernel stopped: _stopped has put the task back, or failed it

    def _wait(self, item: _Item, timeout: float | None) -> float | None:
        """Wait for ``item``'s task on its record (its worker posts this thread) and
        take its outcome; the time left of ``timeout`` for the future's own wait (the
        task may wait in the host, or another thread may wait on its record)."""
        where = item.where  # (checked again under the lock by _settle)
        if item.settled or where is None or item.waited:
            return timeout
        queue, r = where
        deadline = None if timeout is None else time.monotonic() + timeout
        item.waited = True
        arena, w = queue.arena, queue.arena.w
        ns = None if deadline is None else int(deadline * 1e9)  # (monotonic, as clock's)

        def done() -> bool:
            return w[r + T_STATE] == DONE or item.settled

        try:  # (no kernel lock is held: Ctrl-C may interrupt the wait as it comes)
            # The worker posts the slot it finds here when the task is done.  Read too
            # early, or by the worker of a later task once _reclaim has given the
            # record back, it only costs a post; _reclaim posts the waiter it finds.
            w[r + T_WAITER] = arena.pool.park_slot()
            arena.pool.wait_until(w[r + T_WAITER], done, ns, None, "task")
        except GONE:
            return _left(deadline)  # the kernel stopped: _stopped has taken the outcome
        finally:
            item.waited = False
        self._settle(queue, item, r)
        if self._backlog:  # tasks wait for records: give back those of finished tasks
            self._reclaim(queue)
        return _left(deadline)

    def _settle(self, queue: _Queue, item: _Item, r: int) -> None:
        """Deliver task ``r``'s outcome to ``item``'s future, unless it was already."""
        with self._lock:
            if item.settled or self._items.get(r) is not item or queue is not self._queue:
                return
            item.settled = True
            outcome = read_result(queue.arena, r + T_RESULT)  # (plain reads)
            self._count(queue.arena.w, r, item)
        _deliver(item, outcome)

    def _reclaim(self, queue: _Queue) -> int:
        """Take the finished tasks off the done list: deliver what nobody took yet
        (and wake whoever waits for it), give the records back.  How many there were
        (0 if the kernel stopped: ``_stopped`` has taken every outcome then)."""
        try:
            return self._reclaim_done(queue)
        except GONE:
            return 0

    def _reclaim_done(self, queue: _Queue) -> int:
        arena, w, q = queue.arena, queue.arena.w, queue.q
        with hold_interrupts():
            queue.lock.enter_nowrap()
            done = list(waitq.chain(w, waitq.take_all(w, q + Q_DONE), T_NEXT))
            queue.lock.exit()
        if not done:
            return 0
        outcomes = []
        with self._lock:
            if queue is not self._queue or self._down:
                return 0  # the kernel stopped: _stopped took every outcome
            for r in done:
                item = self._items[r]
                if not item.settled:
                    item.settled = True
                    outcomes.append((item, r, read_result(arena, r + T_RESULT)))
                    self._count(w, r, item)
        for item, r, outcome in outcomes:
            _deliver(item, outcome)
            if w[r + T_WAITER]:
                arena.pool.unpark(w[r + T_WAITER])  # (it sees the future settled)
        for r in done:
            if payload_in_blob(arena, r + T_RESULT):
                with contextlib.suppress(*GONE), hold_interrupts():
                    payload_drop(arena, r + T_RESULT)
            w[r + T_RESULT] = 0
        self._give_back(queue, done)
        return len(done)

    def _give_back(self, queue: _Queue, records: list[int]) -> None:
        """Return the records: to the tasks waiting in the host first, in order, the
        rest to the free list."""
        placing = []
        with self._lock:
            if queue is not self._queue or self._down:
                return  # the kernel stopped: its records went with it
            for r in records:
                del self._items[r]
                queue.arena.w[r + T_STATE] = FREE
                if self._backlog and not self._down:
                    following = self._backlog.popleft()
                    following.where, self._items[r] = (queue, r), following
                    placing.append((following, r))
                else:
                    self._free.append(r)
        for item, r in placing:
            self._place(queue, item, r)

    def _count(self, w: memoryview, r: int, item: _Item) -> None:
        """Stats of a task that ran (holding the lock)."""
        self._tasks_per_cpu[w[r + T_CPU]] += 1
        self._waits.append((w[r + T_START] - item.queued) / 1e6)
        self._runs.append(w[r + T_NS] / 1e6)

    def _unqueue(self, item: _Item) -> bool:
        """Take a task no worker has taken off the queue (or out of the backlog);
        False if it has been taken (or is done)."""
        with self._lock:
            if item.settled:
                return False
            if item.where is None:
                with contextlib.suppress(ValueError):
                    self._backlog.remove(item)
                    return True
                return False
            queue, r = item.where
        w, q = queue.arena.w, queue.q
        try:
            with hold_interrupts():
                queue.lock.enter_nowrap()
                queued = w[r + T_STATE] == QUEUED and w[r + T_SEQ] == item.seq
                if queued:
                    waitq.remove(w, q + Q_TASKS, r, T_NEXT)
                    w[q + Q_QUEUED] -= 1
                    w[r + T_STATE] = FREE
                queue.lock.exit()
        except GONE:
            return False
        if queued:
            with self._lock:
                item.settled = True
            with contextlib.suppress(*GONE), hold_interrupts():
                payload_drop(queue.arena, r + T_ENTRY)
            self._give_back(queue, [r])
        return queued

    # -- the collector ------------------------------------------------------------------------

    def _collect(self) -> None:
        """The collector thread: settle tasks nobody waits for, restart or break when
        the kernel stops under the executor, and close it once shut down and idle."""
        while True:
            with self._lock:
                queue, down = self._queue, self._down
                idle = not self._items and not self._backlog
                if self._shutdown and idle and not down:
                    break
            if down:
                if not self._recover():
                    break
                continue
            try:
                self._collect_done(queue)
            except GONE:
                continue  # the kernel is stopping: _stopped sets _down
        self._close()

    def _collect_done(self, queue: _Queue) -> None:
        """Reclaim what is on the done list, or sleep until a task nobody waits for
        finishes (or COLLECTOR_POLL passes: the records of tasks that were waited for
        come back then, or when the free ones run out)."""
        if self._reclaim(queue):
            return
        arena, w, q = queue.arena, queue.arena.w, queue.q
        with hold_interrupts():
            me = arena.pool.park_slot()
            queue.lock.enter_nowrap()
            empty = not w[q + Q_DONE]
            if empty:
                w[q + Q_COLLECTOR], w[q + Q_ASLEEP] = me, 1
            queue.lock.exit()
        if empty:
            arena.pool.park(me, COLLECTOR_POLL, wrap=False)

    def _wake_collector(self) -> None:
        queue = self._queue
        if queue.kernel.state != "running":
            return  # the kernel stopped: the collector is awake already, or gone
        # (It may stop right now: its memory is then the host's shorter copy.)
        with contextlib.suppress(*GONE):
            slot = queue.arena.w[queue.q + Q_COLLECTOR]
            if slot:
                queue.arena.pool.unpark(slot)

    # -- a kernel that stops under the executor -------------------------------------------------

    def _stopped(self, kernel: Kernel) -> None:
        """Run by the kernel as it stops, its CPUs gone and its memory still there:
        take each task's outcome from its record.  The task that was running on a
        dead CPU fails; tasks done keep their results; the rest go back in order (to
        be run on the next kernel), or fail if the pool breaks.  The futures are set
        by the collector (never from here, under the kernel's lock)."""
        panic = kernel.panic
        with self._lock:
            if self._queue.kernel is not kernel or self._down:
                return
            self._down = True
            w = self._queue.arena.w
            dead, cause = (panic.cpu, panic.cause) if panic else (-1, "the kernel halted")
            if panic is not None:
                self._deaths.append({"cpu": dead, "cause": cause, "at": time.time()})
            if panic is None or self._policy == "break" or self._shutdown:
                self._ending = _broken(dead, cause)
                if not self._shutdown:
                    self._broken = self._ending
            back = []
            for r, item in self._items.items():
                if item.settled:
                    continue
                state = w[r + T_STATE]
                if state == DONE:
                    outcome = read_result(self._queue.arena, r + T_RESULT)
                    self._count(w, r, item)
                elif state == RUNNING and w[r + T_CPU] == dead:
                    outcome = (False, CPUDied(dead, cause, item.describe()))
                elif self._ending is None:
                    item.where = None
                    back.append(item)
                    continue
                else:
                    outcome = (False, self._ending)
                item.settled = True
                self._undelivered.append((item, outcome))
            back.sort(key=lambda item: item.seq)
            self._backlog.extendleft(reversed(back))
            self._items.clear()
            self._free.clear()

    def _recover(self) -> bool:
        """After the kernel stopped: deliver what ``_stopped`` took, then go on on a
        new kernel, or fail what waits in the host if the executor is ending.  False
        once there is nothing more to do."""
        with self._lock:
            undelivered, self._undelivered = self._undelivered, []
            ending = self._ending
            failed = list(self._backlog) if ending is not None else []
            if ending is not None:
                self._backlog.clear()
        for item, outcome in undelivered:
            _deliver(item, outcome)
        for item in failed:
            item.settled = True
            _deliver(item, (False, ending))
        if ending is not None:
            return False
        try:
            queue, free = self._open(boot(self._queue.kernel.ncpu))
        except BaseException as e:  # noqa: BLE001 - no kernel to go on with: the pool breaks
            with self._lock:
                self._ending = self._broken = BrokenProcessPool(f"could not restart: {e}")
            return True
        with self._lock:
            self._queue, self._free, self._down = queue, free, False
            self._generation += 1
            placing = []
            while self._backlog and self._free:
                item, r = self._backlog.popleft(), self._free.pop()
                item.where, self._items[r] = (queue, r), item
                placing.append((item, r))
        for item, r in placing:
            self._place(queue, item, r)
        return True


def _broken(dead: int, cause: str) -> BrokenProcessPool:
    if dead >= 0:
        return CPUDied(dead, cause, "the pool")
    return BrokenProcessPool(f"the executor's kernel stopped ({cause})")


def _deliver(item: _Item, outcome: tuple[bool, object]) -> None:
    """Set ``item``'s future (never cancelled: a task is cancelled only while queued,
    and then never runs)."""
    ok, value = outcome
    if ok:
        item.future.set_result(value)
    else:
        assert isinstance(value, BaseException)
        item.future.set_exception(value)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _check_args(
    max_workers: object, kernel: object, initializer: object, initargs: object, policy: object
) -> None:
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int)
    ):
        raise TypeError(f"max_workers must be an int, not {type(max_workers).__name__}")
    if isinstance(max_workers, int) and max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    if kernel is not None and not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be a Kernel, not {type(kernel).__name__}")
    if kernel is not None and max_workers is not None:
        raise ValueError("give max_workers or kernel, not both")
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable, not {type(initializer).__name__}")
    if not isinstance(initargs, tuple):
        raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")
    if policy not in POLICIES:
        raise ValueError(f"on_cpu_death must be 'restart' or 'break', not {policy!r}")


def _summary(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"median": None, "p99": None}
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 4),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
    }


def _unchunk(
    results: Iterator[tuple[list[Any], BaseException | None]],
) -> Iterator[list[Any]]:
    """Each chunk's results, then what stopped it, raised in its place."""
    for values, error in results:
        yield values
        if error is not None:
            raise error
