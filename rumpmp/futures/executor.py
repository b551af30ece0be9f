"""``KernelExecutor``: a concurrent.futures Executor whose workers are a kernel's CPUs.

Host side.  Tasks wait in one queue; each CPU has ``DEPTH`` host threads that take
the next tasks as soon as the CPU can run more (so the least loaded CPU gets them)
and run them in one lwp on that CPU with ``Kernel.run``.  A thread takes as many
queued tasks at once as its share of the queue (up to ``BATCH_MAX``), so thousands
of tiny tasks travel in a few dozen calls while a lone task goes at once.

A CPU that dies panics its kernel.  The tasks that were running on that CPU fail with
``CPUDied``; the tasks running on the other CPUs, which the halt cut short, go back
to the front of the queue (so they may run twice), and queued tasks are kept.  With
``on_cpu_death="restart"`` a fresh kernel is booted and the work goes on; with
``"break"`` every pending future fails and later submits raise, as a
ProcessPoolExecutor does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import pickle
import statistics
import threading  # the Executor runs in the host: its workers are host threads
import time  # the Executor may: it times queue waits for stats()
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from rumpmp.futures import batch
from rumpmp.host.kernel import Kernel, KernelHalted, boot
from rumpmp.rumpkern.svc.prf import RumpPanic

#: Host threads per CPU: one waits for its lwp while the other hands over the next.
DEPTH = 2
#: The most tasks one kernel call carries, and the longest a batch should take to run
#: (tasks that take long go one at a time: a CPU that dies then takes only them down).
BATCH_MAX = 512
BATCH_SECONDS = 0.002
#: map() cuts its items into about this many chunks per CPU.
MAP_CHUNKS_PER_CPU = 2
#: How many recent tasks stats() summarises.
SAMPLES = 10_000
POLICIES = ("restart", "break")


class CPUDied(BrokenProcessPool):
    """The CPU a task was running on died (it is a BrokenProcessPool, so handlers
    written for ProcessPoolExecutor catch it)."""

    def __init__(self, cpu: int, cause: str, task: str) -> None:
        super().__init__(f"cpu{cpu} died ({cause}) while running {task}")
        self.cpu, self.cause, self.task = cpu, cause, task


@dataclass
class _Item:
    future: concurrent.futures.Future
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queued: float = field(default_factory=time.monotonic)
    started: bool = False  # its future is running (a requeued item stays so)

    def describe(self) -> str:
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"{name}{self.args!r}"[:200]


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
        self._kernel = kernel if kernel is not None else boot(max_workers)
        self._generation = 0
        self._cond = threading.Condition()
        self._queue: collections.deque[_Item] = collections.deque()
        self._shutdown = False
        self._broken: BrokenProcessPool | None = None
        self._tasks_per_cpu = [0] * self._kernel.ncpu
        self._waits: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._runs: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._deaths: list[dict[str, Any]] = []
        self._functions: dict[int, tuple[Callable[..., Any], bytes]] = {}
        self._task_seconds = 0.0  # a moving average of one task's run time
        try:
            self._initialize()
        except BaseException:
            if self._own:
                self._kernel.halt()
            raise
        self._threads = [
            threading.Thread(
                target=self._worker, args=(cpu,), name=f"rumpmp-executor-cpu{cpu}", daemon=True
            )
            for cpu in range(self._kernel.ncpu)
            for _ in range(DEPTH)
        ]
        self._alive = len(self._threads)
        for t in self._threads:
            t.start()

    @property
    def kernel(self) -> Kernel:
        """The kernel the tasks run on now (a new one after a restart)."""
        return self._kernel

    # -- the Executor interface ----------------------------------------------------------

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future:
        if not callable(fn):
            raise TypeError(f"submit: fn must be callable, not {type(fn).__name__}")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._broken is not None:
                raise self._broken
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append(_Item(future, fn, args, kwargs))
            self._cond.notify()
        return future

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
        items = list(zip(*iterables, strict=False))
        if chunksize == 1:
            chunksize = max(1, -(-len(items) // (MAP_CHUNKS_PER_CPU * self._kernel.ncpu)))
        chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
        results = super().map(batch.starmap, itertools.repeat(fn), chunks, timeout=timeout)
        return _unchunk(results)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
        if cancel_futures:
            self.cancel_pending()
        if wait:
            for t in self._threads:
                t.join()

    @property
    def usable(self) -> bool:
        """Whether it still takes tasks (not shut down, not broken)."""
        return not self._shutdown and self._broken is None

    def cancel_pending(self) -> int:
        """Cancel the tasks that have not started; how many were."""
        with self._cond:  # a requeued task is running already: it stays
            drop = [item for item in self._queue if not item.started]
            self._queue = collections.deque(item for item in self._queue if item.started)
        return sum(item.future.cancel() for item in drop)

    def stats(self) -> dict[str, Any]:
        """Tasks run per CPU, queue wait and run time (ms: median, p99), CPU deaths."""
        with self._cond:
            waits, runs = list(self._waits), list(self._runs)
            return {
                "tasks_per_cpu": list(self._tasks_per_cpu),
                "queued": len(self._queue),
                "queue_wait_ms": _summary(waits),
                "run_time_ms": _summary(runs),
                "cpu_deaths": list(self._deaths),
                "kernels": self._generation + 1,
            }

    # -- the workers -------------------------------------------------------------------------

    def _initialize(self) -> None:
        if self._initializer is not None:
            self._kernel.xc_broadcast(0, batch.initialize, self._initializer, self._initargs)

    def _take(self) -> list[_Item] | None:
        """The next tasks for one kernel call (None: shut down and drained)."""
        with self._cond:
            while not self._queue:
                if self._shutdown or self._broken is not None:
                    return None
                self._cond.wait()
            # Until a task has been timed, one at a time.
            by_time = BATCH_SECONDS / self._task_seconds if self._task_seconds else 1
            share = max(1, int(min(BATCH_MAX, by_time, len(self._queue) // len(self._threads))))
            items: list[_Item] = []
            while self._queue and len(items) < share:
                item = self._queue.popleft()
                if item.started or item.future.set_running_or_notify_cancel():
                    item.started = True
                    items.append(item)
            return items

    def _worker(self, cpu: int) -> None:
        try:
            self._serve(cpu)
        finally:
            with self._cond:
                self._alive -= 1
                last = not self._alive
            if last and self._own and self._kernel.state == "running":
                self._kernel.halt()  # the last worker out halts the executor's kernel

    def _serve(self, cpu: int) -> None:
        while (items := self._take()) is not None:
            if not items:
                continue
            kernel, generation = self._kernel, self._generation
            started = time.monotonic()
            try:
                tasks = [(self._pickled(i.fn), i.args, i.kwargs) for i in items]
                ran_on, outcomes = kernel.run(batch.run_batch, tasks, cpu=cpu)
            except (RumpPanic, KernelHalted) as e:
                self._cpu_died(cpu, items, generation, e)
                continue
            except BaseException as e:  # noqa: BLE001 - e.g. a task that cannot be pickled
                for item in items:
                    item.future.set_exception(e)
                continue
            self._settle(items, ran_on, outcomes, started)

    def _pickled(self, fn: Callable[..., Any]) -> bytes:
        """``fn`` pickled; a function once per executor (its bytes are the CPUs' cache
        key), another callable (a bound method, a joblib batch) each time."""
        if not isinstance(fn, types.FunctionType):
            return cloudpickle.dumps(fn, pickle.HIGHEST_PROTOCOL)
        hit = self._functions.get(id(fn))
        if hit is None or hit[0] is not fn:
            hit = (fn, cloudpickle.dumps(fn, pickle.HIGHEST_PROTOCOL))
            with self._cond:
                if len(self._functions) >= batch.FUNCTIONS:
                    del self._functions[next(iter(self._functions))]
                self._functions[id(fn)] = hit
        return hit[1]

    def _settle(
        self, items: list[_Item], cpu: int, outcomes: list[tuple[bool, Any, int]], started: float
    ) -> None:
        with self._cond:
            self._tasks_per_cpu[cpu] += len(items)
            self._waits.extend((started - i.queued) * 1e3 for i in items)
            self._runs.extend(ns / 1e6 for _, _, ns in outcomes)
            mean = sum(ns for _, _, ns in outcomes) / len(outcomes) / 1e9
            old = self._task_seconds
            self._task_seconds = max(1e-7, mean if not old else old + (mean - old) * 0.2)
        for item, (ok, value, _) in zip(items, outcomes, strict=True):
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    def _cpu_died(self, cpu: int, items: list[_Item], generation: int, e: Exception) -> None:
        """The kernel went down under a call: fail the dead CPU's tasks, put the others
        back, and restart or break (once per kernel)."""
        dead = e.cpu if isinstance(e, RumpPanic) else -1
        cause = e.cause if isinstance(e, RumpPanic) else str(e)
        with self._cond:
            if cpu == dead or self._policy == "break" or self._shutdown:
                for item in items:
                    item.future.set_exception(CPUDied(dead, cause, item.describe()))
            else:
                self._queue.extendleft(reversed(items))
            if generation != self._generation or self._broken is not None:
                return  # another worker has dealt with this kernel already
            self._deaths.append({"cpu": dead, "cause": cause, "at": time.time()})
            if self._policy == "break" or self._shutdown:
                self._break(CPUDied(dead, cause, "the pool"))
                return
            self._restart()

    def _restart(self) -> None:
        """Replace the dead kernel (called with the lock held: workers wait for it)."""
        with contextlib.suppress(RumpPanic, KernelHalted):
            self._kernel.halt()
        try:
            self._kernel = boot(self._kernel.ncpu)
            self._generation += 1
            self._initialize()
        except BaseException as e:  # noqa: BLE001 - no kernel to go on with: the pool is broken
            self._break(BrokenProcessPool(f"could not restart the kernel: {e}"))
        self._cond.notify_all()

    def _break(self, why: BrokenProcessPool) -> None:
        self._broken = why
        while self._queue:
            item = self._queue.popleft()
            if item.started or item.future.set_running_or_notify_cancel():
                item.future.set_exception(why)
        self._cond.notify_all()


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


def _unchunk(results: Iterator[tuple[list[Any], Exception | None]]) -> Iterator[Any]:
    for values, error in results:
        yield from values
        if error is not None:
            raise error
