"""printf, aprint_verbose and panic (subr_prf.c).

Kernel messages go to the message buffer; ``Kernel.dmesg()`` and the CLI show them.
A panic records its message and CPU in the arena, shuts the kernel's semaphore pool
down (so every waiter in every process gives up at once), and ends the CPU process
with the PANIC status; the host notices, stops the other CPUs, unlinks every named
object and raises ``RumpPanic`` to its callers.
"""

from __future__ import annotations

import contextlib

import hypercalls
from hypercalls import proc
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.msgbuf import msgbuf_write


class RumpPanic(RuntimeError):
    """The kernel panicked; ``cpu`` is the CPU that did (-1: the host), ``cause`` why."""

    def __init__(self, cpu: int, cause: str) -> None:
        where = f"cpu{cpu}" if cpu >= 0 else "host"
        super().__init__(f"rump kernel panic on {where}: {cause}")
        self.cpu = cpu
        self.cause = cause


def kprintf(arena: Arena, text: str) -> None:
    """printf into a given kernel's message buffer."""
    msgbuf_write(arena, text)


def printf(fmt: str, *args: object) -> None:
    """printf(9): format with % and append to the message buffer."""
    msgbuf_write(_arena.current(), fmt % args if args else fmt)


def aprint_verbose(arena: Arena, text: str) -> None:
    """Autoconfiguration message shown only when booted verbose (AB_VERBOSE)."""
    if arena.w[_arena.H_VERBOSE]:
        msgbuf_write(arena, text)


def record_panic(arena: Arena, cpu: int, cause: str) -> bool:
    """Mark the kernel panicked; True if this call did.

    The first caller wins by taking the kernel's panic token, a semaphore posted
    once at boot: a semaphore is the one atomic test-and-set all processes share,
    so two CPUs panicking at once cannot mix one's number with the other's message.
    """
    if arena.w[_arena.H_STATE] in (_arena.PANICKED, _arena.HALTED):
        return False
    try:
        if not arena.pool.sem(arena.w[_arena.H_PANIC_SLOT]).acquire(False):
            return False
    except OSError:  # the kernel's objects are gone: it has stopped already
        return False
    arena.w[_arena.H_STATE] = _arena.PANICKED
    arena.w[_arena.H_PANIC_CPU] = cpu
    arena.set_str(_arena.PANICSTR_OFF, _arena.PANICSTR_LEN, cause)
    arena.pool.shutdown()
    # The message buffer's lock may have died with the pool; the panic string is kept.
    with contextlib.suppress(OSError):
        msgbuf_write(arena, f"panic: {cause}\n")
    return True


def panic_info(arena: Arena) -> RumpPanic:
    """The RumpPanic describing a panicked kernel."""
    return RumpPanic(
        arena.w[_arena.H_PANIC_CPU], arena.get_str(_arena.PANICSTR_OFF, _arena.PANICSTR_LEN)
    )


def panic(fmt: str, *args: object) -> None:
    """panic(9): stop the whole kernel this CPU belongs to.  Never returns."""
    panic_in(_arena.current(), fmt % args if args else fmt)


def panic_in(arena: Arena, cause: str) -> None:
    """Panic a given kernel.  Never returns.

    In one of that kernel's CPU processes the process ends with the PANIC status.
    Anywhere else (the host applying a kernel function to a handle) the kernel is
    marked panicked, the host's watcher stops its CPUs, and RumpPanic is raised.
    """
    if _arena.here.arena is arena:
        record_panic(arena, _arena.here.cpu, cause)
        proc.exit(hypercalls.PANIC)
    record_panic(arena, -1, cause)
    raise panic_info(arena)
