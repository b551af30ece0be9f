"""pool(9) and pool_cache(9) (subr_pool.c): fixed-size objects, and caches of
constructed objects with a cache per CPU.

A **pool** hands out objects of one size from the kernel heap (each a ``KBuf``) and
counts them; ``pool_sethardlimit`` bounds how many may be out at once, and then
``PR_WAITOK`` waits for a ``pool_put`` while ``PR_NOWAIT`` returns None.

A **pool_cache** keeps objects its constructor has already built.  Each CPU has its
own cache of up to ``MAG`` objects, which only the lwps of that CPU touch: a get or
a put there is a list operation in the CPU's process, with no lock and no shared
memory touched (the seed's ``pool_cache_cpu_init``: the cache is made the first time
the CPU uses it).  An empty cache takes half a magazine from the shared *depot*, a
full one gives half back, both under the depot's lock; the depot only gets a new
object from the pool, and runs the constructor on it, when it has none.  The
destructor runs when an object goes back to the pool: ``pool_cache_invalidate`` and
``pool_cache_destroy`` first have every CPU give its cache back (a cross-call, as
NetBSD's do).  The host, which is no CPU, goes to the depot directly.

rumpmp differs from NetBSD in the call shape, as mutex_init does: ``pool_init``
returns the pool; objects are aligned to at most 16 bytes (the heap's alignment),
so a larger ``align`` is EINVAL.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.args import int_arg
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.intr.xcall import xc_broadcast, xc_wait
from rumpmp.rumpkern.locking.condvar import cv_broadcast, cv_destroy, cv_init, cv_wait, kcondvar_t
from rumpmp.rumpkern.locking.mutex import (
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init,
)
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.kmem import KBuf

PR_WAITOK = 0x01
PR_NOWAIT = 0x02
PR_ZERO = 0x100

HEAP_ALIGN = 16
MAG = 32  # objects a CPU caches

# Pool record words.
P_SIZE = 0
P_NOUT = 1  # objects out of the pool (with the users or in caches)
P_HARDLIMIT = 2  # 0: none
P_NGET = 3
P_NPUT = 4
P_WAITERS = 5
_P_WORDS = 8

# Pool cache record words: the depot is an array of (offset, generation) pairs.
C_NDEPOT = 0
C_DEPOT = 1  # KBuf offset, generation and capacity (pairs) of the depot array
C_DEPOT_GEN = 2
C_DEPOT_CAP = 3
C_NCTOR = 4  # constructor calls
C_NDTOR = 5
_C_WORDS = 8


class pool_t(Handle):
    """A pool (NetBSD's struct pool): pickles by reference."""

    __slots__ = ("arena", "cv", "lock", "name", "rec", "size")

    def __init__(self, arena: Arena, rec: KBuf, lock: kmutex_t, cv: kcondvar_t, name: str) -> None:
        self.arena, self.rec, self.lock, self.cv, self.name = arena, rec, lock, cv, name
        self.size = arena.w[rec.offset // 8 + P_SIZE]

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.lock, self.cv, self.name)

    def _what(self) -> str:
        return f"{self.name} ({self.size} bytes)"


def pool_init(
    size: int,
    align: int = 0,
    align_offset: int = 0,
    flags: int = 0,
    wchan: str = "pool",
    palloc: object = None,
    ipl: int = 0,
) -> pool_t:
    """pool_init(9): a pool of ``size``-byte objects (returned, where NetBSD fills one in)."""
    int_arg(size, "size", "pool_init")
    int_arg(align, "align", "pool_init")
    if size <= 0 or align < 0 or align & (align - 1) or align > HEAP_ALIGN:
        raise OSError(errno.EINVAL, f"pool_init: bad size {size} or align {align}")
    if not isinstance(wchan, str):
        raise TypeError(f"pool_init: wchan must be a str, not {type(wchan).__name__}")
    arena = _arena.current()
    rec = kmem.kmem_zalloc_in(arena, _P_WORDS * 8)
    arena.w[rec.offset // 8 + P_SIZE] = size
    return pool_t(arena, rec, mutex_init(), cv_init(wchan), wchan)


def pool_sethardlimit(pp: pool_t, n: int, warnmess: str = "", ratecap: int = 0) -> int:
    """pool_sethardlimit(9): at most ``n`` objects out at once (0: no limit)."""
    int_arg(n, "n", "pool_sethardlimit")
    pp.arena.w[pp.rec.offset // 8 + P_HARDLIMIT] = n
    return 0


def pool_get(pp: pool_t, flags: int = PR_WAITOK) -> KBuf | None:
    """pool_get(9): an object; with PR_NOWAIT None if the hard limit is reached or
    the heap is exhausted, with PR_WAITOK waits for one.  PR_ZERO zeroes it."""
    if not isinstance(pp, pool_t):
        raise TypeError(f"pool_get: pp must be a pool_t, not {type(pp).__name__}")
    if not flags & (PR_WAITOK | PR_NOWAIT):
        raise OSError(errno.EINVAL, "pool_get: flags need PR_WAITOK or PR_NOWAIT")
    w, p = pp.arena.w, pp.rec.offset // 8
    mutex_enter(pp.lock)
    while w[p + P_HARDLIMIT] and w[p + P_NOUT] >= w[p + P_HARDLIMIT]:
        if flags & PR_NOWAIT:
            mutex_exit(pp.lock)
            return None
        w[p + P_WAITERS] += 1
        cv_wait(pp.cv, pp.lock)
        w[p + P_WAITERS] -= 1
    w[p + P_NOUT] += 1
    w[p + P_NGET] += 1
    mutex_exit(pp.lock)
    km = kmem.KM_NOSLEEP if flags & PR_NOWAIT else kmem.KM_SLEEP
    obj = (kmem.kmem_zalloc_in if flags & PR_ZERO else kmem.kmem_alloc_in)(pp.arena, pp.size, km)
    if obj is None:
        _gone(pp, 1)
    return obj


def _gone(pp: pool_t, n: int) -> None:
    """``n`` objects are back (or were never handed out): wake those waiting."""
    w, p = pp.arena.w, pp.rec.offset // 8
    mutex_enter(pp.lock)
    w[p + P_NOUT] -= n
    if w[p + P_WAITERS]:
        cv_broadcast(pp.cv)
    mutex_exit(pp.lock)


def _check_obj(pp: pool_t, obj: object, func: str) -> KBuf:
    if not isinstance(obj, KBuf) or obj.prefix != pp.arena.prefix or len(obj) != pp.size:
        panic_in(pp.arena, f"{func}: {obj!r} is not an object of pool {pp.name}")
    return obj  # type: ignore[return-value]


def pool_put(pp: pool_t, obj: KBuf) -> None:
    """pool_put(9): give an object back."""
    kmem.kmem_free_in(pp.arena, _check_obj(pp, obj, "pool_put"), pp.size)
    pp.arena.w[pp.rec.offset // 8 + P_NPUT] += 1
    _gone(pp, 1)


def pool_nout(pp: pool_t) -> int:
    """Objects of the pool out now (NetBSD's pr_nout)."""
    return pp.arena.w[pp.rec.offset // 8 + P_NOUT]


def pool_destroy(pp: pool_t) -> None:
    """pool_destroy(9): every object must have been put back (a panic otherwise)."""
    if pool_nout(pp):
        panic_in(pp.arena, f"pool_destroy: pool {pp.name} busy: still out: {pool_nout(pp)}")
    cv_destroy(pp.cv)
    mutex_destroy(pp.lock)
    kmem.kmem_free_in(pp.arena, pp.rec, _P_WORDS * 8)


# -- pool_cache(9) -------------------------------------------------------------------

Ctor = Callable[[Any, KBuf, int], int]
Dtor = Callable[[Any, KBuf], None]


class pool_cache_t(Handle):
    """A pool cache: its pool, its depot and the functions; pickles by reference.
    ``_cpu`` is this process's CPU cache (a list of objects), or None on the host."""

    __slots__ = ("_cpu", "arena", "arg", "ctor", "dtor", "lock", "pool", "rec")

    def __init__(
        self,
        pool: pool_t,
        rec: KBuf,
        lock: kmutex_t,
        ctor: Ctor | None,
        dtor: Dtor | None,
        arg: object,
    ) -> None:
        self.pool, self.rec, self.lock = pool, rec, lock
        self.ctor, self.dtor, self.arg = ctor, dtor, arg
        self.arena = pool.arena
        here = _arena.here
        key = ("pool_cache", rec.offset, rec.gen)
        self._cpu: list[KBuf] | None = (
            self.arena.attached(key, list) if here.arena is self.arena else None
        )

    def _args(self) -> tuple:
        return (self.pool, self.rec, self.lock, self.ctor, self.dtor, self.arg)

    def _what(self) -> str:
        return self.pool._what()


def pool_cache_init(
    size: int,
    align: int = 0,
    align_offset: int = 0,
    flags: int = 0,
    name: str = "pool_cache",
    palloc: object = None,
    ipl: int = 0,
    ctor: Ctor | None = None,
    dtor: Dtor | None = None,
    arg: object = None,
) -> pool_cache_t:
    """pool_cache_init(9): a cache of ``size``-byte objects built by
    ``ctor(arg, obj, flags)`` (0 for success) and taken apart by ``dtor(arg, obj)``."""
    for fn, what in ((ctor, "ctor"), (dtor, "dtor")):
        if fn is not None and not callable(fn):
            raise TypeError(f"pool_cache_init: {what} must be callable, not {type(fn).__name__}")
    pool = pool_init(size, align, align_offset, flags, name, palloc, ipl)
    rec = kmem.kmem_zalloc_in(pool.arena, _C_WORDS * 8)
    return pool_cache_t(pool, rec, mutex_init(), ctor, dtor, arg)


def pool_cache_get(pc: pool_cache_t, flags: int = PR_WAITOK) -> KBuf | None:
    """pool_cache_get(9): a constructed object, from this CPU's cache if it has one;
    None with PR_NOWAIT if none can be had at once, or if the constructor failed."""
    try:
        return pc._cpu.pop()  # type: ignore[union-attr]
    except (IndexError, AttributeError):
        return _get_slow(pc, flags)


def _get_slow(pc: pool_cache_t, flags: int) -> KBuf | None:
    if not isinstance(pc, pool_cache_t):
        raise TypeError(f"pool_cache_get: pc must be a pool_cache_t, not {type(pc).__name__}")
    got = _depot_take(pc, MAG // 2 if pc._cpu is not None else 1)
    if got:
        if pc._cpu is not None:
            pc._cpu.extend(got[1:])
        return got[0]
    new = pool_get(pc.pool, flags)
    if new is None:
        return None
    try:
        failed = pc.ctor is not None and pc.ctor(pc.arg, new, flags) != 0
    except BaseException:
        pool_put(pc.pool, new)  # the caller gets the exception, the pool its object
        raise
    if failed:
        pool_put(pc.pool, new)
        return None
    pc.arena.w[pc.rec.offset // 8 + C_NCTOR] += 1
    return new


def pool_cache_put(pc: pool_cache_t, obj: KBuf) -> None:
    """pool_cache_put(9): give back a constructed object (it stays constructed)."""
    cpu = getattr(pc, "_cpu", None)
    if cpu is not None and len(cpu) < MAG and isinstance(obj, KBuf) and len(obj) == pc.pool.size:
        cpu.append(obj)
        return
    if not isinstance(pc, pool_cache_t):
        raise TypeError(f"pool_cache_put: pc must be a pool_cache_t, not {type(pc).__name__}")
    _check_obj(pc.pool, obj, "pool_cache_put")
    if cpu is None:
        _depot_give(pc, [obj])
        return
    spill = [cpu.pop() for _ in range(MAG // 2)]
    cpu.append(obj)
    _depot_give(pc, spill)


def _depot(pc: pool_cache_t) -> int:
    """Word index of the depot array's first pair (caller holds the lock)."""
    return pc.arena.w[pc.rec.offset // 8 + C_DEPOT] // 8


def _depot_take(pc: pool_cache_t, n: int) -> list[KBuf]:
    """Up to ``n`` objects from the depot."""
    w, c = pc.arena.w, pc.rec.offset // 8
    if not w[c + C_NDEPOT]:  # a look without the lock: the depot is often empty
        return []
    mutex_enter(pc.lock)
    d = _depot(pc)
    have = w[c + C_NDEPOT]
    take = min(n, have)
    pairs = [(w[d + 2 * i], w[d + 2 * i + 1]) for i in range(have - take, have)]
    w[c + C_NDEPOT] = have - take
    mutex_exit(pc.lock)
    return [kmem.kbuf_at(pc.arena, off, pc.pool.size, gen) for off, gen in pairs]


def _depot_give(pc: pool_cache_t, objs: list[KBuf]) -> None:
    """Put ``objs`` in the depot, growing its array (outside the lock) when full."""
    w, c = pc.arena.w, pc.rec.offset // 8
    while True:
        mutex_enter(pc.lock)
        have, cap = w[c + C_NDEPOT], w[c + C_DEPOT_CAP]
        if have + len(objs) <= cap:
            break
        mutex_exit(pc.lock)
        _grow_depot(pc, have + len(objs))
    d = _depot(pc)
    for i, obj in enumerate(objs, have):
        w[d + 2 * i], w[d + 2 * i + 1] = obj.offset, obj.gen
    w[c + C_NDEPOT] = have + len(objs)
    mutex_exit(pc.lock)


def _grow_depot(pc: pool_cache_t, need: int) -> None:
    cap = max(2 * MAG, 1 << (need - 1).bit_length())
    new = kmem.kmem_alloc_in(pc.arena, cap * 16)
    w, c = pc.arena.w, pc.rec.offset // 8
    mutex_enter(pc.lock)
    old_cap = w[c + C_DEPOT_CAP]
    if old_cap >= cap:  # another CPU grew it meanwhile
        mutex_exit(pc.lock)
        kmem.kmem_free_in(pc.arena, new, cap * 16)
        return
    old = (
        kmem.kbuf_at(pc.arena, w[c + C_DEPOT], old_cap * 16, w[c + C_DEPOT_GEN])
        if old_cap
        else None
    )
    if old is not None:
        memoryview(new).cast("B")[: old_cap * 16] = memoryview(old).cast("B")
    w[c + C_DEPOT], w[c + C_DEPOT_GEN], w[c + C_DEPOT_CAP] = new.offset, new.gen, cap
    mutex_exit(pc.lock)
    if old is not None:
        kmem.kmem_free_in(pc.arena, old, old_cap * 16)


def _give_back_cpu_cache(pc: pool_cache_t, forget: bool) -> None:
    """Cross-call: this CPU's cache goes to the depot (and with ``forget``, the
    cache itself: the pool cache is being destroyed)."""
    if pc._cpu:
        objs = pc._cpu[:]
        pc._cpu.clear()
        _depot_give(pc, objs)
    if forget:
        pc.arena.cache.pop(("pool_cache", pc.rec.offset, pc.rec.gen), None)


def pool_cache_invalidate(pc: pool_cache_t) -> None:
    """pool_cache_invalidate(9): every cached object is destructed and goes back to
    the pool (those handed out are not touched)."""
    _invalidate(pc, False)


def _invalidate(pc: pool_cache_t, forget: bool) -> None:
    xc_wait(xc_broadcast(0, _give_back_cpu_cache, pc, forget))
    objs = _depot_take(pc, 1 << 62)
    for obj in objs:
        if pc.dtor is not None:
            pc.dtor(pc.arg, obj)
        pool_put(pc.pool, obj)
    pc.arena.w[pc.rec.offset // 8 + C_NDTOR] += len(objs)


def pool_cache_destroy(pc: pool_cache_t) -> None:
    """pool_cache_destroy(9): invalidate, then destroy the pool (every object must be
    back: a panic otherwise)."""
    _invalidate(pc, True)
    w, c = pc.arena.w, pc.rec.offset // 8
    if w[c + C_DEPOT_CAP]:
        depot = kmem.kbuf_at(pc.arena, w[c + C_DEPOT], w[c + C_DEPOT_CAP] * 16, w[c + C_DEPOT_GEN])
        kmem.kmem_free_in(pc.arena, depot, w[c + C_DEPOT_CAP] * 16)
    pool_destroy(pc.pool)
    mutex_destroy(pc.lock)
    kmem.kmem_free_in(pc.arena, pc.rec, _C_WORDS * 8)


def pool_cache_stats(pc: pool_cache_t) -> dict[str, int]:
    """Constructor and destructor calls, objects in the depot and out of the pool."""
    w, c = pc.arena.w, pc.rec.offset // 8
    return {
        "ctor": w[c + C_NCTOR],
        "dtor": w[c + C_NDTOR],
        "depot": w[c + C_NDEPOT],
        "nout": pool_nout(pc.pool),
    }
