"""pserialize(9) (subr_pserialize.c): readers that take no lock, and writers that
wait until no reader of the old state can remain.

A read section keeps its CPU: it disables preemption (so a yield inside it passes
over, and LOCKDEBUG panics if it sleeps), which costs a thread-local increment.
Since rumpmp's kernel is not preemptive, an lwp that holds a CPU is the only one
running there; so once a cross-call has run on every CPU, each CPU has been
between read sections at least once, and every reader that could have seen the
old state has left.  ``pserialize_perform`` is that cross-call, as NetBSD's is.
"""

from __future__ import annotations

from rumpmp.rumpkern.intr.xcall import xc_broadcast, xc_wait
from rumpmp.rumpkern.sched.scheduler import kpreempt_disable, kpreempt_disabled, kpreempt_enable


class pserialize_t:
    """A passive serialisation handle; rumpmp keeps no state in it (NetBSD's neither,
    any more), so it pickles as is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<pserialize_t>"


def pserialize_create() -> pserialize_t:
    """pserialize_create(9)."""
    return pserialize_t()


def pserialize_destroy(psz: pserialize_t) -> None:
    """pserialize_destroy(9)."""
    if not isinstance(psz, pserialize_t):
        raise TypeError(f"pserialize_destroy: psz must be a pserialize_t, not {type(psz).__name__}")


def pserialize_read_enter() -> int:
    """pserialize_read_enter(9): begin a read section; returns what read_exit takes."""
    kpreempt_disable()
    return 0


def pserialize_read_exit(s: int) -> None:
    """pserialize_read_exit(9): end the read section ``s`` began."""
    kpreempt_enable()


def pserialize_in_read_section() -> bool:
    """pserialize_in_read_section(9): whether the caller may be in a read section
    (as NetBSD's, true wherever preemption is disabled)."""
    return kpreempt_disabled()


def _barrier(_a: object, _b: object) -> None:
    """Runs on each CPU: being here means no reader holds that CPU."""


def pserialize_perform(psz: pserialize_t) -> None:
    """pserialize_perform(9): return once every read section that began before the
    call has ended, on every CPU.  Not from inside a read section."""
    if not isinstance(psz, pserialize_t):
        raise TypeError(f"pserialize_perform: psz must be a pserialize_t, not {type(psz).__name__}")
    if kpreempt_disabled():
        raise RuntimeError("pserialize_perform: called in a read section (it would deadlock)")
    xc_wait(xc_broadcast(0, _barrier, None, None))
