"""atomic_ops(3), atomic_loadstore(9) and membar_ops(3) on words of kernel memory.

A pointer is a ``KBuf`` (its first word) or a ``(KBuf, byte offset)`` pair; the
word must lie inside the buffer and be naturally aligned (EFAULT, EINVAL).  Words
are unsigned, as the ``uint32_t``/``uint64_t`` of NetBSD's prototypes: deltas wrap
modulo 2**32 or 2**64, and ``atomic_add_32(p, -1)`` counts down.

Every read-modify-write is atomic across all CPU processes of the kernel and the
host: it runs under the striped lock of its word's cache line
(``hypercalls/sync/atomic.py`` says why a lock and not a CPU instruction).  A store
takes the stripe too, so it never lands in the middle of another CPU's update; a
load does not need it (an aligned word is read in one access).  The ``_uint`` and
``_ulong`` names are the 32- and 64-bit operations (LP64).  The membar_* calls are
full memory barriers.

rumpmp differs from NetBSD in that the type-generic ``atomic_load_*`` and
``atomic_store_*`` take the width as ``bits=`` (64 unless told), since a Python
pointer has no type.
"""

from __future__ import annotations

import errno
import operator
from collections.abc import Callable

from hypercalls.sync.atomic import STRIPES, Stripes, stripes_create
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.mem.kmem import KBuf

REGION = ("atomic", STRIPES * 8)  # the stripes' pool slots

_MASK = {32: (1 << 32) - 1, 64: (1 << 64) - 1}

Pointer = KBuf | tuple[KBuf, int]


def atomic_init(arena: Arena) -> None:
    """Make the kernel's stripes (at boot)."""
    r = arena.region_word("atomic")
    arena.w[r : r + STRIPES] = memoryview(bytes(8 * STRIPES)).cast("q")
    for i, slot in enumerate(stripes_create(arena.pool)):
        arena.w[r + i] = slot


class _Words:
    """A kernel's memory seen as unsigned 32- and 64-bit words, and its stripes."""

    def __init__(self, arena: Arena) -> None:
        self.views = {32: arena.buf.cast("I"), 64: arena.buf.cast("Q")}
        r = arena.region_word("atomic")
        self.stripes = Stripes(arena.pool, list(arena.w[r : r + STRIPES]))


def _locate(p: object, bits: int) -> tuple:
    """(word view, index, stripe, stripes) of pointer ``p``; a KBuf keeps its own."""
    buf, off = p if isinstance(p, tuple) and len(p) == 2 else (p, 0)
    if not isinstance(buf, KBuf):
        raise TypeError(f"ptr must be a KBuf or a (KBuf, offset) pair, not {type(p).__name__}")
    if isinstance(off, bool) or not isinstance(off, int):
        raise TypeError(f"ptr offset must be an int, not {type(off).__name__}")
    size = bits // 8
    if off % size:
        raise OSError(errno.EINVAL, f"atomic: offset {off} is not {size}-byte aligned")
    if not 0 <= off <= len(buf) - size:
        raise OSError(errno.EFAULT, f"atomic: offset {off} is outside the {len(buf)}-byte buffer")
    arena = Arena.attach(buf.prefix)
    words = arena.attached("atomic", lambda: _Words(arena))
    addr = buf.offset + off
    where = (words.views[bits], addr // size, words.stripes.lock_of(addr), words.stripes)
    if p is buf:
        setattr(buf, f"_atomic{bits}", where)
    return where


def _check_bits(bits: object) -> None:
    if bits not in _MASK:
        raise OSError(errno.EINVAL, f"atomic: bits must be 32 or 64, not {bits!r}")


def _where(p: object, bits: int) -> tuple:
    _check_bits(bits)
    try:
        return getattr(p, f"_atomic{bits}")
    except AttributeError:
        return _locate(p, bits)


def _not_an_int(value: object, what: str) -> None:
    raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def _rmw(bits: int, op: Callable[[int, int], int], returns: int | None, what: str) -> Callable:
    """An atomic_ops(3) function of a pointer and a value: ``op(old, x)`` stored
    atomically; it returns the old value (``returns`` 0), the new (1) or nothing
    (None).  Specialised by closure, so that the fast path is a handful of bytecodes
    (an add is done inline: calling operator.add costs more than the add)."""
    mask, attr, add = _MASK[bits], f"_atomic{bits}", op is operator.add

    def update(p: Pointer, x: int) -> int | None:
        if type(x) is not int:
            _not_an_int(x, what)
        try:
            view, i, lock, stripes = getattr(p, attr)
        except AttributeError:
            view, i, lock, stripes = _locate(p, bits)
        if not lock.acquire(False):
            stripes.wait(lock)
        try:
            old = view[i]
            new = view[i] = (old + x if add else op(old, x)) & mask
        finally:
            lock.release()
        return None if returns is None else new if returns else old

    return update


def _step(bits: int, step: int, nv: bool) -> Callable:
    """atomic_inc/dec (``step`` +1 or -1), returning the new value with ``nv``: the
    body of ``_rmw`` once more, without the value, for the hottest of the calls."""
    mask, attr = _MASK[bits], f"_atomic{bits}"

    def update(p: Pointer) -> int | None:
        try:
            view, i, lock, stripes = getattr(p, attr)
        except AttributeError:
            view, i, lock, stripes = _locate(p, bits)
        if not lock.acquire(False):
            stripes.wait(lock)
        try:
            new = view[i] = (view[i] + step) & mask
        finally:
            lock.release()
        return new if nv else None

    return update


def _second(_: int, x: int) -> int:
    return x


def _cas(bits: int) -> Callable[[Pointer, int, int], int]:
    mask, attr = _MASK[bits], f"_atomic{bits}"

    def atomic_cas(p: Pointer, expected: int, new: int) -> int:
        """Store ``new`` if the word holds ``expected``; the value it held."""
        if type(expected) is not int or type(new) is not int:
            _not_an_int(new if type(expected) is int else expected, "expected or new")
        try:
            view, i, lock, stripes = getattr(p, attr)
        except AttributeError:
            view, i, lock, stripes = _locate(p, bits)
        if not lock.acquire(False):
            stripes.wait(lock)
        try:
            old = view[i]
            if old == expected & mask:
                view[i] = new & mask
        finally:
            lock.release()
        return old

    return atomic_cas


atomic_add_32 = _rmw(32, operator.add, None, "delta")
atomic_add_32_nv = _rmw(32, operator.add, 1, "delta")
atomic_and_32 = _rmw(32, operator.and_, None, "bits")
atomic_and_32_nv = _rmw(32, operator.and_, 1, "bits")
atomic_or_32 = _rmw(32, operator.or_, None, "bits")
atomic_or_32_nv = _rmw(32, operator.or_, 1, "bits")
atomic_swap_32 = _rmw(32, _second, 0, "new")
atomic_inc_32 = _step(32, 1, False)
atomic_inc_32_nv = _step(32, 1, True)
atomic_dec_32 = _step(32, -1, False)
atomic_dec_32_nv = _step(32, -1, True)
atomic_cas_32 = _cas(32)

atomic_add_64 = _rmw(64, operator.add, None, "delta")
atomic_add_64_nv = _rmw(64, operator.add, 1, "delta")
atomic_and_64 = _rmw(64, operator.and_, None, "bits")
atomic_and_64_nv = _rmw(64, operator.and_, 1, "bits")
atomic_or_64 = _rmw(64, operator.or_, None, "bits")
atomic_or_64_nv = _rmw(64, operator.or_, 1, "bits")
atomic_swap_64 = _rmw(64, _second, 0, "new")
atomic_inc_64 = _step(64, 1, False)
atomic_inc_64_nv = _step(64, 1, True)
atomic_dec_64 = _step(64, -1, False)
atomic_dec_64_nv = _step(64, -1, True)
atomic_cas_64 = _cas(64)

for _name, _fn in list(globals().items()):  # name each function after its manual page
    if _name.startswith("atomic_") and getattr(_fn, "__name__", "") == "update":
        _fn.__name__ = _fn.__qualname__ = _name
        _fn.__doc__ = f"atomic_ops(3) {_name}: atomic across every CPU."
    elif _name.startswith("atomic_cas_"):
        _fn.__name__ = _fn.__qualname__ = _name

# LP64: unsigned int is 32 bits, unsigned long 64.
atomic_add_uint, atomic_add_uint_nv = atomic_add_32, atomic_add_32_nv
atomic_and_uint, atomic_and_uint_nv = atomic_and_32, atomic_and_32_nv
atomic_or_uint, atomic_or_uint_nv = atomic_or_32, atomic_or_32_nv
atomic_inc_uint, atomic_inc_uint_nv = atomic_inc_32, atomic_inc_32_nv
atomic_dec_uint, atomic_dec_uint_nv = atomic_dec_32, atomic_dec_32_nv
atomic_swap_uint, atomic_cas_uint = atomic_swap_32, atomic_cas_32
atomic_add_ulong, atomic_add_ulong_nv = atomic_add_64, atomic_add_64_nv
atomic_and_ulong, atomic_and_ulong_nv = atomic_and_64, atomic_and_64_nv
atomic_or_ulong, atomic_or_ulong_nv = atomic_or_64, atomic_or_64_nv
atomic_inc_ulong, atomic_inc_ulong_nv = atomic_inc_64, atomic_inc_64_nv
atomic_dec_ulong, atomic_dec_ulong_nv = atomic_dec_64, atomic_dec_64_nv
atomic_swap_ulong, atomic_cas_ulong = atomic_swap_64, atomic_cas_64


def atomic_load_relaxed(p: Pointer, bits: int = 64) -> int:
    """atomic_load_relaxed(9): the word's value, read in one access."""
    view, i, _, _ = _where(p, bits)
    return view[i]


def atomic_load_acquire(p: Pointer, bits: int = 64) -> int:
    """atomic_load_acquire(9): the word's value; later loads and stores of this lwp
    are not made before it (the interpreter runs them in program order)."""
    view, i, _, _ = _where(p, bits)
    return view[i]


_store = {bits: _rmw(bits, _second, None, "value") for bits in (32, 64)}


def atomic_store_relaxed(p: Pointer, value: int, bits: int = 64) -> None:
    """atomic_store_relaxed(9): store ``value`` (under the word's stripe, so that it
    falls before or after a concurrent update, never inside it)."""
    _check_bits(bits)
    _store[bits](p, value)


def atomic_store_release(p: Pointer, value: int, bits: int = 64) -> None:
    """atomic_store_release(9): store ``value`` after every earlier load and store
    of this lwp (the stripe's semaphore is a full barrier)."""
    _check_bits(bits)
    _store[bits](p, value)


def _fence() -> None:
    a = _arena.current()
    a.attached("atomic", lambda: _Words(a)).stripes.fence()


def membar_sync() -> None:
    """membar_sync(3): a full memory barrier."""
    _fence()


membar_enter = membar_exit = membar_producer = membar_consumer = membar_sync
membar_acquire = membar_release = membar_sync
