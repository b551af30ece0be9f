"""kqueue(2) and kevent(2) (kern_event.c): EVFILT_READ and EVFILT_WRITE on pipes,
FIFOs and files, EVFILT_VNODE on file system nodes, EVFILT_TIMER; EV_ADD, EV_DELETE,
EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR.

A kqueue is a record of the "kqueue" region whose knotes, keyed by (ident, filter),
are a blob in the kernel heap under the kqueue's object lock.  A filter asks the
object for its state (its file operations' ``kqfilter``) and records the
waiter on the object's selinfo when it is not ready, so kevent waits exactly as
poll does (``select.selwait``) and is woken from any CPU.  EV_CLEAR reports an
event once per change of the object: a knote keeps the object's notification
count as it last reported it.  EVFILT_VNODE's object gives a count per NOTE_* event
instead, and the knote reports the events whose counts moved since it last looked
(without EV_CLEAR they add up and stay active, as NetBSD's kn_fflags do);
EVFILT_PROC's and EVFILT_SIGNAL's come from the process's record likewise.  Timers keep their next
deadline in the knote; a waiting kevent sleeps no longer than the nearest one.

Knotes name descriptors; the caller (``sys_generic``) resolves them to files.  A
knote whose descriptor has been closed goes away, as NetBSD's knote_fdclose does.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import clock
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.clock import NS, wall_ns
from rumpmp.rumpkern.base.proc import curproc_word, tables
from rumpmp.rumpkern.cred import signals
from rumpmp.rumpkern.file import descrip, objlock, table
from rumpmp.rumpkern.file.select import selnotify, selrecord
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.sys import file as F
from rumpmp.sys.proc import (
    NSIG,
    P_KNSEL,
    P_NEXEC,
    P_NFORK,
    P_NSIG,
    P_NTRACK,
    P_PID,
    P_STATE,
    P_TRACK,
    P_XPID,
    SACTIVE,
)

#: What a descriptor names, as a filter needs it: (file type, object, end or 0,
#: offset), or None for a closed descriptor.
Resolve = Callable[[int], "tuple[int, int, int, int] | None"]
Kevent = tuple[int, int, int, int, int, object]  # ident, filter, flags, fflags, data, udata

# a knote: [flags, fflags, hints reported and kept (no EV_CLEAR), udata, last seq,
# next deadline ns, period ns]
_FLAGS, _FFLAGS, _DATA, _UDATA, _SEQ, _DEADLINE, _PERIOD = range(7)
_PARENT = _DEADLINE  # (a knote NOTE_TRACK made on a child: the parent's pid)
FILTERS = (
    F.EVFILT_READ,
    F.EVFILT_WRITE,
    F.EVFILT_VNODE,
    F.EVFILT_PROC,
    F.EVFILT_SIGNAL,
    F.EVFILT_TIMER,
)
#: The filters whose ident is a descriptor.
_ON_FILES = (F.EVFILT_READ, F.EVFILT_WRITE, F.EVFILT_VNODE)


def _rec(arena: Arena, kq: int) -> int:
    return arena.region_word("kqueue") + kq * F.KQ_WORDS


def kqueue_create(arena: Arena) -> int:
    """A new kqueue with no knotes; its number.  ENFILE when the table is full."""
    lock_word = arena.region_word("file") + F.FH_LOCK
    kq = table.claim(arena, lock_word, _rec(arena, 0), F.KQ_WORDS, F.NKQUEUE)
    if kq < 0:
        raise OSError(errno.ENFILE, "kqueue table full")
    return kq


def kqueue_close(arena: Arena, kq: int) -> None:
    """Its last file closed: the kqueue and its knotes go."""
    r = _rec(arena, kq)
    if arena.w[r + F.KQ_NOTES]:
        blob_free(arena, r + F.KQ_NOTES)
    arena.w[r + F.KQ_STATE] = 0


def _load(arena: Arena, r: int) -> dict[tuple[int, int], list]:
    return blob_get(arena, r + F.KQ_NOTES) if arena.w[r + F.KQ_NOTES] else {}


def _store(arena: Arena, r: int, notes: dict[tuple[int, int], list]) -> None:
    if arena.w[r + F.KQ_NOTES]:
        blob_free(arena, r + F.KQ_NOTES)
    if notes:
        blob_put(arena, notes, r + F.KQ_NOTES)


def _error(change: tuple, err: int) -> Kevent:
    return (change[0], change[1], F.EV_ERROR, 0, err, change[5])


def kevent_register(
    arena: Arena, kq: int, changes: list[tuple], resolve: Resolve
) -> list[tuple[tuple, int]]:
    """Apply ``changes`` (kevent tuples); the (change, errno) of each that failed."""
    failed = []
    lock = objlock.objlock(arena, objlock.KQUEUE, kq)
    r = _rec(arena, kq)
    mutex_enter(lock)
    try:
        notes = _load(arena, r)
        for change in changes:
            err = _apply(arena, kq, notes, change, resolve)
            if err:
                failed.append((change, err))
        _store(arena, r, notes)
        selnotify(arena, r + F.KQ_SEL)  # a kevent waiting meanwhile looks again
    finally:
        mutex_exit(lock)
    return failed


def _apply(
    arena: Arena, kq: int, notes: dict[tuple[int, int], list], change: tuple, resolve: Resolve
) -> int:
    ident, filt, flags, fflags, data, udata = change
    key = (ident, filt)
    if filt not in FILTERS:
        return errno.EINVAL
    target = resolve(ident) if filt in _ON_FILES else None
    if filt in _ON_FILES and target is None:
        return errno.EBADF
    if flags & F.EV_ADD:
        new = key not in notes
        if new and filt in (F.EVFILT_VNODE, F.EVFILT_PROC, F.EVFILT_SIGNAL):
            seen = _attach(arena, filt, ident, target)
            if isinstance(seen, int):
                return seen
            notes[key] = [0, fflags, 0, udata, seen, 0, 0]  # events from now on
        if filt == F.EVFILT_SIGNAL:
            flags |= F.EV_CLEAR  # (filt_sigattach)
        if filt == F.EVFILT_TIMER:  # added, or added again: (re)armed as it now says
            timer = _timer_arm(arena, flags, fflags, data)
            if isinstance(timer, int):
                return timer
            deadline, period, flags = timer
        note = notes.setdefault(key, [0, fflags, 0, udata, -1, 0, 0])
        if filt == F.EVFILT_TIMER:
            note[_DEADLINE], note[_PERIOD] = deadline, period
        if filt == F.EVFILT_PROC and fflags & F.NOTE_TRACK:
            try:  # its children are to get knotes here as they are made
                _trackers(arena, note[_SEQ][0], add=kq)
            except OSError as e:
                if new:
                    del notes[key]
                return e.errno or errno.ENOMEM
        note[_FLAGS] = flags & (F.EV_ONESHOT | F.EV_CLEAR) | note[_FLAGS] & F.EV_DISABLE
        note[_UDATA], note[_FFLAGS] = udata, fflags
    elif key not in notes:
        return errno.ENOENT
    if flags & F.EV_DELETE:
        del notes[key]
    elif flags & F.EV_DISABLE:
        notes[key][_FLAGS] |= F.EV_DISABLE
    elif flags & F.EV_ENABLE:
        notes[key][_FLAGS] &= ~F.EV_DISABLE
    return 0


def _attach(
    arena: Arena, filt: int, ident: int, target: tuple[int, int, int, int] | None
) -> tuple[int, ...] | int:
    """filter_attach: the counts a new knote starts from (it reports only what
    happens after), or the errno.  EVFILT_VNODE: the node's event counts (EINVAL
    for a descriptor that opens no node); EVFILT_PROC: (slot, pid, forks, execs) of
    process ``ident`` (ESRCH); EVFILT_SIGNAL: (slot, pid, posts) of signal
    ``ident`` to the calling process."""
    if filt == F.EVFILT_VNODE:
        assert target is not None
        ftype, obj, end, offset = target
        counts = descrip.fileops(ftype).kqfilter(arena, obj, end, offset, filt, False)[3]
        return counts if isinstance(counts, tuple) else errno.EINVAL
    if filt == F.EVFILT_SIGNAL:
        if not 1 <= ident < NSIG:
            return errno.EINVAL
        p = curproc_word(arena)
        pid = arena.w[p + P_PID]
    else:
        pid, slot = ident, _proc_slot(arena, ident)
        if slot is None:
            return errno.ESRCH
        p = slot
    # (read without the process's lock: the kqueue's is held, and a count that
    # moves meanwhile is an event as close to the attach as the attach itself)
    return (p, pid, *_proc_counts(arena, p, filt, ident))


def _proc_counts(arena: Arena, p: int, filt: int, ident: int) -> tuple[int, ...]:
    w = arena.w
    if filt == F.EVFILT_SIGNAL:
        return (w[p + P_NSIG + ident],)
    return w[p + P_NFORK], w[p + P_NEXEC]


def _proc_slot(arena: Arena, pid: int) -> int | None:
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        return t.find_proc(pid)
    except ProcessLookupError:
        return None
    finally:
        t.lock.exit()


def _proc_filter(
    arena: Arena, filt: int, ident: int, note: list, record: bool
) -> tuple[bool, int, int, object, int]:
    """filt_proc and filt_signal: (fires, data, extra flags, counts, fflags) of a
    knote on a process.  A process that has gone fires NOTE_EXIT (whatever the
    knote watches, as NetBSD's does) with EV_EOF, once."""
    w = arena.w
    p, pid, *seen = note[_SEQ]
    lock = objlock.objlock(arena, objlock.PROC, p)
    mutex_enter(lock)
    try:
        alive = w[p + P_PID] == pid and w[p + P_STATE] == SACTIVE
        # a process that has gone leaves its counts until its record is reused
        kept = alive or (not w[p + P_STATE] and w[p + P_XPID] == pid)
        if record:
            selrecord(arena, p + P_KNSEL)
        counts = _proc_counts(arena, p, filt, ident) if kept else tuple(seen)
    finally:
        mutex_exit(lock)
    seq = (p, pid, *counts)
    if filt == F.EVFILT_SIGNAL:
        posted = counts[0] - seen[0]
        return posted > 0, posted, 0, seq, note[_FFLAGS]
    moved = (F.NOTE_FORK if counts[0] != seen[0] else 0) | (
        F.NOTE_EXEC if counts[1] != seen[1] else 0
    )
    hints = moved & note[_FFLAGS] | note[_DATA]
    data = note[_PARENT] if hints & F.NOTE_CHILD else 0
    if not alive:
        return True, data, F.EV_EOF, seq, hints | note[_FFLAGS] & F.NOTE_EXIT
    return bool(hints), data, 0, seq, hints


def _trackers(arena: Arena, p: int, add: int = -1, drop: int = -1) -> list[int]:
    """The kqueues that track process record ``p`` (NOTE_TRACK), after adding kqueue
    ``add`` or dropping ``drop``; under the process table's lock, not the process's
    own (its caller may hold a kqueue's).  ENOMEM when
    ``add`` finds P_NTRACK trackers already."""
    w, t = arena.w, tables(arena)
    t.lock.enter_nowrap()
    try:
        words = range(p + P_TRACK, p + P_TRACK + P_NTRACK)
        if add >= 0 and add + 1 not in w[words.start : words.stop]:
            free = next((i for i in words if not w[i]), None)
            if free is None:
                raise OSError(errno.ENOMEM, "NOTE_TRACK: the process has too many trackers")
            w[free] = add + 1
        for i in words:
            if drop >= 0 and w[i] == drop + 1:
                w[i] = 0
        return [w[i] - 1 for i in words if w[i]]
    finally:
        t.lock.exit()


def knote_fork(arena: Arena, parent: int, child: int) -> None:
    """The process at record ``parent`` made the one at ``child``: each kqueue that
    tracks the parent (NOTE_TRACK) gets a knote on the child like the parent's,
    whose first event is NOTE_CHILD with the parent's pid as data, and tracks the
    child too.  A kqueue whose knote has gone is forgotten."""
    w = arena.w
    ppid, pid = w[parent + P_PID], w[child + P_PID]
    for kq in _trackers(arena, parent):
        lock = objlock.objlock(arena, objlock.KQUEUE, kq)
        r = _rec(arena, kq)
        mutex_enter(lock)
        try:
            notes = _load(arena, r) if w[r + F.KQ_STATE] else {}
            kn = notes.get((ppid, F.EVFILT_PROC))
            if kn is not None and kn[_FFLAGS] & F.NOTE_TRACK:
                seen = (child, pid, *_proc_counts(arena, child, F.EVFILT_PROC, pid))
                flags, fflags, udata = kn[_FLAGS], kn[_FFLAGS], kn[_UDATA]
                notes[(pid, F.EVFILT_PROC)] = [flags, fflags, F.NOTE_CHILD, udata, seen, ppid, 0]
                _store(arena, r, notes)
                selnotify(arena, r + F.KQ_SEL)
        finally:
            mutex_exit(lock)
        if kn is not None and kn[_FFLAGS] & F.NOTE_TRACK:
            _trackers(arena, child, add=kq)
        else:
            _trackers(arena, parent, drop=kq)


def knote_proc(arena: Arena, p: int, pid: int, counter: int) -> None:
    """KNOTE on a process: the event its word ``counter`` counts (P_NFORK, P_NEXEC,
    P_NSIG + a signal) happened to process ``pid``, whose record is at word ``p``
    (unless it has gone meanwhile); the kevents waiting for it wake."""
    lock = objlock.objlock(arena, objlock.PROC, p)
    mutex_enter(lock)
    if arena.w[p + P_PID] == pid:
        arena.w[p + counter] += 1
    selnotify(arena, p + P_KNSEL)
    mutex_exit(lock)


def knote_proc_exit(arena: Arena, p: int) -> None:
    """The process whose record was at word ``p`` has gone: the kevents waiting on
    it wake (and see NOTE_EXIT).  Called once the process table's lock is let go."""
    lock = objlock.objlock(arena, objlock.PROC, p)
    mutex_enter(lock)
    selnotify(arena, p + P_KNSEL)
    mutex_exit(lock)


#: The filters whose events add up in fflags until reported with EV_CLEAR.
_HINTED = (F.EVFILT_VNODE, F.EVFILT_PROC)


def _moved(counts: tuple[int, ...], seen: tuple[int, ...]) -> int:
    """The NOTE_* bits whose events happened since ``seen``."""
    return sum(
        1 << i for i, (now, then) in enumerate(zip(counts, seen, strict=True)) if now != then
    )


_UNIT_NS = {
    F.NOTE_MSECONDS: 1_000_000,
    F.NOTE_SECONDS: NS,
    F.NOTE_USECONDS: 1000,
    F.NOTE_NSECONDS: 1,
}


def _timer_arm(arena: Arena, flags: int, fflags: int, data: int) -> tuple[int, int, int] | int:
    """(first deadline on the monotonic clock, period ns or 0, flags) of an
    EVFILT_TIMER knote, or the errno (filt_timercompute).  ``data`` counts the
    unit fflags name; with NOTE_ABSTIME it is a wall-clock time, which fires once
    and stays active (no EV_CLEAR); a relative timer repeats (unless EV_ONESHOT) and
    is EV_CLEAR."""
    if fflags & ~(F.NOTE_TIMER_UNITMASK | F.NOTE_ABSTIME) or data < 0:
        return errno.EINVAL
    ns = data * _UNIT_NS[fflags & F.NOTE_TIMER_UNITMASK]
    now = clock.monotonic_ns()
    if fflags & F.NOTE_ABSTIME:
        return now + max(0, ns - wall_ns(arena, coarse=False)), 0, flags
    if not ns:
        return errno.EINVAL
    return now + ns, 0 if flags & F.EV_ONESHOT else ns, flags | F.EV_CLEAR


def _filter(
    arena: Arena, key: tuple[int, int], note: list, resolve: Resolve, now: int, record: bool
) -> tuple[bool, int, int, object, int]:
    """(fires, data, extra flags, seq, fflags) of one knote."""
    ident, filt = key
    fflags = note[_FFLAGS]
    if filt in (F.EVFILT_PROC, F.EVFILT_SIGNAL):
        return _proc_filter(arena, filt, ident, note, record)
    if filt == F.EVFILT_TIMER:
        if now < note[_DEADLINE]:
            return False, 0, 0, 0, fflags
        if not note[_PERIOD]:  # it fires once, however late it is read
            return True, 1, 0, 0, fflags
        return True, 1 + (now - note[_DEADLINE]) // note[_PERIOD], 0, 0, fflags
    target = resolve(ident)
    if target is None:
        return False, 0, 0, -2, 0  # closed: the caller drops the knote
    ftype, obj, end, offset = target
    fires, data, extra, seq = descrip.fileops(ftype).kqfilter(arena, obj, end, offset, filt, record)
    if filt == F.EVFILT_VNODE:  # the events it watches that happened since it last said
        assert isinstance(seq, tuple)
        hints = _moved(seq, note[_SEQ]) & note[_FFLAGS] | note[_DATA]
        return bool(hints), 0, 0, seq, hints
    return fires, data, extra, seq, note[_FFLAGS]


def _cleared(note: list, filt: int) -> bool:
    """Whether the knote reports a change of its object once (EV_CLEAR) by its
    notification count; the other filters clear in their own way (a timer moves its
    deadline, the others compare counts of their events)."""
    return bool(note[_FLAGS] & F.EV_CLEAR) and filt in (F.EVFILT_READ, F.EVFILT_WRITE)


def kevent_scan(
    arena: Arena, kq: int, nevents: int, resolve: Resolve, record: bool
) -> tuple[list[Kevent], int | None]:
    """Up to ``nevents`` events that fire now, and the nearest timer deadline (ns,
    None if no timer).  With ``record``, waits on every object not ready."""
    lock = objlock.objlock(arena, objlock.KQUEUE, kq)
    r = _rec(arena, kq)
    mutex_enter(lock)
    notes = _load(arena, r)
    if record:  # a knote another lwp adds meanwhile wakes this one
        selrecord(arena, r + F.KQ_SEL)
    mutex_exit(lock)
    now = clock.monotonic_ns()
    fired: dict[tuple[int, int], tuple[int, int, object, int]] = {}
    gone = []
    for key, note in notes.items():
        if note[_FLAGS] & F.EV_DISABLE or len(fired) >= nevents:
            continue
        fires, data, extra, seq, fflags = _filter(arena, key, note, resolve, now, record)
        if seq == -2:
            gone.append(key)
        elif fires and not (_cleared(note, key[1]) and seq == note[_SEQ]):
            fired[key] = (data, extra, seq, fflags)
    events: list[Kevent] = []
    mutex_enter(lock)
    try:
        notes = _load(arena, r)  # as it is now: another lwp may have changed it
        for key in gone:
            notes.pop(key, None)
        for key, (data, extra, seq, fflags) in fired.items():
            kn = notes.get(key)
            if kn is None:
                continue
            events.append((key[0], key[1], kn[_FLAGS] | extra, fflags, data, kn[_UDATA]))
            kn[_SEQ] = seq
            if key[1] in _HINTED:  # without EV_CLEAR they add up, the knote active
                kn[_DATA] = 0 if kn[_FLAGS] & F.EV_CLEAR else fflags
            if key[1] == F.EVFILT_TIMER:
                kn[_DEADLINE] += data * kn[_PERIOD]
            if kn[_FLAGS] & F.EV_ONESHOT or (extra & F.EV_EOF and key[1] == F.EVFILT_PROC):
                del notes[key]
        if fired or gone:
            _store(arena, r, notes)
        timers = [
            n[_DEADLINE]
            for k, n in notes.items()
            if k[1] == F.EVFILT_TIMER and not n[_FLAGS] & F.EV_DISABLE
        ]
    finally:
        mutex_exit(lock)
    return events, min(timers) if timers else None


def _knote_signal(arena: Arena, pid: int, sig: int) -> None:
    p = _proc_slot(arena, pid)
    if p is not None:
        knote_proc(arena, p, pid, P_NSIG + sig)


signals.knote_signal = _knote_signal
descrip.fileops_establish(
    F.DTYPE_KQUEUE, descrip.Fileops(close=lambda arena, kq, _: kqueue_close(arena, kq))
)
