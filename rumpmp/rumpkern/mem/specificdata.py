"""lwp-specific data (subr_specificdata.c, lwp_specific_key_create(9)).

Keys are kernel-wide, in a small table in shared memory with each key's destructor.
An lwp's values live in a buffer of its own in the kernel heap, one pickled value per
key, found through its record: so whichever thread carries the lwp (an lwp context
can be switched to on any CPU) sees them.  When the lwp ends, the destructor of each
key it holds a value for runs with that value, as NetBSD's do.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.sys.lwp import L_SPECIFIC

NKEYS = 32
_K_USED, _K_DTOR, _K_WORDS = 0, 1, 4  # per key: in use, blob of the destructor (3 words)
_TABLE_BYTES = NKEYS * 3 * 8  # per lwp: a blob reference per key
REGION = ("specific", 8 + NKEYS * _K_WORDS * 8)


def specificdata_init(arena: Arena) -> None:
    """The key table's lock (the host, at boot)."""
    arena.w[arena.region_word("specific")] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


def _key_word(arena: Arena, key: int) -> int:
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < NKEYS:
        raise OSError(errno.EINVAL, f"lwp specific data: no key {key!r}")
    return arena.region_word("specific") + 1 + key * _K_WORDS


def lwp_specific_key_create(dtor: Callable[[object], None] | None = None) -> int:
    """lwp_specific_key_create(9): a new key; EAGAIN when all are taken."""
    arena = _arena.current()
    lock = arena.spin_lock(arena.region_word("specific"))
    lock.enter_nowrap()
    try:
        for key in range(NKEYS):
            k = _key_word(arena, key)
            if not arena.w[k + _K_USED]:
                arena.w[k + _K_USED] = 1
                break
        else:
            raise OSError(errno.EAGAIN, f"lwp_specific_key_create: all {NKEYS} keys are taken")
    finally:
        lock.exit()
    if dtor is not None:
        blob_put(arena, dtor, k + _K_DTOR)
    return key


def lwp_specific_key_delete(key: int) -> None:
    """lwp_specific_key_delete(9): the key goes (values still held are not destroyed)."""
    arena = _arena.current()
    k = _key_word(arena, key)
    if arena.w[k + _K_DTOR + 1]:
        blob_free(arena, k + _K_DTOR)
    arena.w[k : k + _K_WORDS] = memoryview(bytes(_K_WORDS * 8)).cast("q")


def _table(arena: Arena, rec: int, create: bool) -> kmem.KBuf | None:
    off, gen = arena.w[rec + L_SPECIFIC], arena.w[rec + L_SPECIFIC + 1]
    if off:
        return kmem._make_kbuf(arena, off, _TABLE_BYTES, gen)
    if not create:
        return None
    buf = kmem.kmem_zalloc_in(arena, _TABLE_BYTES)
    arena.w[rec + L_SPECIFIC], arena.w[rec + L_SPECIFIC + 1] = buf.offset, buf.gen
    return buf


def _me() -> tuple[Arena, int]:
    arena = _arena.current()
    return arena, tables(arena).lwp(thread.curlwp())


def lwp_setspecific(key: int, value: object) -> None:
    """lwp_setspecific(9): the calling lwp's value for ``key`` (None clears it)."""
    arena, rec = _me()
    k = _key_word(arena, key)
    if not arena.w[k + _K_USED]:
        raise OSError(errno.EINVAL, f"lwp_setspecific: key {key} is not in use")
    table = _table(arena, rec, value is not None)
    if table is None:
        return
    word = table.offset // 8 + key * 3
    if arena.w[word + 1]:
        blob_free(arena, word)
    if value is not None:
        blob_put(arena, value, word)


def lwp_getspecific(key: int) -> object:
    """lwp_getspecific(9): the calling lwp's value for ``key``, None if it has none."""
    arena, rec = _me()
    _key_word(arena, key)
    table = _table(arena, rec, False)
    if table is None or not arena.w[table.offset // 8 + key * 3 + 1]:
        return None
    return blob_get(arena, table.offset // 8 + key * 3)


def lwp_specific_exit(arena: Arena, rec: int) -> None:
    """The lwp at record ``rec`` ends: run each destructor on its value, free them."""
    table = _table(arena, rec, False)
    if table is None:
        return
    base = table.offset // 8
    for key in range(NKEYS):
        word = base + key * 3
        if not arena.w[word + 1]:
            continue
        value = blob_get(arena, word)
        blob_free(arena, word)
        k = _key_word(arena, key)
        if arena.w[k + _K_USED] and arena.w[k + _K_DTOR + 1]:
            dtor = blob_get(arena, k + _K_DTOR, cache=True)
            ok, e = entry.call(dtor, value)
            if not ok:  # nobody waits for a destructor: dmesg says what it raised
                entry.report(arena, f"lwp-specific destructor of key {key}", e)  # type: ignore[arg-type]
    arena.w[rec + L_SPECIFIC] = arena.w[rec + L_SPECIFIC + 1] = 0
    kmem.kmem_free_in(arena, table, _TABLE_BYTES)
