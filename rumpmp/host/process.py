"""System calls from the host: ``Kernel.sys`` and ``Kernel.process()``.

A host call runs in a process of the kernel, in the calling thread's own lwp of that
process (``rumpmp.host.hostlwp``: calls from several host threads run in parallel,
each thread's lwp on its own CPU where it can): ``Kernel.sys`` in the host's own rump
process, made at its first call; ``with k.process() as p:`` in a
fresh process (``rump_lwproc_rfork`` from the host) with its own credentials, file
table and pid.  Each call is a method named after the system call, with the
signature and the return value of Python's ``os`` function of that name where one
exists; errors are OSError with the errno.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from rumpmp.rumpkern.syscall import sysent
from rumpmp.sys.proc import RUMP_RFCFDG, RUMP_RFFDG
from rumpmp.sys.syscall import FILLS


class Kernel(Protocol):
    """What a Process needs of its kernel (rumpmp.Kernel; named here without
    importing it, which imports this module)."""

    prefix: str

    @property
    def state(self) -> str: ...

    def run(self, func: Callable[..., Any], *args: Any) -> Any: ...

    def _run(
        self,
        func: Callable[..., Any],
        args: tuple,
        cpu: int | None,
        timeout: float | None,
        pid: int,
    ) -> Any: ...

    def _release_lwps(self, pid: int) -> None: ...


class Syscalls:
    """The system calls, as methods, in one process of one kernel."""

    def __init__(self, process: Process) -> None:
        self._process = process

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """The method of system call ``name``, made at its first use and kept."""
        entry = sysent.BY_NAME.get(name)
        if entry is None:
            raise AttributeError(f"no system call {name!r}")
        run, num, fills = self._process.kernel._run, entry.num, FILLS.get(entry.num)
        pid = self._process.pid

        def call(*args: Any) -> Any:
            sysent.check_args(entry, args)  # the kernel may not serve it: then ENOSYS
            result = run(sysent.serve, (num, args), None, None, pid)
            if fills is None:
                return result
            result, contents = result  # the kernel filled copies: fill the caller's
            for buf, data in zip(args[fills], contents, strict=True):
                memoryview(buf).cast("B")[: len(data)] = data
            return result

        call.__name__ = call.__qualname__ = name
        call.__doc__ = entry.func.__doc__
        setattr(self, name, call)
        return call

    def __dir__(self) -> list[str]:
        return sorted(sysent.BY_NAME)


class Process:
    """A process of the kernel that the host makes calls in; ends with ``release()``
    (or the ``with`` block).  Calls still running in it finish first."""

    def __init__(self, kernel: Kernel, flags: int = RUMP_RFCFDG, parent: int | None = None) -> None:
        self.kernel = kernel
        self.pid, self._holder = kernel.run(sysent.new_process, flags, parent)
        self.sys = Syscalls(self)

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        cpu: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        """``Kernel.run`` in this process: ``func(*args)`` in the calling thread's
        lwp of it, with its credentials, descriptors and working directory."""
        return self.kernel._run(func, args, cpu, timeout, self.pid)

    def fork(self, flags: int = RUMP_RFFDG) -> Process:
        """A child of this process (rump_lwproc_rfork): with RUMP_RFFDG (the
        default) its descriptors name this process's open files, RUMP_RFCFDG gives
        it none, 0 shares this process's table."""
        return Process(self.kernel, flags, self.pid)

    def release(self) -> None:
        """End the process: its host threads' lwps first (calls in progress in
        them finish), then the lwp that held it."""
        if self._holder and self.kernel.state == "running":
            self.kernel._release_lwps(self.pid)
            self.kernel.run(sysent.end_process, self._holder)
        self._holder = 0

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<rumpmp.Process pid {self.pid} of {self.kernel.prefix}>"
