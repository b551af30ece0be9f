"""kauth(9) credentials (kern_auth.c) and rump's ``rump_cred_create``/``rump_cred_put``.

A credential is a reference-counted record in the kernel heap: real, effective and
saved uid and gid, and up to NGROUPS_MAX groups.  Every process points at one; a
child shares its parent's (one more reference), so credentials are inherited.
Changing a process's ids never edits a shared credential: ``prot.py`` makes a
modified copy and swaps it in, as NetBSD's do_setresuid does.

Reference counts change under proc_lock, which is also what guards the process
table that holds most of the references.  Freeing a record may block on the heap,
so the last reference is dropped under the lock and the record freed after it.
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys.proc import P_CRED

NGROUPS_MAX = 16

# credential record words
K_MAGIC = 0
K_REFCNT = 1
K_UID = 2
K_EUID = 3
K_SVUID = 4
K_GID = 5
K_EGID = 6
K_SVGID = 7
K_NGROUPS = 8
K_GROUPS = 9  # NGROUPS_MAX words
CRED_WORDS = K_GROUPS + NGROUPS_MAX
CRED_BYTES = CRED_WORDS * 8
CRED_MAGIC = 0x6B61757468  # "kauth"


class kauth_cred_t(Handle):
    """A credential handle; pickles by reference, valid on every CPU."""

    __slots__ = ("_r", "arena", "rec")

    def __init__(self, arena: Arena, rec: kmem.KBuf) -> None:
        self.arena = arena
        self.rec = rec
        self._r = rec.offset // 8

    def _args(self) -> tuple:
        return (self.arena, self.rec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, kauth_cred_t) and other.rec.offset == self.rec.offset

    def __hash__(self) -> int:
        return self.rec.offset

    def _what(self) -> str:
        return f"at {self.rec.offset:#x}"

    def _word(self, field: int) -> int:
        if not _live(self):
            panic_in(self.arena, f"kauth: {self!r} used after it was freed")
        return self.arena.w[self._r + field]


def _live(cred: kauth_cred_t) -> bool:
    w = cred.arena.w
    return kmem.is_live(cred.arena, cred.rec) and w[cred._r + K_MAGIC] == CRED_MAGIC


def _tables_lock(arena: Arena):

    return tables(arena).lock


def _handle(arena: Arena, ref: tuple[int, int]) -> kauth_cred_t:
    off, gen = ref
    return kauth_cred_t(arena, kmem._make_kbuf(arena, off, CRED_BYTES, gen))


def _new(arena: Arena, uid: int, gid: int, groups: list[int]) -> kauth_cred_t:
    if len(groups) > NGROUPS_MAX:
        raise OSError(errno.EINVAL, f"kauth: more than {NGROUPS_MAX} groups")
    rec = kmem.kmem_zalloc_in(arena, CRED_BYTES)
    cred = kauth_cred_t(arena, rec)
    w, r = arena.w, cred._r
    w[r + K_UID] = w[r + K_EUID] = w[r + K_SVUID] = uid
    w[r + K_GID] = w[r + K_EGID] = w[r + K_SVGID] = gid
    w[r + K_NGROUPS] = len(groups)
    w[r + K_GROUPS : r + K_GROUPS + len(groups)] = memoryview(_words(groups)).cast("q")
    w[r + K_REFCNT] = 1
    w[r + K_MAGIC] = CRED_MAGIC
    return cred


def _words(values: list[int]) -> bytes:
    """``values`` as native 8-byte words."""
    return b"".join(int(v).to_bytes(8, "little", signed=True) for v in values)


# -- used by lwproc under proc_lock -------------------------------------------------


def kauth_init(arena: Arena) -> tuple[int, int]:
    """kauth_init: root's credential, for proc0 (at boot); returns its reference."""
    root = _new(arena, 0, 0, [])
    return root.rec.offset, root.rec.gen


def cred_hold_locked(arena: Arena, off: int) -> None:
    """One more reference to the record at ``off`` (caller holds proc_lock)."""
    arena.w[off // 8 + K_REFCNT] += 1


def cred_rele_locked(arena: Arena, off: int, gen: int) -> tuple[int, int] | None:
    """Drop a reference (caller holds proc_lock); the record if it was the last."""
    arena.w[off // 8 + K_REFCNT] -= 1
    if arena.w[off // 8 + K_REFCNT] == 0:
        arena.w[off // 8 + K_MAGIC] = 0
        return off, gen
    return None


def cred_free_record(arena: Arena, ref: tuple[int, int]) -> None:
    """Give a record whose last reference has gone back to the heap."""
    kmem.kmem_free_in(arena, _handle(arena, ref).rec, CRED_BYTES)


# -- kauth(9) ----------------------------------------------------------------------------


def rump_cred_create(uid: int, gid: int, ngroups: int, groups: list[int]) -> kauth_cred_t:
    """rump_cred_create: a new credential with real, effective and saved ids set to
    ``uid``/``gid`` and the first ``ngroups`` of ``groups``.  EINVAL for more than
    NGROUPS_MAX groups."""
    if not 0 <= ngroups <= len(groups):
        raise OSError(errno.EINVAL, f"rump_cred_create: ngroups {ngroups} for {len(groups)}")
    return _new(_arena.current(), uid, gid, list(groups[:ngroups]))


def rump_cred_put(cred: kauth_cred_t) -> None:
    """rump_cred_put: drop the reference rump_cred_create gave (kauth_cred_free)."""
    kauth_cred_free(cred)


def kauth_cred_hold(cred: kauth_cred_t) -> None:
    """kauth_cred_hold(9): one more reference."""
    lock = _tables_lock(cred.arena)
    lock.enter_nowrap()
    try:
        cred._word(K_MAGIC)
        cred_hold_locked(cred.arena, cred.rec.offset)
    finally:
        lock.exit()


def kauth_cred_free(cred: kauth_cred_t) -> None:
    """kauth_cred_free(9): drop a reference; the last one frees the credential."""
    lock = _tables_lock(cred.arena)
    lock.enter_nowrap()
    try:
        cred._word(K_MAGIC)
        dead = cred_rele_locked(cred.arena, cred.rec.offset, cred.rec.gen)
    finally:
        lock.exit()
    if dead:
        cred_free_record(cred.arena, dead)


def kauth_cred_get() -> kauth_cred_t:
    """kauth_cred_get(9): the credential of the current process (no reference taken)."""
    arena = _arena.current()
    return proc_cred(arena, curproc_word(arena))


def curproc_ids(real: bool = False) -> tuple[int, int, list[int]]:
    """(uid, gid, groups) of the current process: its effective ids and groups, or
    with ``real`` its real ids (and no groups).  Read straight from its credential,
    which the process holds (so it is live): the file system asks at every call."""
    arena = _arena.current()
    w = arena.w
    r = w[curproc_word(arena) + P_CRED] // 8
    if real:
        return w[r + K_UID], w[r + K_GID], []
    return w[r + K_EUID], w[r + K_EGID], list(w[r + K_GROUPS : r + K_GROUPS + w[r + K_NGROUPS]])


def proc_cred(arena: Arena, p: int) -> kauth_cred_t:
    """The credential of the process at word ``p`` (no reference taken)."""
    return _handle(arena, (arena.w[p + P_CRED], arena.w[p + P_CRED + 1]))


def kauth_cred_dup(cred: kauth_cred_t) -> kauth_cred_t:
    """kauth_cred_dup(9): a private copy (one reference) to modify."""
    copy = _new(cred.arena, 0, 0, [])
    w = cred.arena.w
    cred._word(K_MAGIC)
    w[copy._r + K_UID : copy._r + CRED_WORDS] = w[cred._r + K_UID : cred._r + CRED_WORDS]
    return copy


def kauth_cred_getrefcnt(cred: kauth_cred_t) -> int:
    """kauth_cred_getrefcnt(9)."""
    return cred._word(K_REFCNT)


def kauth_cred_getuid(cred: kauth_cred_t) -> int:
    """kauth_cred_getuid(9): the real uid."""
    return cred._word(K_UID)


def kauth_cred_geteuid(cred: kauth_cred_t) -> int:
    """kauth_cred_geteuid(9): the effective uid."""
    return cred._word(K_EUID)


def kauth_cred_getsvuid(cred: kauth_cred_t) -> int:
    """kauth_cred_getsvuid(9): the saved uid."""
    return cred._word(K_SVUID)


def kauth_cred_getgid(cred: kauth_cred_t) -> int:
    """kauth_cred_getgid(9): the real gid."""
    return cred._word(K_GID)


def kauth_cred_getegid(cred: kauth_cred_t) -> int:
    """kauth_cred_getegid(9): the effective gid."""
    return cred._word(K_EGID)


def kauth_cred_getsvgid(cred: kauth_cred_t) -> int:
    """kauth_cred_getsvgid(9): the saved gid."""
    return cred._word(K_SVGID)


def kauth_cred_ngroups(cred: kauth_cred_t) -> int:
    """kauth_cred_ngroups(9)."""
    return cred._word(K_NGROUPS)


def kauth_cred_getgroups(cred: kauth_cred_t) -> list[int]:
    """The supplementary groups (NetBSD copies them out; rumpmp returns a list)."""
    n = cred._word(K_NGROUPS)
    return list(cred.arena.w[cred._r + K_GROUPS : cred._r + K_GROUPS + n])


def kauth_cred_ismember_gid(cred: kauth_cred_t, gid: int) -> bool:
    """kauth_cred_ismember_gid(9): whether ``gid`` is the effective gid or a group.
    NetBSD returns an error and fills a flag; rumpmp returns the flag."""
    return gid == kauth_cred_getegid(cred) or gid in kauth_cred_getgroups(cred)


def _set(cred: kauth_cred_t, field: int, value: int) -> None:
    if cred._word(K_REFCNT) != 1:  # NetBSD asserts this: a shared credential never changes
        panic_in(cred.arena, f"kauth: modifying {cred!r}, which is shared")
    cred.arena.w[cred._r + field] = value


def kauth_cred_setuid(cred: kauth_cred_t, uid: int) -> None:
    """kauth_cred_setuid(9): set the real uid of a private credential."""
    _set(cred, K_UID, uid)


def kauth_cred_seteuid(cred: kauth_cred_t, uid: int) -> None:
    """kauth_cred_seteuid(9)."""
    _set(cred, K_EUID, uid)


def kauth_cred_setsvuid(cred: kauth_cred_t, uid: int) -> None:
    """kauth_cred_setsvuid(9)."""
    _set(cred, K_SVUID, uid)


def kauth_cred_setgid(cred: kauth_cred_t, gid: int) -> None:
    """kauth_cred_setgid(9)."""
    _set(cred, K_GID, gid)


def kauth_cred_setegid(cred: kauth_cred_t, gid: int) -> None:
    """kauth_cred_setegid(9)."""
    _set(cred, K_EGID, gid)


def kauth_cred_setsvgid(cred: kauth_cred_t, gid: int) -> None:
    """kauth_cred_setsvgid(9)."""
    _set(cred, K_SVGID, gid)


def kauth_cred_setgroups(cred: kauth_cred_t, groups: list[int]) -> None:
    """kauth_cred_setgroups(9): replace the supplementary groups.  EINVAL for more
    than NGROUPS_MAX."""
    if len(groups) > NGROUPS_MAX:
        raise OSError(errno.EINVAL, f"kauth: more than {NGROUPS_MAX} groups")
    _set(cred, K_NGROUPS, len(groups))
    r = cred._r
    cred.arena.w[r + K_GROUPS : r + K_GROUPS + len(groups)] = memoryview(_words(groups)).cast("q")
