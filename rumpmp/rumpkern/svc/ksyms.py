"""The kernel symbol table (ksyms(4); rump_kernelfsym_load(3)).

The host loads it once; modules resolve names against it with ``ksyms_getval``.  A
symbol is a name and an int (rump's are addresses; rumpmp's whatever the host
gives).  The table travels as one pickle in the kernel heap, read once per process.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem.blob import blob_get, blob_put


def kernelfsym_load_in(arena: Arena, symbols: dict[str, int]) -> None:
    """rump_kernelfsym_load on a given kernel: accepted once, EBUSY after."""
    if not isinstance(symbols, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in symbols.items()
    ):
        raise TypeError("rump_kernelfsym_load: symbols must be a dict of str to int")
    lock = tables(arena).lock  # the load is rare: proc_lock serves to claim it
    lock.enter_nowrap()
    try:
        if arena.w[_arena.H_KSYMS + 1]:
            raise OSError(errno.EBUSY, "rump_kernelfsym_load: the symbol table is loaded already")
        arena.w[_arena.H_KSYMS + 1] = -1  # claimed: a second load sees EBUSY
    finally:
        lock.exit()
    try:
        blob_put(arena, dict(symbols), _arena.H_KSYMS)
    except BaseException:
        arena.w[_arena.H_KSYMS + 1] = 0
        raise


def rump_kernelfsym_load(symbols: dict[str, int]) -> None:
    """rump_kernelfsym_load(3): load the kernel's symbol table (once: EBUSY after)."""
    kernelfsym_load_in(_arena.current(), symbols)


def ksyms_getval(name: str) -> int:
    """ksyms_getval(9): the value of symbol ``name``; ENOENT if there is none."""
    arena = _arena.current()
    table = blob_get(arena, _arena.H_KSYMS, cache=True) if arena.w[_arena.H_KSYMS + 1] > 0 else {}
    try:
        return table[name]
    except KeyError:
        raise FileNotFoundError(errno.ENOENT, f"ksyms: no symbol {name!r}") from None
