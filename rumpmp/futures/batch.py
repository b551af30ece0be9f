"""The kernel side of the Executor: run a batch of tasks in one lwp.

A batch is a list of ``(pickled fn, args, kwargs)``; each task's outcome is reported
apart, so one task that raises fails only its own future.  A function arrives as the
bytes the host pickled once and is unpickled once per CPU process (cached by those
bytes), so a function from ``__main__``, which cloudpickle sends by value, costs its
pickling once rather than on every task.  Kernel code: this module runs on the CPUs
and reaches the host only through ``rumpmp.kern``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from rumpmp.kern import cpu_index, nanouptime
from rumpmp.rumpkern import entry

Task = tuple[bytes, tuple[Any, ...], dict[str, Any]]

#: Unpickled functions of this CPU process, by their pickle.
FUNCTIONS = 256
_functions: dict[bytes, Callable[..., Any]] = {}


def _function(blob: bytes) -> Callable[..., Any]:
    fn = _functions.get(blob)
    if fn is None:
        if len(_functions) >= FUNCTIONS:
            del _functions[next(iter(_functions))]
        fn = _functions[blob] = pickle.loads(blob)
    return fn


def _apply(blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _function(blob)(*args, **kwargs)


def _ns() -> int:
    sec, nsec = nanouptime()
    return sec * 1_000_000_000 + nsec


def run_batch(tasks: list[Task]) -> tuple[int, list[tuple[bool, Any, int]]]:
    """(this CPU, [(ok, result or exception, run time in ns) per task])."""
    cpu = cpu_index()
    out = []
    for blob, args, kwargs in tasks:
        start = _ns()
        ok, value = entry.call(_apply, blob, args, kwargs)
        if not ok:
            value = entry.portable(value, cpu)  # type: ignore[arg-type]
        out.append((ok, value, _ns() - start))
    return cpu, out


def starmap(
    fn: Callable[..., Any], chunk: list[tuple[Any, ...]]
) -> tuple[list[Any], Exception | None]:
    """One chunk of Executor.map: the results up to the first item that raises, and
    what it raised (map raises it in its place and goes no further)."""
    results: list[Any] = []
    ok, error = entry.call(_starmap_into, fn, chunk, results)
    return results, None if ok else entry.portable(error, cpu_index())  # type: ignore[arg-type]


def _starmap_into(fn: Callable[..., Any], chunk: list[tuple[Any, ...]], results: list[Any]) -> None:
    append = results.append
    for args in chunk:
        append(fn(*args))


def initialize(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
    """Cross-call: the Executor's initializer, once on each CPU."""
    initializer(*initargs)
