"""Holding off Ctrl-C while host code holds kernel locks.

Python raises ``KeyboardInterrupt`` in the main thread between any two bytecodes.
A host thread that is interrupted while it holds a kernel lock (the proc lock, the
heap lock, a CPU's run queue lock) would leave it held, and every CPU would then
wait on it.  Code that takes kernel locks from the host runs inside
``hold_interrupts()``: a SIGINT that arrives meanwhile is kept and delivered, to
the handler that was installed, when the outermost hold ends.

The first hold puts a small handler in front of the program's own SIGINT handler
and leaves it there (installing a handler costs a system call; counting holds costs
nothing).  A handler the program installs later simply replaces it; the next hold
puts it in front of that one.  SIG_IGN and SIG_DFL are left alone: neither raises.
"""

from __future__ import annotations

import _signal  # signal.getsignal wraps this in an enum lookup; this is the hot path
import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Self

_MAIN = threading.main_thread().ident


class _State:
    depth = 0  # holds in force in the main thread
    pending: tuple[int, FrameType | None] | None = None
    program_handler: Any = None  # the handler ours stands in front of


_state = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.depth:
        _state.pending = (signum, frame)
    else:
        _state.program_handler(signum, frame)


class _Hold:
    """One hold; ``counted`` unless it had nothing to do (not the main thread, or a
    SIGINT disposition that never raises)."""

    __slots__ = ("counted",)

    def __enter__(self) -> Self:
        self.counted = False
        if threading.get_ident() != _MAIN:
            return self  # only the main thread ever gets KeyboardInterrupt
        current = _signal.getsignal(signal.SIGINT)
        if current is not _handler:
            if not callable(current):
                return self
            _state.program_handler = current
            signal.signal(signal.SIGINT, _handler)
        _state.depth += 1
        self.counted = True
        return self

    def check(self) -> None:
        """Deliver a SIGINT held so far, now: for waits, between two parks, where the
        caller holds no lock (the handler usually raises KeyboardInterrupt)."""
        if self.counted and _state.pending:
            self._deliver()

    @staticmethod
    def _deliver() -> None:
        signum, frame = _state.pending  # type: ignore[misc]
        _state.pending = None
        _state.program_handler(signum, frame)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.counted:
            return
        _state.depth -= 1
        if not _state.depth and _state.pending:
            self._deliver()


def hold_interrupts() -> _Hold:
    """A context manager that delays SIGINT's handler until it ends."""
    return _Hold()
