"""cprng(9) (subr_cprng.c, subr_cprng_fast... in NetBSD): random numbers for kernel code.

``cprng_strong*`` read the host's entropy source through the rnd hypercall each
time (rumpuser_getrandom).  ``cprng_fast*`` and ``arc4random*`` must be cheap: each
CPU process keeps its own generator, seeded from the host's entropy the first time
it is used there, so no lock is shared and two CPUs never repeat each other's
sequence.  rumpmp's fast generator is Python's Mersenne Twister, not NetBSD's
ChaCha: unpredictable enough to pick hash seeds and jitter, not for keys (use
cprng_strong for those, as NetBSD says too).
"""

from __future__ import annotations

import random

from hypercalls import rnd
from rumpmp.rumpkern.base import arena as _arena

#: cprng_strong flags (NetBSD's; rumpmp never blocks for entropy: the host has it).
CPRNG_INIT_ANY = 0x01
CPRNG_REKEY_ANY = 0x02
FASYNC = 0x40


class cprng_strong_t:
    """A strong generator (NetBSD's cprng_strong_t): its name; bytes come from the host."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<cprng_strong_t {self.name}>"


kern_cprng = cprng_strong_t("kernel")


def cprng_strong_create(name: str, ipl: int = 0, flags: int = 0) -> cprng_strong_t:
    """cprng_strong_create(9)."""
    if not isinstance(name, str):
        raise TypeError(f"cprng_strong_create: name must be a str, not {type(name).__name__}")
    return cprng_strong_t(name)


def cprng_strong_destroy(c: cprng_strong_t) -> None:
    """cprng_strong_destroy(9): nothing is kept, so nothing to free."""


def cprng_strong(c: cprng_strong_t, buf: object, nbytes: int, flags: int = 0) -> int:
    """cprng_strong(9): fill the first ``nbytes`` of the writable buffer ``buf`` (a
    KBuf, a bytearray) from the host's entropy source; returns ``nbytes``."""
    if not isinstance(c, cprng_strong_t):
        raise TypeError(f"cprng_strong: c must be a cprng_strong_t, not {type(c).__name__}")
    view = memoryview(buf).cast("B")  # type: ignore[arg-type]
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not 0 <= nbytes <= len(view):
        raise TypeError(f"cprng_strong: nbytes must be an int from 0 to {len(view)}")
    view[:nbytes] = rnd.getrandom(nbytes)
    return nbytes


def cprng_strong32() -> int:
    """cprng_strong32(9): 32 random bits from the host's entropy source."""
    return int.from_bytes(rnd.getrandom(4), "little")


def cprng_strong64() -> int:
    """cprng_strong64(9): 64 random bits from the host's entropy source."""
    return int.from_bytes(rnd.getrandom(8), "little")


def _fast() -> random.Random:
    a = _arena.current()
    return a.attached("cprng_fast", lambda: random.Random(rnd.getrandom(32)))


def cprng_fast32() -> int:
    """cprng_fast32(9): 32 random bits from this CPU's generator."""
    return _fast().getrandbits(32)


def cprng_fast64() -> int:
    """cprng_fast64(9): 64 random bits from this CPU's generator."""
    return _fast().getrandbits(64)


def cprng_fast(buf: object, nbytes: int) -> None:
    """cprng_fast(9): fill the first ``nbytes`` of ``buf`` from this CPU's generator."""
    view = memoryview(buf).cast("B")  # type: ignore[arg-type]
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not 0 <= nbytes <= len(view):
        raise TypeError(f"cprng_fast: nbytes must be an int from 0 to {len(view)}")
    view[:nbytes] = _fast().randbytes(nbytes)


def arc4random() -> int:
    """arc4random(9) (libkern): 32 bits from cprng_fast."""
    return cprng_fast32()


def arc4random_buf(buf: object, nbytes: int) -> None:
    """arc4random_buf(9) (libkern): ``nbytes`` of ``buf`` from cprng_fast."""
    cprng_fast(buf, nbytes)
