"""kmem(9): the kernel heap, a buddy allocator inside the shared arena.

Every allocation is a block of 2**order bytes: a 16-byte header (state, order,
generation, requested size) followed by the caller's bytes.  Free blocks sit on one
doubly linked list per order; freeing merges a block with its buddy while the buddy
is free too, so the heap never fragments into pieces it cannot join again.

The buffer handed out (``KBuf``) is a ctypes byte array laid directly over the
shared memory: it supports the buffer protocol (``memoryview``, ``struct.pack_into``)
and is visible to every CPU and the host.  It pickles by reference (kernel, offset,
size, generation), so it can be passed to another CPU or returned to the host.

Small blocks (up to 1 KiB) are recycled through per-CPU caches, as pool_cache(9) does
for NetBSD's kmem, without the heap lock (see "per-CPU caches" below).

Misuse is caught, as kmem(9) does under DIAGNOSTIC: freeing with the wrong size, a
second time, or a buffer of another kernel panics the kernel.  rumpmp differs from
NetBSD in that the generation check also catches a stale handle to a block that has
since been handed to someone else.
"""

from __future__ import annotations

import ctypes
import errno
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from hypercalls import sync, waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import panic_in

KM_SLEEP: Final = 0x01
KM_NOSLEEP: Final = 0x02

DEFAULT_MEMLIMIT = 64 * 1024 * 1024
_HDR_BYTES = 4096  # heap header: lock, counters, free-list heads
_BLK_HDR = 16
MIN_ORDER = 5  # 32-byte blocks: a header and 16 bytes of payload
MAX_ORDERS = 64

# Heap header words.
K_LOCK = 0
K_CV = 1
K_GEN = 2
K_INUSE = 3  # bytes of blocks handed out
K_NALLOC = 4
K_BASE = 5  # byte offset of the first block
K_SIZE = 6  # bytes of block space
K_WAITERS = 7
K_FREE = 8  # K_FREE + 2 * order: a doubly linked waitq list of the free blocks of order
K_LOCKS = K_FREE + 2 * MAX_ORDERS  # times the heap lock was taken (kmem_heap_locks)
# Bumped when the heap runs dry: every CPU then drains its cache.  Read by every cached
# allocation, so it has a cache line of its own, away from the words the lock holder writes.
K_DRAIN = K_LOCKS + 8
# Two frees of one block racing on two CPUs must not both pass.  The check that a
# block is allocated and the mark that it no longer is are made under one of
# FREE_STRIPES spin locks, chosen by the block's address: a semaphore is the only
# atomic step all processes share, one per block would be far too many, and one
# for the whole heap would make every CPU's frees wait on each other.
FREE_STRIPES = 8
K_STRIPES = K_DRAIN + 8  # FREE_STRIPES pool slots

# Block header: word 0 = gen << 16 | state << 8 | order; word 1 = requested size
# (allocated) or next free block (free); word 2 = previous free block.
ST_FREE = 1
ST_ALLOC = 2
ST_CACHED = 3  # free, but held in a CPU's cache
ST_FREEING = 4  # claimed by a kmem_free on its way to a cache or the heap: its buddy
#                 must not merge it yet (ST_FREE would say it is on a free list)

#: How long KM_SLEEP waits for memory to be freed before it panics.
SLEEP_LIMIT = 10


def region_size(memlimit: int) -> int:
    return _HDR_BYTES + memlimit


def kmem_init(arena: Arena) -> None:
    """Carve the heap region into the largest aligned free blocks (at boot)."""
    off, size = arena.region("kmem")
    h = off // 8
    w = arena.w
    base = off + _HDR_BYTES
    space = size - _HDR_BYTES
    w[h + K_BASE] = base
    w[h + K_SIZE] = space
    w[h + K_LOCK] = sync.Mutex(arena.pool).slot
    w[h + K_CV] = sync.CondVar(arena.pool).slot
    for i in range(FREE_STRIPES):
        w[h + K_STRIPES + i] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    rel = 0
    while space - rel >= 1 << MIN_ORDER:
        order = min((space - rel).bit_length() - 1, (rel & -rel).bit_length() - 1 if rel else 63)
        _push(w, h, base + rel, order)
        rel += 1 << order


class _Heap:
    """The heap of one kernel as seen by this process: locks and word indices."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        off, _ = arena.region("kmem")
        self.h = off // 8
        w = arena.w
        self.base = w[self.h + K_BASE]
        self.size = w[self.h + K_SIZE]
        self.lock = sync.Mutex.attach(arena.pool, w[self.h + K_LOCK], 0)
        self.cv = sync.CondVar.attach(arena.pool, w[self.h + K_CV])
        self.w = w
        self.caches = arena.region_word("kmemcache")
        self.stripes = [
            sync.Mutex.attach(arena.pool, w[self.h + K_STRIPES + i], sync.MTX_SPIN)
            for i in range(FREE_STRIPES)
        ]

    def enter(self) -> None:
        """Take the heap lock (it may let other lwps of this CPU run while it waits)."""
        self.lock.enter()
        self.w[self.h + K_LOCKS] += 1


def heap_of(arena: Arena) -> _Heap:
    return arena.attached("kmem", lambda: _Heap(arena))


# -- free lists (caller holds the heap lock) ----------------------------------


_LINK = 1  # a free block's waitq links (next, then previous) follow its tag word


def _push(w: memoryview, h: int, blk: int, order: int) -> None:
    """Put block ``blk`` (a byte offset) on the free list of ``order``."""
    w[blk // 8] = ST_FREE << 8 | order
    waitq.push(w, h + K_FREE + 2 * order, blk // 8, _LINK)


def _unlink(w: memoryview, h: int, blk: int, order: int) -> None:
    waitq.unlink(w, h + K_FREE + 2 * order, blk // 8, _LINK)


def _take(heap: _Heap, order: int) -> int:
    """Remove and return a free block of exactly ``order``, splitting a larger one."""
    w, h = heap.arena.w, heap.h
    for o in range(order, MAX_ORDERS):
        blk = w[h + K_FREE + 2 * o] * 8
        if blk:
            break
    else:
        return 0
    _unlink(w, h, blk, o)
    while o > order:
        o -= 1
        _push(w, h, blk + (1 << o), o)
    return blk


def _merge_and_free(heap: _Heap, blk: int, order: int) -> None:
    w, h = heap.arena.w, heap.h
    rel = blk - heap.base
    while True:
        buddy = rel ^ (1 << order)
        if buddy + (1 << order) > heap.size:
            break
        if w[(heap.base + buddy) // 8] != ST_FREE << 8 | order:
            break
        _unlink(w, h, heap.base + buddy, order)
        w[(heap.base + max(rel, buddy)) // 8] = 0  # the absorbed header is no block now
        rel = min(rel, buddy)
        order += 1
    _push(w, h, heap.base + rel, order)


# -- the buffer handle ----------------------------------------------------------

_kbuf_types: dict[int, type] = {}


def _kbuf_type(size: int) -> Any:
    t = _kbuf_types.get(size)
    if t is None:
        # ctypes' own __reduce__ would come first in the MRO: name ours explicitly.
        t = _kbuf_types[size] = type(
            "KBuf", (ctypes.c_ubyte * size, KBuf), {"__reduce__": KBuf.__reduce__}
        )
    return t


class KBuf:
    """A kmem buffer: bytes in the shared heap, usable wherever it is unpickled."""

    if TYPE_CHECKING:  # the real classes are ctypes char arrays of each size (_kbuf_type)

        def __len__(self) -> int: ...
        def __buffer__(self, flags: int) -> memoryview: ...
        def __getitem__(self, i: Any) -> Any: ...
        def __setitem__(self, i: Any, value: Any) -> None: ...

    prefix: str
    offset: int
    gen: int

    def __reduce__(self) -> tuple:
        return (_kbuf_rebuild, (self.prefix, self.offset, len(self), self.gen))

    def __repr__(self) -> str:
        return f"<KBuf {len(self)} bytes at {self.offset:#x}>"


def _make_kbuf(arena: Arena, payload: int, size: int, gen: int) -> KBuf:
    buf = _kbuf_type(size).from_buffer(arena.buf, payload)
    buf.prefix, buf.offset, buf.gen = arena.prefix, payload, gen
    return buf


def _kbuf_rebuild(prefix: str, offset: int, size: int, gen: int) -> KBuf:
    return _make_kbuf(Arena.attach(prefix), offset, size, gen)


def kmem_roundup_size(size: int) -> int:
    """kmem_roundup_size(9): the bytes an allocation of ``size`` really gets (its
    block less the header), which a caller that may grow can use whole."""
    return (1 << _order_for(size)) - _BLK_HDR


def kbuf_at(arena: Arena, offset: int, size: int, gen: int) -> KBuf:
    """The buffer a record keeps as (offset, generation): what ``kmem_free`` takes."""
    return _make_kbuf(arena, offset, size, gen)


# -- kmem(9) ----------------------------------------------------------------------


def _order_for(size: int) -> int:
    return max(MIN_ORDER, (size + _BLK_HDR - 1).bit_length())


# The orders of the sizes the caches serve, looked up rather than computed: this is
# on the fast path.
_SMALL_ORDER = [0] + [_order_for(n) for n in range(1, 1009)]


@overload
def kmem_alloc_in(arena: Arena, size: int, flags: Literal[1] = ...) -> KBuf: ...
@overload
def kmem_alloc_in(arena: Arena, size: int, flags: int) -> KBuf | None: ...
def kmem_alloc_in(arena: Arena, size: int, flags: int = KM_SLEEP) -> KBuf | None:
    """kmem_alloc on a given kernel; see ``kmem_alloc``."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"kmem_alloc: size must be an int, not {type(size).__name__}")
    if size <= 0:
        raise OSError(errno.EINVAL, f"kmem_alloc: bad size {size}")
    if flags not in (KM_SLEEP, KM_NOSLEEP):
        raise OSError(errno.EINVAL, "kmem_alloc: flags must be KM_SLEEP or KM_NOSLEEP")
    heap = heap_of(arena)
    order = _SMALL_ORDER[size] if size < len(_SMALL_ORDER) else _order_for(size)
    c = _cpu_cache(heap) if order <= CACHE_MAX_ORDER else -1
    if c >= 0:
        buf = _cache_alloc(heap, c, order, size)
        if buf is not None:
            return buf
    if (1 << order) > heap.size and flags == KM_SLEEP:
        panic_in(arena, f"kmem_alloc: {size} bytes can never fit a {heap.size}-byte heap")
    w, h = arena.w, heap.h
    heap.enter()
    try:
        blk = _take(heap, order)
        if not blk:  # ask every CPU to give back its cache; this one does so at once
            w[h + K_DRAIN] += 1
            if c >= 0:
                _drain_locked(heap, c)
                blk = _take(heap, order)
        waited = 0
        while not blk and flags == KM_SLEEP and waited < SLEEP_LIMIT:
            w[h + K_WAITERS] += 1
            heap.cv.timedwait(heap.lock, 1, 0)
            w[h + K_WAITERS] -= 1
            waited += 1
            blk = _take(heap, order)
        if blk:
            gen = w[h + K_GEN] + 1
            w[h + K_GEN] = gen
            w[blk // 8] = gen << 16 | ST_ALLOC << 8 | order
            w[blk // 8 + 1] = size
            w[h + K_INUSE] += 1 << order
            w[h + K_NALLOC] += 1
    finally:
        heap.lock.exit()
    if not blk:
        if flags == KM_NOSLEEP:
            return None
        panic_in(arena, f"kmem_alloc: out of memory for {size} bytes after {waited} s")
    return _make_kbuf(arena, blk + _BLK_HDR, size, gen)


def kmem_free_in(arena: Arena, buf: KBuf, size: int) -> None:
    """kmem_free on a given kernel; see ``kmem_free``."""
    if not isinstance(buf, KBuf) or buf.prefix != arena.prefix:
        panic_in(arena, f"kmem_free: {buf!r} is not a buffer of this kernel")
    heap = heap_of(arena)
    blk = buf.offset - _BLK_HDR
    problem = claim(heap, buf, size)
    if problem:
        panic_in(arena, problem)
    order = heap.w[blk // 8] & 0xFF
    c = _cpu_cache(heap) if order <= CACHE_MAX_ORDER else -1
    if c >= 0:
        _cache_free(heap, c, blk, order)
    else:
        _heap_free(heap, blk, order)


def claim(heap: _Heap, buf: KBuf, size: int) -> str | None:
    """Check that ``buf`` is allocated with ``size`` bytes and mark it as being
    freed, atomically (see FREE_STRIPES); what is wrong with the free, or None."""
    w = heap.w
    blk = buf.offset - _BLK_HDR
    stripe = heap.stripes[(blk >> MIN_ORDER) % FREE_STRIPES]
    stripe.enter_nowrap()
    tag, req = w[blk // 8], w[blk // 8 + 1]
    problem = None
    if (tag >> 8) & 0xFF != ST_ALLOC or tag >> 16 != buf.gen:
        problem = f"kmem_free: {buf!r} is not allocated (freed twice?)"
    elif req != size:
        problem = f"kmem_free: size mismatch, {size} freed but {req} allocated"
    else:
        w[blk // 8] = ST_FREEING << 8 | tag & 0xFF
    stripe.exit()
    return problem


def _heap_free(heap: _Heap, blk: int, order: int) -> None:
    """Give a claimed block back to the shared heap, under its lock."""
    w, h = heap.w, heap.h
    heap.enter()
    w[h + K_INUSE] -= 1 << order
    w[h + K_NALLOC] -= 1
    _merge_and_free(heap, blk, order)
    if w[h + K_WAITERS]:
        heap.cv.broadcast()
    heap.lock.exit()


@overload
def kmem_alloc(size: int, flags: Literal[1] = ...) -> KBuf: ...
@overload
def kmem_alloc(size: int, flags: int) -> KBuf | None: ...
def kmem_alloc(size: int, flags: int = KM_SLEEP) -> KBuf | None:
    """kmem_alloc(9): ``size`` bytes of kernel memory (contents undefined).

    KM_NOSLEEP returns None when the heap is exhausted; KM_SLEEP waits for memory
    to be freed and panics after SLEEP_LIMIT seconds, or at once for a request that
    could never fit.
    """
    return kmem_alloc_in(_arena.current(), size, flags)


@overload
def kmem_zalloc_in(arena: Arena, size: int, flags: Literal[1] = ...) -> KBuf: ...
@overload
def kmem_zalloc_in(arena: Arena, size: int, flags: int) -> KBuf | None: ...
def kmem_zalloc_in(arena: Arena, size: int, flags: int = KM_SLEEP) -> KBuf | None:
    """kmem_zalloc on a given kernel."""
    buf = kmem_alloc_in(arena, size, flags)
    if buf is not None:
        ctypes.memset(buf, 0, size)  # type: ignore[arg-type]
    return buf


@overload
def kmem_zalloc(size: int, flags: Literal[1] = ...) -> KBuf: ...
@overload
def kmem_zalloc(size: int, flags: int) -> KBuf | None: ...
def kmem_zalloc(size: int, flags: int = KM_SLEEP) -> KBuf | None:
    """kmem_zalloc(9): like kmem_alloc, but the bytes are zeroed."""
    return kmem_zalloc_in(_arena.current(), size, flags)


def is_live(arena: Arena, buf: KBuf) -> bool:
    """Whether ``buf`` is still allocated (not freed, not handed to someone else)."""
    tag = arena.w[(buf.offset - _BLK_HDR) // 8]
    return (tag >> 8) & 0xFF == ST_ALLOC and tag >> 16 == buf.gen


def kmem_free(buf: KBuf, size: int) -> None:
    """kmem_free(9): give back a buffer; ``size`` must be the allocated size."""
    kmem_free_in(_arena.current(), buf, size)


def heap_size(arena: Arena) -> int:
    """Bytes of block space in a kernel's heap."""
    return arena.w[arena.region("kmem")[0] // 8 + K_SIZE]


def kmem_stats(arena: Arena) -> tuple[int, int, int]:
    """(blocks allocated, bytes in those blocks, heap bytes) of a kernel.  Blocks a
    CPU keeps in its cache are not allocated, but their bytes count as in use: the
    shared heap cannot hand them out."""
    off, _ = arena.region("kmem")
    h = off // 8
    w = arena.w
    cached = sum(w[_cache(arena, cpu) + C_NALLOC] for cpu in range(arena.ncpu))
    return w[h + K_NALLOC] + cached, w[h + K_INUSE], w[h + K_SIZE]


# -- per-CPU caches (pool_cache_cpu_init) ------------------------------------------
#
# NetBSD's pool_cache(9) keeps per-CPU magazines of constructed objects; rumpmp keeps
# one magazine per CPU and size class of free heap blocks.  A small block freed by the
# lwp holding a CPU goes to that CPU's magazine, and the next allocation of its class
# there takes it back, neither touching the heap lock.  An empty magazine is refilled
# with half a magazine under the heap lock, a full one spills half back, so an
# alloc/free pair in a loop never reaches the heap.
#
# Classes: blocks of 32 B to 1 KiB (payloads up to 1008 bytes).  The kernel's own
# records (locks, condvars, credentials, callouts, work items, small blobs) all fall in
# there; bigger blocks are rare and costly to strand.  A CPU caches at most
# MAG * (32 + 64 + ... + 1024) = 32 KiB, 256 KiB for 8 CPUs.
#
# No lock guards a CPU's cache: only the lwp that holds the CPU runs kernel code on it
# (arena.curcpu_scheduled), and it keeps the CPU from reading the cache to writing
# it, except inside heap.enter(), which lets other lwps of this CPU run while it waits;
# so the cache is re-read after every heap.enter().  An lwp never leaves its CPU's
# process, so the cache it comes back to is still its own.  Callers holding no CPU
# (the host, a host thread of a CPU process) always use the shared heap.
#
# Exhaustion: the allocating CPU gives its whole cache back at once, and bumps the
# heap's drain counter so every other CPU gives its cache back on its next kmem call.
# Until then their blocks stay cached: a CPU cannot touch another CPU's cache, and
# an idle CPU keeps its (at most 32 KiB) until it next allocates or frees.

CACHE_MAX_ORDER = 10  # 1 KiB blocks
MAG = 16  # blocks a CPU caches per size class
C_NALLOC = 0  # allocations from this cache minus frees into it (kmem_stats adds them)
C_HITS = 1  # allocations served without the heap lock; also their generation
C_DRAIN = 2  # the heap's K_DRAIN when this cache last gave its blocks back
C_CLASSES = 8
_CLASS_WORDS = 1 + MAG  # count, then the blocks
_CACHE_WORDS = (C_CLASSES + (CACHE_MAX_ORDER - MIN_ORDER + 1) * _CLASS_WORDS + 7) & ~7
# Generations handed out by a cache: their own namespace above the heap's counter,
# with the CPU (MAXCPUS = 64) in the low 6 bits so two caches never hand out the same.
_GEN_CACHED = 1 << 45


def cache_region(ncpu: int) -> tuple[str, int]:
    """The "kmemcache" region: one cache-line aligned record per CPU."""
    return ("kmemcache", ncpu * _CACHE_WORDS * 8)


def _cache(arena: Arena, cpu: int) -> int:
    return arena.region_word("kmemcache") + cpu * _CACHE_WORDS


def pool_cache_cpu_init(arena: Arena, cpu: int) -> None:
    """pool_cache_cpu_init: this CPU's small-block cache starts empty."""
    r = _cache(arena, cpu)
    arena.w[r : r + _CACHE_WORDS] = memoryview(bytes(_CACHE_WORDS * 8)).cast("q")


def _cpu_cache(heap: _Heap) -> int:
    """The calling lwp's CPU cache (word index), or -1 if it holds no CPU of this kernel."""
    here = _arena.here
    if here.arena is not heap.arena or not _arena.curcpu_scheduled():
        return -1
    return heap.caches + here.cpu * _CACHE_WORDS


def _class(c: int, order: int) -> int:
    return c + C_CLASSES + (order - MIN_ORDER) * _CLASS_WORDS


def _cache_alloc(heap: _Heap, c: int, order: int, size: int) -> KBuf | None:
    """Pop a block of ``order`` from this CPU's cache (None if the heap has none)."""
    w = heap.w
    if w[c + C_DRAIN] != w[heap.h + K_DRAIN]:
        _drain(heap, c)
    k = _class(c, order)
    if not w[k] and not _refill(heap, k, order):
        return None
    n = w[k]
    blk = w[k + n]
    w[k] = n - 1
    hits = w[c + C_HITS] + 1
    w[c + C_HITS] = hits
    gen = _GEN_CACHED | hits << 6 | _arena.here.cpu
    w[blk // 8] = gen << 16 | ST_ALLOC << 8 | order
    w[blk // 8 + 1] = size
    w[c + C_NALLOC] += 1
    return _make_kbuf(heap.arena, blk + _BLK_HDR, size, gen)


def _cache_free(heap: _Heap, c: int, blk: int, order: int) -> None:
    """Push a claimed block onto this CPU's cache."""
    w = heap.w
    w[blk // 8] = ST_CACHED << 8 | order
    if w[c + C_DRAIN] != w[heap.h + K_DRAIN]:
        _drain(heap, c)
    k = _class(c, order)
    if w[k] == MAG:
        heap.enter()
        _spill_locked(heap, k, order, MAG // 2)
        heap.lock.exit()
    w[k] += 1
    w[k + w[k]] = blk
    w[c + C_NALLOC] -= 1


def _refill(heap: _Heap, k: int, order: int) -> int:
    """Move up to half a magazine of blocks from the heap into class ``k``."""
    w, h = heap.w, heap.h
    heap.enter()
    while w[k] < MAG // 2:
        blk = _take(heap, order)
        if not blk:
            break
        w[blk // 8] = ST_CACHED << 8 | order
        w[h + K_INUSE] += 1 << order
        w[k] += 1
        w[k + w[k]] = blk
    heap.lock.exit()
    return w[k]


def _spill_locked(heap: _Heap, k: int, order: int, count: int) -> None:
    """Give ``count`` blocks of class ``k`` back to the heap (caller holds its lock)."""
    w, h = heap.w, heap.h
    for _ in range(min(count, w[k])):
        blk = w[k + w[k]]
        w[k] -= 1
        w[h + K_INUSE] -= 1 << order
        _merge_and_free(heap, blk, order)
    if w[h + K_WAITERS]:
        heap.cv.broadcast()


def _drain_locked(heap: _Heap, c: int) -> None:
    """Give every block this CPU caches back to the heap (caller holds its lock)."""
    for order in range(MIN_ORDER, CACHE_MAX_ORDER + 1):
        _spill_locked(heap, _class(c, order), order, MAG)
    heap.w[c + C_DRAIN] = heap.w[heap.h + K_DRAIN]


def _drain(heap: _Heap, c: int) -> None:
    heap.enter()
    _drain_locked(heap, c)
    heap.lock.exit()


def kmem_cache_hits(arena: Arena) -> list[int]:
    """Per CPU: allocations its cache served without taking the heap lock."""
    return [arena.w[_cache(arena, cpu) + C_HITS] for cpu in range(arena.ncpu)]


def kmem_heap_locks(arena: Arena) -> int:
    """How many times the shared heap lock has been taken since boot (not counting
    re-takes as a KM_SLEEP allocation wakes up)."""
    off, _ = arena.region("kmem")
    return arena.w[off // 8 + K_LOCKS]
