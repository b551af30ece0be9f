"""vmem(9) (subr_vmem.c): a general resource allocator over integer ranges
(identifiers, address space), shared by every CPU.

An arena's state is two sorted arrays in the kernel heap: its free segments and
its allocated ones (start, size), so that any CPU can allocate and free, and a
free is checked against what was allocated (a wrong address or size panics, as
NetBSD's vmem does under DIAGNOSTIC).  The arena's mutex guards them; a VM_SLEEP
allocation that finds no room sleeps on the arena's condvar until something is
freed or added.  Freed segments merge with free neighbours.

rumpmp differs from NetBSD in the call shape (``vmem_create`` returns the arena,
``vmem_alloc``/``vmem_xalloc`` return the address and raise ENOMEM) and in what it
leaves out: importing from a source arena (``allocfn``/``source``: EOPNOTSUPP) and
the quantum caches (``qcache_max`` is accepted and ignored).
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.args import int_arg
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.locking.condvar import cv_broadcast, cv_destroy, cv_init, cv_wait, kcondvar_t
from rumpmp.rumpkern.locking.mutex import (
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init,
)
from rumpmp.rumpkern.mem import kmem

VM_SLEEP = 0x00000001
VM_NOSLEEP = 0x00000002
VM_INSTANTFIT = 0x00001000
VM_BESTFIT = 0x00002000
VMEM_ALLOC = 0x01  # vmem_size typemasks
VMEM_FREE = 0x02
VMEM_ADDR_MIN = 0
VMEM_ADDR_MAX = (1 << 63) - 1  # (the largest word rumpmp's shared records hold)

# Record words: the segment arrays live in one heap buffer, free pairs then busy pairs.
R_QUANTUM = 0
R_NFREE = 1
R_NBUSY = 2
R_CAP = 3  # pairs each array can hold
R_BUF = 4  # the buffer's offset and generation
R_BUFGEN = 5
R_INUSE = 6  # quanta allocated
_R_WORDS = 8

Segment = tuple[int, int]  # (start, size)


class vmem_t(Handle):
    """A vmem arena; pickles by reference."""

    __slots__ = ("arena", "cv", "lock", "name", "rec")

    def __init__(
        self, arena: Arena, rec: kmem.KBuf, lock: kmutex_t, cv: kcondvar_t, name: str
    ) -> None:
        self.arena, self.rec, self.lock, self.cv, self.name = arena, rec, lock, cv, name

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.lock, self.cv, self.name)

    def _what(self) -> str:
        return self.name


def vmem_create(
    name: str,
    base: int,
    size: int,
    quantum: int,
    allocfn: object = None,
    freefn: object = None,
    source: object = None,
    qcache_max: int = 0,
    flags: int = VM_SLEEP,
    ipl: int = 0,
) -> vmem_t:
    """vmem_create(9): an arena of [base, base + size) (empty if size is 0) in
    units of ``quantum`` (a power of two)."""
    if not isinstance(name, str):
        raise TypeError(f"vmem_create: name must be a str, not {type(name).__name__}")
    for value, what in ((base, "base"), (size, "size"), (quantum, "quantum")):
        int_arg(value, what, "vmem_create")
    if quantum <= 0 or quantum & (quantum - 1) or base < 0 or size < 0:
        raise OSError(errno.EINVAL, f"vmem_create: bad quantum {quantum}, base or size")
    if allocfn is not None or source is not None:
        raise OSError(errno.EOPNOTSUPP, "vmem_create: importing from a source is not supported")
    arena = _arena.current()
    rec = kmem.kmem_zalloc_in(arena, _R_WORDS * 8)
    arena.w[rec.offset // 8 + R_QUANTUM] = quantum
    vm = vmem_t(arena, rec, mutex_init(), cv_init(name), name)
    if size:
        vmem_add(vm, base, size, flags)
    return vm


def _load(vm: vmem_t) -> tuple[list[Segment], dict[int, int]]:
    """The free segments (sorted) and the allocated ones (start -> size); caller
    holds the lock."""
    w, r = vm.arena.w, vm.rec.offset // 8
    b, cap = w[r + R_BUF] // 8, w[r + R_CAP]
    free = [(w[b + 2 * i], w[b + 2 * i + 1]) for i in range(w[r + R_NFREE])]
    busy = {w[b + 2 * (cap + i)]: w[b + 2 * (cap + i) + 1] for i in range(w[r + R_NBUSY])}
    return free, busy


def _store(vm: vmem_t, free: list[Segment], busy: dict[int, int]) -> None:
    """Write the segments back, in a bigger buffer if they outgrew it."""
    w, r = vm.arena.w, vm.rec.offset // 8
    cap = w[r + R_CAP]
    if max(len(free), len(busy)) > cap:
        new_cap = max(16, 1 << max(len(free), len(busy)).bit_length())
        new = kmem.kmem_alloc_in(vm.arena, new_cap * 32)
        if cap:
            kmem.kmem_free_in(
                vm.arena, kmem.kbuf_at(vm.arena, w[r + R_BUF], cap * 32, w[r + R_BUFGEN]), cap * 32
            )
        w[r + R_BUF], w[r + R_BUFGEN], w[r + R_CAP] = new.offset, new.gen, new_cap
        cap = new_cap
    b = w[r + R_BUF] // 8
    for i, (start, size) in enumerate(free):
        w[b + 2 * i], w[b + 2 * i + 1] = start, size
    for i, (start, size) in enumerate(sorted(busy.items())):
        w[b + 2 * (cap + i)], w[b + 2 * (cap + i) + 1] = start, size
    w[r + R_NFREE], w[r + R_NBUSY] = len(free), len(busy)


def _insert_free(free: list[Segment], start: int, size: int) -> None:
    """Add [start, start + size) to the sorted free list, merging neighbours."""
    i = 0
    while i < len(free) and free[i][0] < start:
        i += 1
    if i and free[i - 1][0] + free[i - 1][1] == start:
        i -= 1
        start, size = free[i][0], free[i][1] + size
        del free[i]
    if i < len(free) and start + size == free[i][0]:
        size += free[i][1]
        del free[i]
    free.insert(i, (start, size))


def vmem_add(vm: vmem_t, addr: int, size: int, flags: int = VM_SLEEP) -> None:
    """vmem_add(9): add the span [addr, addr + size) to the arena."""
    int_arg(addr, "addr", "vmem_add")
    int_arg(size, "size", "vmem_add")
    if addr < 0 or size <= 0 or addr + size - 1 > VMEM_ADDR_MAX:
        raise OSError(errno.EINVAL, f"vmem_add: bad span ({addr:#x}, {size:#x})")
    mutex_enter(vm.lock)
    try:
        free, busy = _load(vm)
        overlaps = [s for s, n in [*free, *busy.items()] if s < addr + size and addr < s + n]
        if overlaps:
            raise OSError(errno.EEXIST, f"vmem_add: span {addr:#x} overlaps the arena")
        _insert_free(free, addr, size)
        _store(vm, free, busy)
        cv_broadcast(vm.cv)
    finally:
        mutex_exit(vm.lock)


def _fit(
    seg: Segment, size: int, align: int, phase: int, nocross: int, lo: int, hi: int
) -> int | None:
    """The lowest address in ``seg`` where ``size`` fits the constraints, or None."""
    start, length = seg
    a = max(start, lo)
    while True:
        a += (phase - a) % align  # the next address that is phase modulo align
        if nocross and a // nocross != (a + size - 1) // nocross:
            a = (a // nocross + 1) * nocross  # to the next boundary, then align again
            continue
        end = min(start + length, hi + 1)
        return a if a + size <= end else None


def _round(vm: vmem_t, size: int) -> int:
    q = vm.arena.w[vm.rec.offset // 8 + R_QUANTUM]
    return -(-size // q) * q


def vmem_xalloc(
    vm: vmem_t,
    size: int,
    align: int = 0,
    phase: int = 0,
    nocross: int = 0,
    minaddr: int = VMEM_ADDR_MIN,
    maxaddr: int = VMEM_ADDR_MAX,
    flags: int = VM_SLEEP | VM_INSTANTFIT,
) -> int:
    """vmem_xalloc(9): ``size`` units at an address that is ``phase`` modulo
    ``align``, within [minaddr, maxaddr], not crossing a multiple of ``nocross``;
    returns the address.  VM_NOSLEEP raises ENOMEM when there is no such room,
    VM_SLEEP waits for a free; VM_BESTFIT takes the smallest segment that fits,
    VM_INSTANTFIT the first."""
    for value, what in (
        (size, "size"),
        (align, "align"),
        (phase, "phase"),
        (nocross, "nocross"),
        (minaddr, "minaddr"),
        (maxaddr, "maxaddr"),
        (flags, "flags"),
    ):
        int_arg(value, what, "vmem_xalloc")
    q = vm.arena.w[vm.rec.offset // 8 + R_QUANTUM]
    size = _round(vm, size) if size > 0 else 0
    align = align or q
    sleep, nosleep = bool(flags & VM_SLEEP), bool(flags & VM_NOSLEEP)
    bestfit = bool(flags & VM_BESTFIT)
    if (
        not size
        or sleep == nosleep
        or bestfit == bool(flags & VM_INSTANTFIT)
        or align & (align - 1)
        or align % q
        or not 0 <= phase < align
        or (nocross and (nocross & (nocross - 1) or nocross < size))
        or minaddr > maxaddr
    ):
        raise OSError(errno.EINVAL, f"vmem_xalloc: bad arguments for {size} in {vm.name}")
    mutex_enter(vm.lock)
    try:
        while True:
            free, busy = _load(vm)
            fits = [
                (seg[1], i, a)
                for i, seg in enumerate(free)
                if (a := _fit(seg, size, align, phase, nocross, minaddr, maxaddr)) is not None
            ]
            if fits:
                break
            if nosleep:
                raise OSError(errno.ENOMEM, f"vmem_xalloc: no room for {size} in {vm.name}")
            cv_wait(vm.cv, vm.lock)
        _, i, addr = min(fits) if bestfit else fits[0]
        start, length = free.pop(i)
        if addr > start:
            _insert_free(free, start, addr - start)
        if addr + size < start + length:
            _insert_free(free, addr + size, start + length - addr - size)
        busy[addr] = size
        _store(vm, free, busy)
        vm.arena.w[vm.rec.offset // 8 + R_INUSE] += size
        return addr
    finally:
        mutex_exit(vm.lock)


def vmem_alloc(vm: vmem_t, size: int, flags: int = VM_SLEEP | VM_INSTANTFIT) -> int:
    """vmem_alloc(9): ``size`` units anywhere in the arena; returns the address."""
    return vmem_xalloc(vm, size, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, flags)


def vmem_xfree(vm: vmem_t, addr: int, size: int) -> None:
    """vmem_xfree(9): give back what vmem_xalloc returned (with the size asked)."""
    int_arg(addr, "addr", "vmem_xfree")
    int_arg(size, "size", "vmem_xfree")
    size = _round(vm, size)
    mutex_enter(vm.lock)
    try:
        free, busy = _load(vm)
        if busy.get(addr) != size:
            panic_in(vm.arena, f"vmem_free: {vm.name}: {addr:#x} size {size:#x} was not allocated")
        del busy[addr]
        _insert_free(free, addr, size)
        _store(vm, free, busy)
        vm.arena.w[vm.rec.offset // 8 + R_INUSE] -= size
        cv_broadcast(vm.cv)
    finally:
        mutex_exit(vm.lock)


def vmem_free(vm: vmem_t, addr: int, size: int) -> None:
    """vmem_free(9): give back what vmem_alloc returned."""
    vmem_xfree(vm, addr, size)


def vmem_size(vm: vmem_t, typemask: int) -> int:
    """vmem_size(9): units allocated (VMEM_ALLOC), free (VMEM_FREE), or both."""
    mutex_enter(vm.lock)
    free, _ = _load(vm)
    mutex_exit(vm.lock)
    inuse = vm.arena.w[vm.rec.offset // 8 + R_INUSE]
    return (inuse if typemask & VMEM_ALLOC else 0) + (
        sum(n for _, n in free) if typemask & VMEM_FREE else 0
    )


def vmem_destroy(vm: vmem_t) -> None:
    """vmem_destroy(9): free the arena (what is still allocated is forgotten)."""
    w, r = vm.arena.w, vm.rec.offset // 8
    if w[r + R_CAP]:
        buf = kmem.kbuf_at(vm.arena, w[r + R_BUF], w[r + R_CAP] * 32, w[r + R_BUFGEN])
        kmem.kmem_free_in(vm.arena, buf, w[r + R_CAP] * 32)
    cv_destroy(vm.cv)
    mutex_destroy(vm.lock)
    kmem.kmem_free_in(vm.arena, vm.rec, _R_WORDS * 8)
