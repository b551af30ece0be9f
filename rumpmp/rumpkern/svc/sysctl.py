"""sysctl(9), sysctl(3): the kernel's tree of named values, in shared memory.

Every CPU and the host see the one tree: fixed node records in the arena's "sysctl"
region under one spin lock, held only while a record is read or written.  A node
has a number (its MIB component), a name, a type (node, int, quad, bool, string,
struct) and flags; int, quad and bool values live in the record, strings and
structs in a kmem buffer of the size given at creation (``kern.hostname`` in the
arena's hostname field, which the host reads too).

rumpmp differs from NetBSD in the call shape: ``sysctl_createv(parent, name, type,
flags, value)`` takes its parent as a MIB tuple or a dotted name and returns the new
node's MIB; values go in and out as Python values, not buffers and lengths.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from typing import Any

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import evcnt
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.cred import kauth, prot
from rumpmp.rumpkern.locking import lockstat
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.sched import scheduler
from rumpmp.sys import sysctl as S
from rumpmp.sys.file import NFILE
from rumpmp.sys.proc import NPROC

Mib = tuple[int, ...]
Node = str | Mib

#: The functions that compute handler nodes: (arena, the node's value) -> what it reads.
_HANDLERS: tuple[Callable[[Arena, int], object], ...] = (
    scheduler.sysctl_stat,
    prot.proc2,
    lambda arena, _: [tuple(row) for row in lockstat.rows(arena)],
    lambda arena, _: evcnt.evcnt_list(arena),
)
_SCHED_STAT = 1  # kern.sched.cpuN.<counter>: value = 16 * cpu + the counter's index
_PROC2 = 2  # kern.proc2: every process, as a list
_LOCKSTAT = 3  # kern.lockstat.stats: lockstat's rows (LockStat fields, as tuples)
_EVCNT = 4  # kern.evcnt: (group, name, count) of every event counter, as vmstat -e reads

_LIMITS = {S.CTLTYPE_INT: (-(2**31), 2**31 - 1), S.CTLTYPE_QUAD: (-(2**63), 2**63 - 1)}
_TYPE_NAMES = {
    S.CTLTYPE_NODE: "node",
    S.CTLTYPE_INT: "int",
    S.CTLTYPE_STRING: "string",
    S.CTLTYPE_QUAD: "quad",
    S.CTLTYPE_STRUCT: "struct",
    S.CTLTYPE_BOOL: "bool",
}


class _Tree:
    """One process's view of a kernel's tree."""

    def __init__(self, arena: Arena) -> None:
        self.arena, self.w = arena, arena.w
        self.base = arena.region_word("sysctl")
        self.lock = arena.spin_lock(self.base + S.S_LOCK)

    def rec(self, i: int) -> int:
        return self.base + S.S_WORDS + i * S.N_WORDS

    def name(self, i: int) -> str:
        off = self.rec(i) * 8 + S.N_NAME * 8
        return bytes(self.arena.buf[off : off + S.SYSCTL_NAMELEN]).rstrip(b"\0").decode()

    def column(self, word: int) -> list[int]:
        """Word ``word`` of every record up to the highest ever used."""
        first = self.rec(0)
        return self.w[first + word : self.rec(self.w[self.base + S.S_TOP]) : S.N_WORDS].tolist()

    def children(self, parent: int) -> list[int]:
        """Indices of the nodes under record index ``parent - 1`` (0: the top)."""
        pairs = zip(self.column(S.N_USED), self.column(S.N_PARENT), strict=True)
        return [i for i, (u, p) in enumerate(pairs) if u and p == parent]

    def child(self, parent: int, key: int | str) -> int:
        """The index of the child numbered (or named) ``key``; ENOENT if none."""
        for i in self.children(parent):
            if (self.w[self.rec(i) + S.N_NUM] if isinstance(key, int) else self.name(i)) == key:
                return i
        raise FileNotFoundError(errno.ENOENT, f"sysctl: no node {key!r}")

    def find(self, node: Node) -> tuple[int, Mib]:
        """(record index, MIB) of a node given by MIB or dotted name."""
        keys: list[int | str] = list(node.split(".")) if isinstance(node, str) else list(node)
        if not keys or len(keys) > S.CTL_MAXNAME or keys == [""]:
            raise OSError(errno.EINVAL, f"sysctl: bad name {node!r}")
        parent, mib, i = 0, [], -1
        for depth, key in enumerate(keys):
            if depth and self.w[self.rec(i) + S.N_TYPE] != S.CTLTYPE_NODE:
                raise NotADirectoryError(errno.ENOTDIR, f"sysctl: {node!r} goes below a leaf")
            i = self.child(parent, key)
            mib.append(self.w[self.rec(i) + S.N_NUM])
            parent = i + 1
        return i, tuple(mib)

    def full_name(self, i: int) -> str:
        parts = []
        while i >= 0:
            parts.append(self.name(i))
            i = self.w[self.rec(i) + S.N_PARENT] - 1
        return ".".join(reversed(parts))


def _tree(arena: Arena) -> _Tree:
    return arena.attached("sysctl", lambda: _Tree(arena))


@contextlib.contextmanager
def _held(t: _Tree) -> Iterator[None]:
    """The tree's spin lock, keeping the CPU (it is held for a few record reads)."""
    t.lock.enter_nowrap()
    try:
        yield
    finally:
        t.lock.exit()


def _node(node: object, what: str = "node") -> Node:
    if isinstance(node, str):
        return node
    if isinstance(node, tuple) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in node
    ):
        return node
    raise TypeError(
        f"sysctl: {what} must be a dotted name or a tuple of ints, not {type(node).__name__}"
    )


# -- values ----------------------------------------------------------------------------


def _check_value(ctype: int, size: int, value: object) -> object:
    """``value`` as the node stores it; EINVAL if it does not fit the type."""
    if ctype == S.CTLTYPE_BOOL:
        if value not in (0, 1) or not isinstance(value, int):
            raise OSError(errno.EINVAL, f"sysctl: a bool node takes True or False, not {value!r}")
        return int(value)
    if ctype in _LIMITS:
        low, high = _LIMITS[ctype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise OSError(errno.EINVAL, f"sysctl: {value!r} is not a {_TYPE_NAMES[ctype]}")
        return value
    if ctype == S.CTLTYPE_STRING:
        data = value.encode() if isinstance(value, str) else None
        if data is None or len(data) >= size or b"\0" in data:
            raise OSError(
                errno.EINVAL, f"sysctl: a string of fewer than {size} bytes, not {value!r}"
            )
        return data
    if ctype == S.CTLTYPE_STRUCT:
        if not isinstance(value, bytes | bytearray) or len(value) != size:
            raise OSError(errno.EINVAL, f"sysctl: a struct node takes exactly {size} bytes")
        return bytes(value)
    raise IsADirectoryError(errno.EISDIR, "sysctl: a node has no value")


def _read(t: _Tree, i: int) -> object:
    w, r = t.w, t.rec(i)
    ctype = w[r + S.N_TYPE]
    if ctype == S.CTLTYPE_NODE:
        raise IsADirectoryError(errno.EISDIR, f"sysctl: {t.full_name(i)} is a node")
    if w[r + S.N_FUNC]:  # computed when read (the kernel's own counters)
        return _HANDLERS[w[r + S.N_FUNC] - 1](t.arena, w[r + S.N_VALUE])
    if ctype == S.CTLTYPE_BOOL:
        return bool(w[r + S.N_VALUE])
    if ctype in _LIMITS:
        return w[r + S.N_VALUE]
    data = bytes(t.arena.buf[w[r + S.N_DATA] : w[r + S.N_DATA] + w[r + S.N_LEN]])
    if ctype == S.CTLTYPE_STRING:
        return data.decode()
    name = t.full_name(i)
    layout = S.STRUCT_LAYOUTS.get(name)
    return S.typed(name, layout.unpack(data)) if layout is not None else data


def _store(t: _Tree, i: int, value: object) -> None:
    w, r = t.w, t.rec(i)
    if isinstance(value, bytes):
        off = w[r + S.N_DATA]
        t.arena.buf[off : off + w[r + S.N_SIZE]] = value.ljust(w[r + S.N_SIZE], b"\0")
        w[r + S.N_LEN] = len(value)
    else:
        w[r + S.N_VALUE] = int(value)  # type: ignore[call-overload]


def _may_write(t: _Tree, i: int, flags: int) -> None:
    if flags & S.CTLFLAG_READWRITE != S.CTLFLAG_READWRITE:
        raise PermissionError(errno.EPERM, f"sysctl: {t.full_name(i)} is read-only")
    # Kernel code needs root credentials; the host is the kernel's owner.
    if (
        not flags & S.CTLFLAG_ANYWRITE
        and thread.curlwp()
        and kauth.kauth_cred_geteuid(kauth.kauth_cred_get())
    ):
        raise PermissionError(errno.EPERM, f"sysctl: {t.full_name(i)}: only root may set it")


# -- creating and destroying -------------------------------------------------------------


def createv_in(
    arena: Arena,
    parent: Node,
    name: str,
    ctype: int,
    flags: int = S.CTLFLAG_READONLY,
    value: object = None,
    size: int | None = None,
    num: int = S.CTL_CREATE,
    data_off: int | None = None,
    handler: int = 0,
) -> Mib:
    """sysctl_createv on a given kernel; ``data_off`` places a string or struct in
    arena bytes the node does not own (the hostname); a read-only node with a
    ``handler`` (1 + an index in _HANDLERS) has the value ``handler(arena, value)``."""
    if (
        not isinstance(name, str)
        or not name
        or "." in name
        or len(name.encode()) >= S.SYSCTL_NAMELEN
    ):
        raise OSError(errno.EINVAL, f"sysctl_createv: bad name {name!r}")
    if ctype not in _TYPE_NAMES:
        raise OSError(errno.EINVAL, f"sysctl_createv: bad type {ctype!r}")
    room = _room(ctype, size, value)
    stored = None if ctype == S.CTLTYPE_NODE or value is None else _check_value(ctype, room, value)
    buf = kmem.kmem_zalloc_in(arena, room) if room and data_off is None else None
    t = _tree(arena)
    try:
        with _held(t):
            i = _new_record(t, parent, name, num)
            w, r = t.w, t.rec(i)
            w[r + S.N_TYPE], w[r + S.N_FLAGS], w[r + S.N_NEXT] = ctype, flags, S.CREATE_BASE
            w[r + S.N_SIZE] = room
            if buf is not None:
                w[r + S.N_DATA], w[r + S.N_GEN] = buf.offset, buf.gen
            elif data_off is not None:
                w[r + S.N_DATA], w[r + S.N_GEN] = data_off, -1
                w[r + S.N_LEN] = bytes(arena.buf[data_off : data_off + room]).find(b"\0")
            if stored is not None:
                _store(t, i, stored)
            w[r + S.N_FUNC] = handler
            w[r + S.N_USED] = 1
            return _mib_of(t, i)
    except BaseException:
        if buf is not None:
            kmem.kmem_free_in(arena, buf, room)
        raise


def _room(ctype: int, size: int | None, value: object) -> int:
    if ctype not in (S.CTLTYPE_STRING, S.CTLTYPE_STRUCT):
        return 0
    if size is None:
        if not isinstance(value, str | bytes):
            raise OSError(
                errno.EINVAL, "sysctl_createv: a string or struct node needs a size or a value"
            )
        size = len(value.encode() if isinstance(value, str) else value) + (
            ctype == S.CTLTYPE_STRING
        )
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 1 << 16:
        raise OSError(errno.EINVAL, f"sysctl_createv: bad size {size!r}")
    return size


def _new_record(t: _Tree, parent: Node, name: str, num: int) -> int:
    """A free record under ``parent`` (tree lock held), numbered and named."""
    w = t.w
    p = 0 if parent in ("", ()) else t.find(parent)[0] + 1
    if p and w[t.rec(p - 1) + S.N_TYPE] != S.CTLTYPE_NODE:
        raise NotADirectoryError(errno.ENOTDIR, f"sysctl_createv: {parent!r} is not a node")
    siblings = t.children(p)
    if any(t.name(i) == name for i in siblings):
        raise FileExistsError(errno.EEXIST, f"sysctl_createv: {name} exists")
    if num == S.CTL_CREATE:
        counter = t.rec(p - 1) + S.N_NEXT if p else t.base + S.S_NEXT
        num = w[counter]
        w[counter] += 1
    elif num < 0 or any(w[t.rec(i) + S.N_NUM] == num for i in siblings):
        raise FileExistsError(errno.EEXIST, f"sysctl_createv: number {num} is taken")
    used, top = t.column(S.N_USED), w[t.base + S.S_TOP]
    i = used.index(0) if 0 in used else top
    if i == S.NNODES:
        raise OSError(errno.ENOMEM, f"sysctl_createv: all {S.NNODES} nodes are in use")
    w[t.base + S.S_TOP] = max(top, i + 1)
    r = t.rec(i)
    w[r : r + S.N_WORDS] = memoryview(bytes(S.N_WORDS * 8)).cast("q")
    w[r + S.N_PARENT], w[r + S.N_NUM] = p, num
    off = (r + S.N_NAME) * 8
    t.arena.buf[off : off + S.SYSCTL_NAMELEN] = name.encode().ljust(S.SYSCTL_NAMELEN, b"\0")
    return i


def _mib_of(t: _Tree, i: int) -> Mib:
    mib = []
    while i >= 0:
        mib.append(t.w[t.rec(i) + S.N_NUM])
        i = t.w[t.rec(i) + S.N_PARENT] - 1
    return tuple(reversed(mib))


def sysctl_createv(
    parent: Node,
    name: str,
    ctype: int,
    flags: int = S.CTLFLAG_READONLY,
    value: object = None,
    *,
    size: int | None = None,
    num: int = S.CTL_CREATE,
) -> Mib:
    """sysctl_createv(9): a new node ``name`` under ``parent`` ("" for the top);
    its MIB.  EEXIST for a name or number taken, ENOTDIR for a leaf parent, EINVAL for
    a value that does not fit the type (a string's ``size`` counts its NUL)."""
    return createv_in(
        _arena.current(), _node(parent, "parent"), name, ctype, flags, value, size, num
    )


def sysctl_destroyv(node: Node) -> None:
    """sysctl_destroyv(9): remove a leaf or an empty node; ENOTEMPTY if it has
    children, EPERM if it is CTLFLAG_PERMANENT."""
    arena = _arena.current()
    t = _tree(arena)
    with _held(t):
        i, _ = t.find(_node(node))
        w, r = t.w, t.rec(i)
        if w[r + S.N_FLAGS] & S.CTLFLAG_PERMANENT:
            raise PermissionError(errno.EPERM, f"sysctl_destroyv: {t.full_name(i)} is permanent")
        if t.children(i + 1):
            raise OSError(errno.ENOTEMPTY, f"sysctl_destroyv: {t.full_name(i)} has children")
        w[r + S.N_USED] = 0
        owned = w[r + S.N_GEN] > 0 and (w[r + S.N_DATA], w[r + S.N_SIZE], w[r + S.N_GEN])
    if owned:
        off, size, gen = owned
        kmem.kmem_free_in(arena, kmem._make_kbuf(arena, off, size, gen), size)


# -- reading and writing -------------------------------------------------------------------


def sysctl_in(arena: Arena, node: Node, new: object = None) -> object:
    """The value of ``node`` and, if ``new`` is not None, set it to ``new`` (the old
    value is returned): what __sysctl does."""
    t = _tree(arena)
    with _held(t):
        i, _ = t.find(node)
        old = _read(t, i)
        if new is not None:
            r = t.rec(i)
            _may_write(t, i, t.w[r + S.N_FLAGS])
            _store(t, i, _check_value(t.w[r + S.N_TYPE], t.w[r + S.N_SIZE], new))
        return old


def rump_sys___sysctl(name: Node, new: object = None) -> object:
    """__sysctl(2) on a MIB or a dotted name: the old value, after setting ``new``
    when given.  ENOENT for no such node, ENOTDIR below a leaf, EISDIR for a node,
    EPERM for a read-only node or a non-root writer, EINVAL for a bad value.  A MIB
    ending in CTL_QUERY lists the children of the node before it, as
    ``sysctl_query`` does."""
    node = _node(name, "name")
    if isinstance(node, tuple) and node and node[-1] == S.CTL_QUERY:
        if new is not None:
            raise OSError(errno.EINVAL, "sysctl: a query takes no new value")
        return query_in(_arena.current(), node[:-1])
    return sysctl_in(_arena.current(), node, new)


def sysctl_lookup(name: str) -> Mib:
    """The MIB of a dotted name (sysctlnametomib(3))."""
    t = _tree(_arena.current())
    with _held(t):
        return t.find(_node(name, "name"))[1]


def sysctl_query(node: Node = "") -> list[tuple[int, str, str]]:
    """CTL_QUERY: (number, name, type) of each child of ``node`` ("" for the top)."""
    return query_in(_arena.current(), _node(node))


def query_in(arena: Arena, node: Node) -> list[tuple[int, str, str]]:
    t = _tree(arena)
    with _held(t):
        parent = 0 if node in ("", ()) else t.find(node)[0] + 1
        return sorted(
            (t.w[t.rec(i) + S.N_NUM], t.name(i), _TYPE_NAMES[t.w[t.rec(i) + S.N_TYPE]])
            for i in t.children(parent)
        )


def all_in(arena: Arena) -> dict[str, Any]:
    """Every leaf's dotted name and value (``sysctl -a``), in MIB order."""
    t = _tree(arena)
    out: dict[str, Any] = {}
    with _held(t):

        def walk(parent: int, prefix: str) -> None:
            for i in sorted(t.children(parent), key=lambda i: t.w[t.rec(i) + S.N_NUM]):
                name = prefix + t.name(i)
                if t.w[t.rec(i) + S.N_TYPE] == S.CTLTYPE_NODE:
                    walk(i + 1, name + ".")
                else:
                    out[name] = _read(t, i)

        walk(0, "")
    return out


# -- boot ------------------------------------------------------------------------------------


def value_word(arena: Arena, node: Node) -> int:
    """The word that holds an int node's value: a subsystem that owns a tunable
    (kern.maxfiles) reads it there, without a lookup per use."""
    t = _tree(arena)
    with _held(t):
        i, _ = t.find(node)
        return t.rec(i) + S.N_VALUE


def sysctl_init(arena: Arena, ostype: str, osrelease: str, version: str, memlimit: int) -> None:
    """The tree's lock and the nodes every kernel has (the host, before the CPUs start)."""
    w = arena.w
    base = arena.region_word("sysctl")
    w[base + S.S_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    w[base + S.S_NEXT] = S.CREATE_BASE
    ro, perm = S.CTLFLAG_READONLY | S.CTLFLAG_PERMANENT, S.CTLFLAG_PERMANENT
    node = S.CTLTYPE_NODE

    def create(
        parent: Node, name: str, ctype: int, num: int, value: object = None, **kw: Any
    ) -> Mib:
        return createv_in(arena, parent, name, ctype, kw.pop("flags", ro), value, num=num, **kw)

    create("", "kern", node, S.CTL_KERN, flags=perm)
    create("kern", "ostype", S.CTLTYPE_STRING, S.KERN_OSTYPE, ostype)
    create("kern", "osrelease", S.CTLTYPE_STRING, S.KERN_OSRELEASE, osrelease)
    create("kern", "version", S.CTLTYPE_STRING, S.KERN_VERSION, version)
    create("kern", "maxproc", S.CTLTYPE_INT, S.KERN_MAXPROC, NPROC)
    create(
        "kern", "maxfiles", S.CTLTYPE_INT, S.KERN_MAXFILES, NFILE, flags=S.CTLFLAG_READWRITE | perm
    )
    create(
        "kern", "hostname", S.CTLTYPE_STRING, S.KERN_HOSTNAME,
        flags=S.CTLFLAG_READWRITE | perm, size=S.MAXHOSTNAMELEN, data_off=_arena.HOSTNAME_OFF,
    )  # fmt: skip
    hz = w[_arena.H_HZ]
    clockinfo = S.CLOCKINFO.pack(*S.clockinfo(hz, 1_000_000 // hz, 0, hz, hz))
    create("kern", "clockrate", S.CTLTYPE_STRUCT, S.KERN_CLOCKRATE, clockinfo)
    boottime = S.TIMESPEC.pack(w[_arena.H_BOOT_SEC], w[_arena.H_BOOT_NSEC])
    create("kern", "boottime", S.CTLTYPE_STRUCT, S.KERN_BOOTTIME, boottime)
    create("", "hw", node, S.CTL_HW, flags=perm)
    create("hw", "ncpu", S.CTLTYPE_INT, S.HW_NCPU, arena.ncpu)
    create("hw", "ncpuonline", S.CTLTYPE_INT, S.HW_NCPUONLINE, arena.ncpu)
    create("hw", "physmem", S.CTLTYPE_INT, S.HW_PHYSMEM, min(memlimit, 2**31 - 1))
    create("hw", "physmem64", S.CTLTYPE_QUAD, S.HW_PHYSMEM64, memlimit)
    sched = create((S.CTL_KERN,), "sched", node, S.CTL_CREATE, flags=perm)
    for cpu in range(arena.ncpu):
        mib = create(sched, f"cpu{cpu}", node, S.CTL_CREATE, flags=perm)
        for k, key in enumerate(scheduler.STAT_KEYS):
            create(mib, key, S.CTLTYPE_QUAD, S.CTL_CREATE, cpu * 16 + k, handler=_SCHED_STAT)
    create("kern", "proc2", S.CTLTYPE_STRUCT, S.KERN_PROC2, b"\0", handler=_PROC2)
    create("kern", "evcnt", S.CTLTYPE_STRUCT, S.KERN_EVCNT, b"\0", handler=_EVCNT)
    create((S.CTL_KERN,), "lockstat", node, S.CTL_CREATE, flags=perm)
    create("kern.lockstat", "enabled", S.CTLTYPE_BOOL, S.CTL_CREATE, lockstat.enabled(arena))
    create("kern.lockstat", "stats", S.CTLTYPE_STRUCT, S.CTL_CREATE, b"\0", handler=_LOCKSTAT)
