"""Entering kernel code: the one place that decides what a raised exception becomes.

Every entry into code a user gave the kernel (an lwp's function, a kernel thread, a
cross-call, a softint handler, a callout, a work item) goes through ``call``, which
never lets anything escape, ``BaseException`` included: a ``sys.exit`` or a
``KeyboardInterrupt`` raised in kernel code would otherwise end the host thread that
carries the lwp without ending the lwp, and whoever waits for it would wait forever.

- Where someone waits for the result (``Kernel.run``, ``kthread_join``, the host's
  cross-calls), the exception travels back to them.  One that is not an ``Exception``
  travels as ``KernelCodeExit``: re-raising ``SystemExit`` in the host as is would
  end the host.
- Where nobody waits (a detached kernel thread, a softint, a callout, a work item, a
  cross-call issued by kernel code), the traceback goes to the message buffer and
  the kernel carries on, as NetBSD's kernel cannot but a Python kernel can.

Two exceptions pass through untouched: ``KthreadExit`` (kthread_exit ends the thread
on purpose) and ``Shutdown`` (the kernel is going down around the code).
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable

import cloudpickle

from hypercalls.sync import Shutdown
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import kprintf


class KthreadExit(BaseException):
    """Raised by kthread_exit to end the calling kernel thread."""

    def __init__(self, ecode: int) -> None:
        super().__init__(ecode)
        self.ecode = ecode


class KernelCodeExit(RuntimeError):
    """Kernel code raised a ``BaseException`` that is not an ``Exception``
    (``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, ...).  Its lwp ended
    and the kernel is still up; ``raised`` is the repr of what was raised."""

    def __init__(self, raised: str) -> None:
        super().__init__(f"kernel code raised {raised}; its lwp has ended")
        self.raised = raised

    def __reduce__(self) -> tuple:
        return (KernelCodeExit, (self.raised,), self.__dict__)  # the notes travel too


_PASS_THROUGH = (KthreadExit, Shutdown)


def call(func: Callable, *args: object) -> tuple[bool, object]:
    """``(True, func(*args))``, or ``(False, what it raised)``."""
    try:
        return True, func(*args)
    except _PASS_THROUGH:
        raise
    except BaseException as e:  # noqa: BLE001 - nothing may escape kernel code
        return False, e


def portable(e: BaseException, cpu: int) -> Exception:
    """What the waiter gets for ``e``: ``e`` itself if it is an Exception that pickles,
    else a stand-in carrying its text; with a note naming the CPU and the traceback."""
    tb = "".join(traceback.format_exception(e))
    if not isinstance(e, Exception):
        out: Exception = KernelCodeExit(repr(e))
    else:
        try:  # cloudpickle: a class made in the host's __main__ goes home as itself
            pickle.loads(cloudpickle.dumps(e))
            out = e
        except Exception:  # noqa: BLE001 - any pickling failure means "send the text"
            out = RuntimeError(f"{type(e).__name__}: {e}")
    out.add_note(f"raised on cpu{cpu}:\n{tb}")
    return out


def report(arena: Arena, what: str, e: BaseException) -> None:
    """Nobody waits for this code: put what it raised in the message buffer."""
    tb = "".join(traceback.format_exception(e)).rstrip()
    kprintf(arena, f"{what} raised {type(e).__name__}: {e}\n{tb}\n")
