"""Code and data in transit: cloudpickle blobs stored in the kernel heap.

A blob reference is three words (payload offset, size, generation), so it fits in
any shared record.  Code blobs that are run again and again (a callout handler, an
xcall function) are unpickled once per process and cached by reference.
"""

from __future__ import annotations

import pickle

import cloudpickle

from .arena import Arena
from .kmem import KM_SLEEP, _make_kbuf, kmem_alloc_in, kmem_free_in


def blob_put(arena: Arena, obj: object, w_index: int) -> None:
    """Pickle ``obj`` into the heap and store its reference at words w_index..+2."""
    data = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    buf = kmem_alloc_in(arena, len(data), KM_SLEEP)
    buf[:] = data  # type: ignore[index]
    arena.w[w_index] = buf.offset
    arena.w[w_index + 1] = len(data)
    arena.w[w_index + 2] = buf.gen


def _buf_at(arena: Arena, w_index: int):
    off, size, gen = arena.w[w_index], arena.w[w_index + 1], arena.w[w_index + 2]
    if not off:
        raise LookupError("no blob stored here")
    return _make_kbuf(arena, off, size, gen)


def blob_get(arena: Arena, w_index: int, cache: bool = False) -> object:
    """Unpickle the blob referenced at w_index (cached per process if ``cache``)."""
    key = ("blob", arena.w[w_index], arena.w[w_index + 2])
    if cache and key in arena.cache:
        return arena.cache[key]
    obj = pickle.loads(bytes(_buf_at(arena, w_index)))
    if cache:
        arena.cache[key] = obj
    return obj


def blob_free(arena: Arena, w_index: int) -> None:
    """Free the blob referenced at w_index and clear the reference."""
    buf = _buf_at(arena, w_index)
    arena.cache.pop(("blob", arena.w[w_index], arena.w[w_index + 2]), None)
    kmem_free_in(arena, buf, len(buf))
    arena.w[w_index] = arena.w[w_index + 1] = arena.w[w_index + 2] = 0
