"""percpu(9): per-CPU storage in shared memory (subr_percpu.c).

Every CPU has an area of PERCPU_BYTES in the arena; an allocation takes the same
offset in every CPU's area, cache-line aligned, so CPUs never share a line.
"""

from __future__ import annotations

from .arena import Arena

PERCPU_BYTES = 64 * 1024
_HDR_BYTES = 64


def region(ncpu: int) -> tuple[str, int]:
    return ("percpu", _HDR_BYTES + ncpu * PERCPU_BYTES)


def area(arena: Arena, cpu: int) -> int:
    """Byte offset of ``cpu``'s percpu area."""
    off, _ = arena.region("percpu")
    return off + _HDR_BYTES + cpu * PERCPU_BYTES


def percpu_init_cpu(arena: Arena, cpu: int) -> None:
    """percpu_init_cpu: this CPU's area starts zeroed."""
    start = area(arena, cpu)
    arena.buf[start : start + PERCPU_BYTES] = bytes(PERCPU_BYTES)
