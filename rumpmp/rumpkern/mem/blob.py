"""Code and data in transit: cloudpickle blobs stored in the kernel heap.

A blob reference is three words (payload offset, size, generation), so it fits in
any shared record.  Code blobs that are run again and again (a callout handler, an
xcall function) are unpickled once per process and cached by reference.

A blob too big for the heap (over ``SEGMENT_MIN`` bytes or an eighth of the heap, or
when the heap has no room for it at once) travels in a shared-memory segment of its
own instead, so an argument or a result of any size the host can hold never exhausts
or panics the kernel.  Its reference is (creator's pid, size, -serial): a negative
generation marks a segment, named after the kernel's prefix so that a halt removes
it with everything else.
"""

from __future__ import annotations

import errno
import itertools
import pickle
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from hypercalls import param, shm
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.mem.kmem import KM_NOSLEEP, _make_kbuf, heap_size, kmem_alloc_in, kmem_free_in
from rumpmp.sys.vnode import Stat, Statvfs

#: Blobs from this size on (or an eighth of the heap, if less) travel in a segment
#: of their own: making one costs a millisecond or more, copying through the heap
#: far less.
SEGMENT_MIN = 16 << 20

_serial = itertools.count(1)

Ref = tuple[int, int, int]


def _segment_name(arena: Arena, ref: Ref) -> str:
    return f"{arena.prefix}blob{ref[0]}-{-ref[2]}"


def _put_bytes(arena: Arena, data: bytes) -> Ref:
    """Store ``data`` in the heap, or in a segment if it is big; its reference."""
    if len(data) < min(SEGMENT_MIN, heap_size(arena) // 8):
        buf = kmem_alloc_in(arena, len(data), KM_NOSLEEP)
        if buf is not None:
            memoryview(buf).cast("B")[:] = data  # one memcpy
            return buf.offset, len(data), buf.gen
    ref = (param.getpid(), len(data), -next(_serial))
    name = _segment_name(arena, ref)
    try:
        seg = arena.pool.create_named(lambda: shm.new_segment(name, len(data)))
    except OSError as e:
        raise OSError(
            errno.ENOMEM, f"no room for a payload of {len(data)} bytes: {e.strerror}"
        ) from e
    seg.buf[: len(data)] = data
    seg.close()
    return ref


#: Types whose pickles never name a class or function the other side might lack
#: (rumpmp's own result structures are importable everywhere).
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, Stat, Statvfs})


_SEQUENCES = frozenset({tuple, list})
_PLAIN_OR_SEQUENCE = _PLAIN | _SEQUENCES


def _plain(obj: object, depth: int = 3) -> bool:
    """Whether ``obj`` is plain data: a value of a _PLAIN type, or tuples and lists
    of them nested at most ``depth`` deep.  A short sequence is looked at item by
    item; a long one by the set of its items' types, made at C speed."""
    if type(obj) in _PLAIN:
        return True
    if type(obj) not in _SEQUENCES or not depth:
        return False
    items: list | tuple = obj  # type: ignore[assignment]
    if len(items) > 8:
        types = set(map(type, items))
        if types <= _PLAIN:
            return True
        if not types <= _PLAIN_OR_SEQUENCE:
            return False
        return all(_plain(x, depth - 1) for x in items if type(x) in _SEQUENCES)
    for x in items:  # noqa: SIM110 - a loop: a generator costs more for a few items
        if type(x) not in _PLAIN and not _plain(x, depth - 1):
            return False
    return True


def dumps(obj: object) -> bytes:
    """Pickle ``obj`` for another process of the kernel.  Plain data goes through
    pickle (about 4x faster); anything else through cloudpickle, which carries by
    value the functions and classes a CPU process cannot import (those of
    ``__main__`` defined after boot, lambdas, closures)."""
    if _plain(obj):
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


# -- functions: pickled once by the caller, unpickled once by each CPU ----------------

#: How many functions each cache keeps; a full cache starts over (a clear is atomic,
#: so threads sharing a cache need no lock).
FUNCTIONS = 256

#: Functions that cannot change once made: their pickle can be kept and reused.
_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType)


class PickledFunctions:
    """The caller's side: each function's pickle, made at its first call.  A
    function travels by reference when its module can be imported, by value (with
    the globals it uses, as they were then) when it was made in ``__main__``; other
    callables (bound methods, partials) are pickled at each call, as they may
    change."""

    def __init__(self) -> None:
        self._pickles: dict[int, tuple[Callable[..., Any], bytes]] = {}

    def pickle(self, func: Callable[..., Any]) -> bytes:
        if type(func) not in _FUNCTION_TYPES:
            return dumps(func)
        hit = self._pickles.get(id(func))
        if hit is None or hit[0] is not func:  # (holding func keeps its id from reuse)
            if len(self._pickles) >= FUNCTIONS:
                self._pickles.clear()
            hit = self._pickles[id(func)] = (func, dumps(func))
        return hit[1]


def unpickled_function(arena: Arena, data: bytes) -> Callable[..., Any]:
    """The CPU's side: the function pickled as ``data``, unpickled once per process."""
    cache: dict[bytes, Callable[..., Any]] = arena.attached("functions", dict)
    func = cache.get(data)
    if func is None:
        if len(cache) >= FUNCTIONS:
            cache.clear()
        func = cache[data] = pickle.loads(data)
    return func


def blob_put(arena: Arena, obj: object, w_index: int) -> None:
    """Pickle ``obj`` into the heap and store its reference at words w_index..+2."""
    data = dumps(obj)
    ref = _put_bytes(arena, data)
    arena.w[w_index], arena.w[w_index + 1], arena.w[w_index + 2] = ref


def blob_ref(arena: Arena, w_index: int) -> Ref:
    """The reference stored at words w_index..+2."""
    return arena.w[w_index], arena.w[w_index + 1], arena.w[w_index + 2]


def _bytes_of(arena: Arena, ref: Ref) -> bytes:
    off, size, gen = ref
    if not off:
        raise LookupError("no blob stored here")
    if gen < 0:
        return shm.read_segment(_segment_name(arena, ref), size)
    return bytes(_make_kbuf(arena, off, size, gen))


def blob_get(arena: Arena, w_index: int, cache: bool = False) -> Any:
    """Unpickle the blob referenced at w_index (cached per process if ``cache``)."""
    ref = blob_ref(arena, w_index)
    key = ("blob", ref[0], ref[2])
    if cache and key in arena.cache:
        return arena.cache[key]
    obj = pickle.loads(_bytes_of(arena, ref))
    if cache:
        arena.cache[key] = obj
    return obj


def blob_free_ref(arena: Arena, ref: Ref) -> None:
    """Free the blob a reference names."""
    off, size, gen = ref
    arena.cache.pop(("blob", off, gen), None)
    if gen < 0:
        shm.unlink(_segment_name(arena, ref))
    else:
        kmem_free_in(arena, _make_kbuf(arena, off, size, gen), size)


def blob_free(arena: Arena, w_index: int) -> None:
    """Free the blob referenced at w_index and clear the reference."""
    ref = blob_ref(arena, w_index)
    if not ref[0]:
        raise LookupError("no blob stored here")
    blob_free_ref(arena, ref)
    arena.w[w_index] = arena.w[w_index + 1] = arena.w[w_index + 2] = 0


# -- payloads: a pickle in a fixed buffer, or in a blob when it does not fit ----------
#
# A payload buffer is ``capacity`` bytes starting at word ``word`` of a record: its
# first word is the pickle's length (0: empty), or -1 when the pickle did not fit
# and is a blob whose reference follows.  Small calls and results never touch the
# heap this way.

_IN_BLOB = -1
_RAW_BLOB = -2  # the blob is a value of type bytes itself, not a pickle
#: Bytes values from this size on skip pickle (a read's data: a copy, not three).
RAW_MIN = 4096


def payload_put(arena: Arena, word: int, capacity: int, data: bytes, raw: bool = False) -> None:
    """Store the pickle ``data`` in the payload buffer at ``word`` (with ``raw``,
    ``data`` is a bytes value to store as it is, in a blob)."""
    w = arena.w
    if raw:
        w[word + 1], w[word + 2], w[word + 3] = _put_bytes(arena, data)
        w[word] = _RAW_BLOB
    elif len(data) <= capacity - 8:
        start = word * 8 + 8
        arena.buf[start : start + len(data)] = data
        w[word] = len(data)
    else:
        w[word + 1], w[word + 2], w[word + 3] = _put_bytes(arena, data)
        w[word] = _IN_BLOB


def payload_get(arena: Arena, word: int) -> Any:
    """Unpickle the payload at ``word`` (a raw one is its bytes)."""
    n = arena.w[word]
    if n == _RAW_BLOB:
        return _bytes_of(arena, blob_ref(arena, word + 1))
    if n == _IN_BLOB:
        return pickle.loads(_bytes_of(arena, blob_ref(arena, word + 1)))
    start = word * 8 + 8
    return pickle.loads(arena.buf[start : start + n])


def payload_drop(arena: Arena, word: int) -> None:
    """Empty the payload buffer at ``word`` (freeing its blob, if it has one)."""
    if payload_in_blob(arena, word):
        blob_free_ref(arena, blob_ref(arena, word + 1))
    arena.w[word] = 0


def payload_in_blob(arena: Arena, word: int) -> bool:
    """Whether the payload at ``word`` is in a blob (dropping it then frees heap
    memory or a segment, which takes the heap's lock)."""
    return arena.w[word] in (_IN_BLOB, _RAW_BLOB)


def payload_is_raw(arena: Arena, word: int) -> bool:
    """Whether the payload at ``word`` was stored raw (``payload_put(raw=True)``)."""
    return arena.w[word] == _RAW_BLOB
