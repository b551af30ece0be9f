"""The ``"rumpmp"`` joblib backend: ``Parallel`` on a kernel's CPUs.

One ``KernelExecutor`` per number of jobs is kept and reused by later ``Parallel``
calls (as loky reuses its workers), and shut down when the host exits.  joblib's own
auto-batching groups tasks; the executor batches again under it.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os  # host side: the number of host CPUs for n_jobs=-1
from collections.abc import Callable
from typing import Any

from joblib import register_parallel_backend
from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase

from rumpmp.futures.executor import KernelExecutor

_executors: dict[int, KernelExecutor] = {}


def _executor(n_jobs: int) -> KernelExecutor:
    ex = _executors.get(n_jobs)
    if ex is None or not ex.usable:
        ex = _executors[n_jobs] = KernelExecutor(n_jobs)
    return ex


@atexit.register
def shutdown_all() -> None:
    for ex in _executors.values():
        ex.shutdown(wait=True, cancel_futures=True)
    _executors.clear()


class RumpBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend whose workers are the CPUs of a rump kernel.

    It leaves ``supports_retrieve_callback`` off: joblib's main thread then blocks on
    each batch's future instead of polling every 10 ms, the floor of every call of a
    backend with the callback (loky's included).  ``return_as="generator"`` needs the
    callback, so it is not offered."""

    supports_retrieve_callback = False
    supports_timeout = True

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max(len(os.sched_getaffinity(0)) + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, **backend_args: Any) -> int:
        n = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        self._ex = _executor(n)
        return n

    def submit(
        self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None
    ) -> concurrent.futures.Future:
        future = self._ex.submit(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result(self, out: concurrent.futures.Future, timeout: float | None = None) -> Any:
        return out.result(timeout)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A task failed: drop the tasks not started yet (the kernel stays up)."""
        self._ex.cancel_pending()


def register() -> None:
    register_parallel_backend("rumpmp", RumpBackend)
