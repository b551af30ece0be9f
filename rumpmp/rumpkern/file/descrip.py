"""Files and descriptor tables (kern_descrip.c).

An open file is a record of the file table ("file" region): what it opens (a vnode,
a pipe end, a kqueue), its flags and its offset, and a count of the descriptors and
calls that hold it.  Descriptors that ``dup`` copies, and the tables of processes
made with RUMP_RFFDG, name the same record, so they share its offset and flags as
NetBSD's do.  The file closes what it opens when its count reaches zero.

A descriptor table ("fdtab" region) belongs to one process, or to several that
share it (rfork without flags).  Its slots are an array of words in the kernel heap,
doubled as descriptors are added, each holding a file number, the file's generation
and FD_CLOEXEC; a process may not have descriptors at or past its RLIMIT_NOFILE
(EMFILE).  A call that uses a descriptor holds the file (``fd_getfile``) until it
is done (``fd_putfile``), so a close in another lwp never frees a file under it.

``fd_getfile`` reads the slot without the table's lock, as NetBSD's does: the hold
is taken only if the file record still has the generation the slot names (under the
file table's lock), so a slot read while another lwp closed or reused it costs a
retry under the lock, never a hold on the wrong file.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from hypercalls import sync
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word
from rumpmp.rumpkern.file import objlock, table
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys import file as F
from rumpmp.sys.proc import (
    NOFILE_HARD,
    P_FDTAB,
    P_RLIMIT,
    RLIMIT_NOFILE,
    RUMP_RFCFDG,
    RUMP_RFFDG,
)
from rumpmp.sys.vnode import Stat

#: The table proc0 and initproc share.
PROC0_FDTAB = 1


def _never_ready(arena: Arena, data: int, data2: int, events: int) -> int:
    return 0


#: What a file's kqfilter says: (fires, data, extra flags, notification count); the
#: count is a tuple of counts per NOTE_* event for EVFILT_VNODE.
KqState = tuple[bool, int, int, int | tuple[int, ...]]


def _no_event(arena: Arena, data: int, data2: int, offset: int, filt: int, record: bool) -> KqState:
    return False, 0, 0, 0


def _nothing_to_read(arena: Arena, f: int) -> int:
    return 0


def _bare_stat(arena: Arena, f: int) -> Stat:
    return Stat(0, 0, 0, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, F.PIPE_BUF, 0)


@dataclass(frozen=True)
class Fileops:
    """What the files of one type do (NetBSD's struct fileops): the generic calls
    look a file's type up here.  The core has pipes and kqueues; the file system
    adds vnodes when it is linked.  ``read``/``write`` None: EINVAL."""

    #: (data, data2): the file's last reference went; let its object go.
    close: Callable[[Arena, int, int], object]
    #: (file, size, offset or None for the file's own): the bytes read.
    read: Callable[[Arena, int, int, int | None], bytes] | None = None
    #: (file, bytes, offset or None): the bytes written.
    write: Callable[[Arena, int, memoryview, int | None], int] | None = None
    #: (file): FIONREAD, the bytes ready to read.
    nread: Callable[[Arena, int], int] = _nothing_to_read
    #: (data, data2, events): the events ready now; records the caller's wait on
    #: the object (selrecord) when none is.
    poll: Callable[[Arena, int, int, int], int] = _never_ready
    #: (file): fstat.
    stat: Callable[[Arena, int], Stat] = _bare_stat
    #: (data, data2, file offset, filter, record): a knote's ``KqState``; with
    #: ``record``, waits on the object if it does not fire.
    kqfilter: Callable[[Arena, int, int, int, int, bool], KqState] = _no_event


_FILEOPS: dict[int, Fileops] = {}


def fileops_establish(ftype: int, ops: Fileops) -> None:
    """Files of type ``ftype`` (a DTYPE_*) do what ``ops`` says, in this program."""
    _FILEOPS[ftype] = ops


def fileops(ftype: int) -> Fileops:
    """The operations of files of type ``ftype``."""
    try:
        return _FILEOPS[ftype]
    except KeyError:
        raise OSError(errno.EBADF, f"no operations for file type {ftype}") from None


def fd_sys_init(arena: Arena, maxfiles: int) -> None:
    """fd_sys_init: the file table's lock and the object locks (the host, at boot);
    proc0 and initproc share table PROC0_FDTAB.  ``maxfiles`` is the word of the
    kern.maxfiles tunable, which opening a file checks."""
    h = arena.region_word("file")
    arena.w[h + F.FH_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    arena.w[h + F.FH_MAXFILES] = maxfiles
    objlock.objlock_init(arena)
    arena.w[_tab(arena, PROC0_FDTAB) + F.FT_REFS] = 2


# -- the file table --------------------------------------------------------------------------


def frec(arena: Arena, f: int) -> int:
    """Word index of file ``f``'s record."""
    return arena.region_word("file") + F.FILE_HDR + f * F.FILE_WORDS


def _files_lock(arena: Arena) -> sync.Mutex:
    return arena.spin_lock(arena.region_word("file") + F.FH_LOCK)


def falloc(arena: Arena, ftype: int, flag: int, data: int, data2: int = 0) -> int:
    """A new file with one reference (the caller's descriptor); its number.  ENFILE
    at kern.maxfiles."""
    w, h = arena.w, arena.region_word("file")
    lock = _files_lock(arena)
    lock.enter_nowrap()
    try:
        if w[h + F.FH_NOPEN] >= min(w[w[h + F.FH_MAXFILES]], F.NFILE):
            raise OSError(errno.ENFILE, "file table full (kern.maxfiles)")
        f = w[h + F.FH_FREE] - 1
        if f >= 0:
            w[h + F.FH_FREE] = w[frec(arena, f) + F.F_NEXT]
        else:
            f = w[h + F.FH_HIGH]
            w[h + F.FH_HIGH] += 1
        r = frec(arena, f)
        gen = w[r + F.F_GEN] + 1
        w[r : r + F.FILE_WORDS] = memoryview(bytes(F.FILE_WORDS * 8)).cast("q")
        w[r + F.F_TYPE], w[r + F.F_FLAG], w[r + F.F_COUNT] = ftype, flag, 1
        w[r + F.F_GEN] = gen
        w[r + F.F_DATA], w[r + F.F_DATA2] = data, data2
        w[h + F.FH_NOPEN] += 1
        return f
    finally:
        lock.exit()


def closef(arena: Arena, f: int) -> None:
    """Drop a reference to file ``f``; the last one closes what it opens."""
    w, h, r = arena.w, arena.region_word("file"), frec(arena, f)
    lock = _files_lock(arena)
    lock.enter_nowrap()
    w[r + F.F_COUNT] -= 1
    last = not w[r + F.F_COUNT]
    ftype, data, data2 = w[r + F.F_TYPE], w[r + F.F_DATA], w[r + F.F_DATA2]
    if last:
        w[r + F.F_TYPE] = 0
        w[r + F.F_NEXT] = w[h + F.FH_FREE]
        w[h + F.FH_FREE] = f + 1
        w[h + F.FH_NOPEN] -= 1
    lock.exit()
    if last:
        fileops(ftype).close(arena, data, data2)


def _hold(arena: Arena, f: int) -> None:
    lock = _files_lock(arena)
    lock.enter_nowrap()
    arena.w[frec(arena, f) + F.F_COUNT] += 1
    lock.exit()


def _hold_if(arena: Arena, f: int, gen: int) -> bool:
    """Hold file ``f`` if it is open with generation ``gen`` (low bits)."""
    if not 0 <= f < F.NFILE:
        return False
    w, r = arena.w, frec(arena, f)
    lock = _files_lock(arena)
    lock.enter_nowrap()
    ok = bool(w[r + F.F_TYPE]) and w[r + F.F_COUNT] > 0 and w[r + F.F_GEN] & _GEN_MASK == gen
    if ok:
        w[r + F.F_COUNT] += 1
    lock.exit()
    return ok


_FILE_MASK = (1 << F.FD_GENSHIFT) - 1
_GEN_MASK = (1 << (F.FD_FLAGSHIFT - F.FD_GENSHIFT)) - 1


def _file_of(entry: int) -> int:
    """The file number a descriptor slot names."""
    return (entry & _FILE_MASK) - 1


def _entry(arena: Arena, f: int, cloexec: bool) -> int:
    """The slot value for file ``f``."""
    gen = arena.w[frec(arena, f) + F.F_GEN] & _GEN_MASK
    return (f + 1) | gen << F.FD_GENSHIFT | int(cloexec) << F.FD_FLAGSHIFT


# -- descriptor tables -------------------------------------------------------------------------------


def _tab(arena: Arena, tab: int) -> int:
    return arena.region_word("fdtab") + tab * F.FDTAB_WORDS


def _slots(arena: Arena, t: int) -> memoryview:
    w = arena.w
    base = w[t + F.FT_BUF] // 8
    return w[base : base + w[t + F.FT_NSLOTS]]


def _table_lock(arena: Arena, tab: int) -> kmutex_t:
    return objlock.objlock(arena, objlock.FDTAB, tab)


def _new_table(arena: Arena) -> int:
    base = _tab(arena, 0)
    lock_word = arena.region_word("file") + F.FH_LOCK
    tab = table.claim(arena, lock_word, base, F.FDTAB_WORDS, F.NFDTAB, PROC0_FDTAB + 1)
    if tab < 0:
        raise OSError(errno.EAGAIN, "no free descriptor table")
    return tab  # claimed with FT_REFS 1


def _slot(arena: Arena, t: int, fd: int) -> int:
    slots = _slots(arena, t)
    return slots[fd] if 0 <= fd < len(slots) else 0


def _grow(arena: Arena, t: int, want: int) -> None:
    """Make the table hold at least ``want`` slots (the caller holds its lock)."""
    w = arena.w
    n = w[t + F.FT_NSLOTS]
    new_n = max(F.NDFILE, 2 * n)
    while new_n < want:
        new_n *= 2
    buf = kmem.kmem_zalloc_in(arena, new_n * 8, kmem.KM_NOSLEEP)
    if buf is None:
        raise OSError(errno.ENOMEM, "no memory for the descriptor table")
    old = kmem.kbuf_at(arena, w[t + F.FT_BUF], n * 8, w[t + F.FT_GEN]) if n else None
    if old is not None:
        buf[: n * 8] = old[:]
    w[t + F.FT_BUF], w[t + F.FT_GEN], w[t + F.FT_NSLOTS] = buf.offset, buf.gen, new_n
    if old is not None:  # after the switch: a lockless reader rechecks the new array
        kmem.kmem_free_in(arena, old, n * 8)


def _curtab(arena: Arena) -> tuple[int, int]:
    """(table number, open-files limit) of the calling process."""
    w = arena.w
    p = curproc_word(arena)
    limit = min(w[p + P_RLIMIT + 2 * RLIMIT_NOFILE], NOFILE_HARD)
    return w[p + P_FDTAB], limit


def fd_limit(arena: Arena) -> int:
    """The calling process's limit on descriptors (RLIMIT_NOFILE)."""
    return _curtab(arena)[1]


def fd_alloc(arena: Arena, f: int, low: int = 0, cloexec: bool = False) -> int:
    """Give file ``f`` (one reference, which the descriptor takes) the lowest free
    descriptor at or above ``low``.  EMFILE at the process's RLIMIT_NOFILE."""
    tab, limit = _curtab(arena)
    t = _tab(arena, tab)
    w = arena.w
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    try:
        start = max(low, w[t + F.FT_LOW])
        slots = _slots(arena, t)
        fd = next((i for i in range(start, len(slots)) if not slots[i]), max(start, len(slots)))
        if fd >= limit:
            raise OSError(errno.EMFILE, "too many open files")
        if fd >= len(slots):
            _grow(arena, t, fd + 1)
            slots = _slots(arena, t)
        slots[fd] = _entry(arena, f, cloexec)
        if start == w[t + F.FT_LOW] and fd == start:
            w[t + F.FT_LOW] = fd + 1
        return fd
    finally:
        mutex_exit(lock)


def fd_getfile(arena: Arena, fd: int) -> int:
    """Hold the file descriptor ``fd`` names; its number.  EBADF if none."""
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be int, not {type(fd).__name__}")
    tab, _ = _curtab(arena)
    t = _tab(arena, tab)
    entry = _slot(arena, t, fd)  # without the lock: checked below
    f = _file_of(entry)
    if entry and _hold_if(arena, f, entry >> F.FD_GENSHIFT & _GEN_MASK):
        if _slot(arena, t, fd) == entry:  # still the table's: not a slot of a freed array
            return f
        closef(arena, f)
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    try:
        slots = _slots(arena, t)
        entry = slots[fd] if 0 <= fd < len(slots) else 0
        if not entry:
            raise OSError(errno.EBADF, f"bad file descriptor {fd}")
        f = _file_of(entry)
        _hold(arena, f)
        return f
    finally:
        mutex_exit(lock)


def fd_putfile(arena: Arena, f: int) -> None:
    """Let go of a file held with ``fd_getfile``."""
    closef(arena, f)


def _replace(arena: Arena, fd: int, value: int, must_exist: bool) -> int:
    """Set descriptor ``fd``'s slot (0 frees it); the file it named, -1 if none.
    EBADF if it named none and ``must_exist``, or past the limit."""
    tab, limit = _curtab(arena)
    t = _tab(arena, tab)
    w = arena.w
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be int, not {type(fd).__name__}")
    if not 0 <= fd < (limit if value else 1 << 62):
        raise OSError(errno.EBADF, f"bad file descriptor {fd}")
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    try:
        slots = _slots(arena, t)
        old = slots[fd] if fd < len(slots) else 0
        if must_exist and not old:
            raise OSError(errno.EBADF, f"bad file descriptor {fd}")
        if value and fd >= len(slots):
            _grow(arena, t, fd + 1)
            slots = _slots(arena, t)
        if fd < len(slots):
            slots[fd] = value
        if not value and fd < w[t + F.FT_LOW]:
            w[t + F.FT_LOW] = fd
        if value and fd == w[t + F.FT_LOW]:
            w[t + F.FT_LOW] = fd + 1
        return _file_of(old)
    finally:
        mutex_exit(lock)


def fd_close(arena: Arena, fd: int) -> None:
    """Free descriptor ``fd`` and drop its file.  EBADF if it names none."""
    closef(arena, _replace(arena, fd, 0, must_exist=True))


def fd_flags(arena: Arena, fd: int, cloexec: bool | None = None) -> int:
    """Descriptor ``fd``'s FD_CLOEXEC bit, set first if ``cloexec`` is not None."""
    tab, _ = _curtab(arena)
    t = _tab(arena, tab)
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    try:
        slots = _slots(arena, t)
        if not (0 <= fd < len(slots) and slots[fd]):
            raise OSError(errno.EBADF, f"bad file descriptor {fd}")
        if cloexec is not None:
            bits = slots[fd] & ((1 << F.FD_FLAGSHIFT) - 1)
            slots[fd] = bits | (int(cloexec) << F.FD_FLAGSHIFT)
        return slots[fd] >> F.FD_FLAGSHIFT
    finally:
        mutex_exit(lock)


def fd_dup2(arena: Arena, f: int, newfd: int, cloexec: bool) -> None:
    """Make ``newfd`` name held file ``f`` (the hold becomes the descriptor's),
    closing what it named."""
    old = _replace(arena, newfd, _entry(arena, f, cloexec), must_exist=False)
    if old >= 0:
        closef(arena, old)


def fd_closeexec(arena: Arena) -> None:
    """Close every descriptor marked FD_CLOEXEC (what exec does)."""
    tab, _ = _curtab(arena)
    t = _tab(arena, tab)
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    marked = [fd for fd, v in enumerate(_slots(arena, t)) if v >> F.FD_FLAGSHIFT]
    mutex_exit(lock)
    for fd in marked:
        fd_close(arena, fd)


def open_fds(arena: Arena) -> list[int]:
    """The calling process's open descriptors."""
    tab, _ = _curtab(arena)
    t = _tab(arena, tab)
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    try:
        return [fd for fd, v in enumerate(_slots(arena, t)) if v]
    finally:
        mutex_exit(lock)


# -- processes ------------------------------------------------------------------------------------------


def fd_fork(arena: Arena, p: int, flags: int) -> None:
    """A new process (at word ``p``, naming its parent's table) takes its
    reference: a share of the parent's table, a copy of it (RUMP_RFFDG) or a clean
    one (RUMP_RFCFDG)."""
    w = arena.w
    parent = w[p + P_FDTAB]
    w[p + P_FDTAB] = 0  # holds nothing until this succeeds
    if flags & (RUMP_RFFDG | RUMP_RFCFDG):
        tab = _new_table(arena)
        if flags & RUMP_RFFDG:
            _copy_table(arena, parent, tab)
    else:
        tab = parent
        lock = _table_lock(arena, tab)
        mutex_enter(lock)
        w[_tab(arena, tab) + F.FT_REFS] += 1
        mutex_exit(lock)
    w[p + P_FDTAB] = tab


def _copy_table(arena: Arena, src: int, dst: int) -> None:
    """Fill new table ``dst`` with the descriptors of ``src``, each holding its file."""
    w, s, d = arena.w, _tab(arena, src), _tab(arena, dst)
    lock = _table_lock(arena, src)
    mutex_enter(lock)
    entries = list(_slots(arena, s))
    for v in entries:
        if v:
            _hold(arena, _file_of(v))
    w[d + F.FT_LOW] = w[s + F.FT_LOW]
    mutex_exit(lock)
    try:
        if entries:
            _grow(arena, d, len(entries))
    except OSError:
        for v in entries:
            if v:
                closef(arena, _file_of(v))
        fd_exit(arena, dst)
        raise
    _slots(arena, d)[: len(entries)] = memoryview(bytes(8 * len(entries))).cast("q")
    slots = _slots(arena, d)
    for fd, v in enumerate(entries):
        slots[fd] = v


def fd_exit(arena: Arena, tab: int) -> None:
    """A process has gone: drop its share of table ``tab`` (the last one closes
    every descriptor in it)."""
    if not tab:
        return
    w, t = arena.w, _tab(arena, tab)
    lock = _table_lock(arena, tab)
    mutex_enter(lock)
    w[t + F.FT_REFS] -= 1
    last = not w[t + F.FT_REFS] and tab != PROC0_FDTAB
    files = [_file_of(v) for v in _slots(arena, t) if v] if last else []
    buf = (w[t + F.FT_BUF], w[t + F.FT_NSLOTS], w[t + F.FT_GEN]) if last else None
    mutex_exit(lock)
    for f in files:
        closef(arena, f)
    if buf and buf[1]:
        kmem.kmem_free_in(arena, kmem.kbuf_at(arena, buf[0], buf[1] * 8, buf[2]), buf[1] * 8)


# -- file information ----------------------------------------------------------------------------------


def file_info(arena: Arena, f: int) -> tuple[int, int, int, int]:
    """(type, flag, data, data2) of held file ``f``."""
    w, r = arena.w, frec(arena, f)
    return w[r + F.F_TYPE], w[r + F.F_FLAG], w[r + F.F_DATA], w[r + F.F_DATA2]


def fstat_file(arena: Arena, f: int) -> Stat:
    """fstat of held file ``f``."""
    return fileops(file_info(arena, f)[0]).stat(arena, f)
