"""Vnodes (vfs_vnode.c, with tmpfs's nodes): the node table, vnode locks, node
lifetimes and the data of files, directories and symbolic links.

A node is a record of the "vnode" region (layout in ``sys.vnode``); its number is
its inode number.  Its bytes (file data, a directory's entries, a link's target)
are one block of the kernel heap, replaced by a bigger one as it grows.  Callers
name a node by (number, generation): the generation changes when a record is
reused, so a stale name fails with ENOENT instead of reaching another file.

Locks.  Each node has a reader/writer lock: one of NVLOCKS rwlocks made at boot,
picked by node number (semaphores are a bounded resource).  Code that holds more
than one takes them all at once with ``vlock_nodes``, in one global order, so two
nodes sharing a lock or two renames crossing each other cannot deadlock.  The
table's spin lock guards allocation and the counts that decide when a node dies:
its links and its uses (open files, working directories).  A node is freed when
both are zero.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Callable, Iterable
from typing import TypeVar

from hypercalls import hostfile, sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.clock import NS, nanotime
from rumpmp.rumpkern.file.select import selnotify, selrecord
from rumpmp.rumpkern.locking.rwlock import RW_WRITER, krwlock_t, rw_enter, rw_exit, rw_init_in
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.sys import file as F
from rumpmp.sys import vnode as V
from rumpmp.sys.vnode import Stat

T = TypeVar("T")

BLOCK = 512  # st_blocks counts these


def vfs_arena() -> Arena:
    """The current kernel, with its file system; ENOSYS in one booted without it
    (where a rump kernel without rumpvfs has none of its calls)."""
    arena = _arena.current()
    if not arena.w[_arena.H_VFS]:
        raise OSError(errno.ENOSYS, "this kernel was booted without the file system")
    return arena


def vfs_init(arena: Arena) -> None:
    """The node table's locks and the mount table's (the host, at boot)."""
    h = arena.region_word("vnode")
    arena.w[h + V.VH_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    locks = [rw_init_in(arena, f"vnlock{i}") for i in range(V.NVLOCKS)]
    blob_put(arena, locks, h + V.VH_LOCKS)
    for m in range(V.NMOUNT):
        arena.w[mount_rec(arena, m) + V.M_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    nc = arena.region_word("namecache")
    for i in range(V.NC_LOCKS):
        arena.w[nc + i] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


def rec(arena: Arena, node: int) -> int:
    """Word index of node ``node``'s record."""
    return arena.region_word("vnode") + V.VNODE_HDR + node * V.VNODE_WORDS


def mount_rec(arena: Arena, m: int) -> int:
    return arena.region_word("mount") + m * V.MOUNT_WORDS


def _table_lock(arena: Arena) -> sync.Mutex:
    return arena.spin_lock(arena.region_word("vnode") + V.VH_LOCK)


# -- locks ------------------------------------------------------------------------------


def _vlocks(arena: Arena) -> list[krwlock_t]:
    """The node locks, unpickled once per process."""
    return arena.attached(
        "vnode.locks", lambda: blob_get(arena, arena.region_word("vnode") + V.VH_LOCKS)
    )


def vlock(arena: Arena, node: int) -> krwlock_t:
    """Node ``node``'s lock."""
    return _vlocks(arena)[node % V.NVLOCKS]


def vlocked(arena: Arena, node: int, op: int, body: Callable[[], T]) -> T:
    """``body()`` with node ``node``'s lock held (``op``: RW_READER or RW_WRITER)."""
    lock = vlock(arena, node)
    rw_enter(lock, op)
    try:
        return body()
    finally:
        rw_exit(lock)


def vlock_nodes(arena: Arena, nodes: Iterable[int], op: int) -> list[krwlock_t]:
    """Take the locks of ``nodes`` (each once, in the global order); what to give to
    ``vunlock``."""
    locks = _vlocks(arena)
    held = [locks[i] for i in sorted({n % V.NVLOCKS for n in nodes})]
    for lock in held:
        rw_enter(lock, op)
    return held


def vunlock(held: list[krwlock_t]) -> None:
    for lock in reversed(held):
        rw_exit(lock)


def valid(arena: Arena, node: int, gen: int) -> bool:
    """Whether (node, gen) still names a live node."""
    r = rec(arena, node)
    return bool(arena.w[r + V.V_TYPE]) and arena.w[r + V.V_GEN] == gen


def check(arena: Arena, node: int, gen: int) -> int:
    """The record of (node, gen); ENOENT if that node has gone."""
    if not valid(arena, node, gen):
        raise FileNotFoundError(errno.ENOENT, "no such file or directory")
    return rec(arena, node)


# -- life ------------------------------------------------------------------------------------


def now_ns() -> int:
    s, ns = nanotime()
    return s * NS + ns


def node_alloc(arena: Arena, mount: int, vtype: int, mode: int, uid: int, gid: int) -> int:
    """A new node with no links and no uses; its number.  ENOSPC when the table or
    the mount is full."""
    w, h = arena.w, arena.region_word("vnode")
    lock = _table_lock(arena)
    lock.enter_nowrap()
    try:
        node = w[h + V.VH_FREE]
        if node:
            w[h + V.VH_FREE] = w[rec(arena, node) + V.V_PARENT]
        elif w[h + V.VH_HIGH] + 1 < V.NVNODE:
            w[h + V.VH_HIGH] += 1
            node = w[h + V.VH_HIGH]
        else:
            raise OSError(errno.ENOSPC, "no free node")
        r = rec(arena, node)
        gen = w[r + V.V_GEN] + 1
        w[r : r + V.VNODE_WORDS] = memoryview(bytes(V.VNODE_WORDS * 8)).cast("q")
        w[r + V.V_GEN], w[r + V.V_TYPE], w[r + V.V_MOUNT] = gen, vtype, mount
        w[h + V.VH_NODES] += 1
    finally:
        lock.exit()
    w[r + V.V_MODE], w[r + V.V_UID], w[r + V.V_GID] = mode & V.ALLPERMS, uid, gid
    w[r + V.V_ATIME] = w[r + V.V_MTIME] = w[r + V.V_CTIME] = now_ns()
    _mount_count(arena, mount, V.M_NODES, 1)
    return node


def _node_free(arena: Arena, node: int) -> None:
    w, h, r = arena.w, arena.region_word("vnode"), rec(arena, node)
    set_data_size(arena, node, 0, shrink=True)
    path = host_path(arena, node)
    if path is not None:  # an etfs node: its mapping goes (other CPUs close at exit)
        hostfile.forget(path)
        blob_free(arena, r + V.V_HOST)
    _mount_count(arena, w[r + V.V_MOUNT], V.M_NODES, -1)
    lock = _table_lock(arena)
    lock.enter_nowrap()
    w[r + V.V_TYPE] = V.VNON
    w[r + V.V_PARENT] = w[h + V.VH_FREE]
    w[h + V.VH_FREE] = node
    w[h + V.VH_NODES] -= 1
    lock.exit()


def _count(arena: Arena, node: int, field: int, delta: int) -> None:
    """Change a node's links or uses; free it when both reach zero."""
    w, r = arena.w, rec(arena, node)
    lock = _table_lock(arena)
    lock.enter_nowrap()
    w[r + field] += delta
    dead = not w[r + V.V_NLINK] and not w[r + V.V_USE] and w[r + V.V_TYPE]
    if dead:
        w[r + V.V_USE] = -1  # nobody else may free it
    lock.exit()
    if dead:
        _node_free(arena, node)


def vget(arena: Arena, node: int, gen: int) -> None:
    """Take a use of (node, gen): it stays allocated until ``vrele``.  ENOENT if it
    has gone."""
    lock = _table_lock(arena)
    lock.enter_nowrap()
    ok = valid(arena, node, gen) and arena.w[rec(arena, node) + V.V_USE] >= 0
    if ok:
        arena.w[rec(arena, node) + V.V_USE] += 1
    lock.exit()
    if not ok:
        raise FileNotFoundError(errno.ENOENT, "no such file or directory")


def vrele(arena: Arena, node: int) -> None:
    """Drop a use taken with ``vget``."""
    _count(arena, node, V.V_USE, -1)


def link_count(arena: Arena, node: int, delta: int) -> None:
    """Add or remove links (the caller holds the node's lock): NOTE_LINK, or
    NOTE_DELETE for the last one."""
    r = rec(arena, node)
    arena.w[r + V.V_CTIME] = now_ns()
    if delta:
        gone = arena.w[r + V.V_NLINK] + delta <= 0
        vn_knote(arena, node, F.NOTE_DELETE if gone else F.NOTE_LINK)
    _count(arena, node, V.V_NLINK, delta)


def vn_knote(arena: Arena, node: int, hint: int) -> None:
    """VN_KNOTE: the events ``hint`` (NOTE_* bits) happened to the node, whose lock
    the caller holds for writing: each is counted for EVFILT_VNODE, and whoever
    waits on the node (poll, kevent) is woken."""
    w, r = arena.w, rec(arena, node)
    for i in range(F.VNODE_NOTES):
        if hint >> i & 1:
            w[r + V.V_NOTES + i] += 1
    selnotify(arena, r + V.V_SEL)


def vnode_notes(arena: Arena, node: int, record: bool) -> tuple[int, ...]:
    """The node's event counts (EVFILT_VNODE compares them with those it last
    reported); with ``record``, the caller waits for the next event."""
    w, r = arena.w, rec(arena, node)
    lock = vlock(arena, node)
    rw_enter(lock, RW_WRITER)  # for writing: selrecord changes the selinfo
    try:
        if record:
            selrecord(arena, r + V.V_SEL)
        return tuple(w[r + V.V_NOTES : r + V.V_NOTES + F.VNODE_NOTES])
    finally:
        rw_exit(lock)


# -- data ---------------------------------------------------------------------------------------


def _mount_count(arena: Arena, m: int, field: int, delta: int) -> bool:
    """Add ``delta`` to a mount's counter; False (nothing changed) if that would
    take its used bytes over its limit."""
    w, r = arena.w, mount_rec(arena, m)
    lock = arena.spin_lock(r + V.M_LOCK)
    lock.enter_nowrap()
    limit = w[r + V.M_LIMIT]
    over = field == V.M_USED and delta > 0 and limit and w[r + V.M_USED] + delta > limit
    if not over:
        w[r + field] += delta
    lock.exit()
    return not over


def set_data_size(arena: Arena, node: int, size: int, shrink: bool = False) -> None:
    """Make the node's data block hold ``size`` bytes (growing by doubling; only
    shrinking when asked); ENOSPC when the heap or the mount has no room.  Bytes
    kept move to the new block; the caller holds the node's lock for writing."""
    w, r = arena.w, rec(arena, node)
    cap = w[r + V.V_CAP]
    if shrink:
        new_cap = kmem.kmem_roundup_size(size) if size else 0
    elif size > cap:
        new_cap = kmem.kmem_roundup_size(max(size, 2 * cap))
    else:
        return
    if new_cap == cap:
        return
    if not _mount_count(arena, w[r + V.V_MOUNT], V.M_USED, new_cap - cap):
        raise OSError(errno.ENOSPC, "file system full")
    new = kmem.kmem_alloc_in(arena, new_cap, kmem.KM_NOSLEEP) if new_cap else None
    if new_cap and new is None:
        _mount_count(arena, w[r + V.V_MOUNT], V.M_USED, cap - new_cap)
        raise OSError(errno.ENOSPC, "no memory left for file data")
    if cap:
        old = kmem.kbuf_at(arena, w[r + V.V_DATA], cap, w[r + V.V_DGEN])
        if new is not None:
            keep = min(cap, new_cap, w[r + V.V_SIZE])
            new[:keep] = old[:keep]
        kmem.kmem_free_in(arena, old, cap)
    w[r + V.V_DATA], w[r + V.V_DGEN] = (new.offset, new.gen) if new is not None else (0, 0)
    w[r + V.V_CAP] = new_cap


def host_path(arena: Arena, node: int) -> str | None:
    """The host file an etfs node maps (rump_pub_etfs_register), None for others."""
    r = rec(arena, node)
    if not arena.w[r + V.V_FLAGS] & V.VN_ETFS:
        return None
    return blob_get(arena, r + V.V_HOST, cache=True)


def _host_size(arena: Arena, node: int, path: str) -> int:
    """An etfs node's size, as its host file has it now (kept in V_SIZE too)."""
    size, _ = hostfile.getfileinfo(path)
    arena.w[rec(arena, node) + V.V_SIZE] = size
    return size


def read_data(arena: Arena, node: int, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``offset`` (the caller holds the node's lock)."""
    w, r = arena.w, rec(arena, node)
    path = host_path(arena, node)
    if path is not None:
        return hostfile.pread(path, size, offset)
    end = min(w[r + V.V_SIZE], offset + size)
    base = w[r + V.V_DATA]
    w[r + V.V_ATIME] = now_ns()
    return bytes(arena.buf[base + offset : base + end]) if end > offset else b""


def write_data(arena: Arena, node: int, offset: int, data: bytes | memoryview) -> int:
    """Write ``data`` at ``offset``, zero-filling any gap after the old end (the
    caller holds the node's lock for writing); ENOSPC when nothing fits."""
    w, r = arena.w, rec(arena, node)
    path = host_path(arena, node)
    if path is not None:
        old = w[r + V.V_SIZE]
        n = hostfile.pwrite(path, data, offset)
        _host_size(arena, node, path)
        vn_knote(arena, node, F.NOTE_WRITE | (F.NOTE_EXTEND if w[r + V.V_SIZE] > old else 0))
        return n
    end = offset + len(data)
    set_data_size(arena, node, end)
    base, old = w[r + V.V_DATA], w[r + V.V_SIZE]
    if offset > old:
        arena.buf[base + old : base + offset] = bytes(offset - old)
    arena.buf[base + offset : base + end] = data
    w[r + V.V_SIZE] = max(old, end)
    w[r + V.V_MTIME] = w[r + V.V_CTIME] = now_ns()
    vn_knote(arena, node, F.NOTE_WRITE | (F.NOTE_EXTEND if end > old else 0))
    return len(data)


def truncate(arena: Arena, node: int, size: int) -> None:
    """Set the file's size; new bytes are zeros (the caller holds the lock)."""
    w, r = arena.w, rec(arena, node)
    path = host_path(arena, node)
    if path is not None:
        old = w[r + V.V_SIZE]
        hostfile.truncate(path, size)
        _host_size(arena, node, path)
        vn_knote(arena, node, F.NOTE_ATTRIB | (F.NOTE_EXTEND if size > old else 0))
        return
    old = w[r + V.V_SIZE]
    if size > old:
        set_data_size(arena, node, size)
        base = w[r + V.V_DATA]
        arena.buf[base + old : base + size] = bytes(size - old)
    elif size < w[r + V.V_CAP] // 4:
        w[r + V.V_SIZE] = size
        set_data_size(arena, node, size, shrink=True)
    w[r + V.V_SIZE] = size
    w[r + V.V_MTIME] = w[r + V.V_CTIME] = now_ns()
    vn_knote(arena, node, F.NOTE_ATTRIB | (F.NOTE_EXTEND if size > old else 0))


def file_state(arena: Arena, node: int, offset: int, record: bool) -> tuple[int, int]:
    """(bytes past ``offset``, notification count): what kevent's read filter sees
    of a file; with ``record``, waits for the next write if there are none."""
    w, r = arena.w, rec(arena, node)
    lock = vlock(arena, node)
    rw_enter(lock, RW_WRITER)  # for writing: selrecord changes the selinfo
    try:
        data = max(0, w[r + V.V_SIZE] - offset)
        if record and not data:
            selrecord(arena, r + V.V_SEL)
        return data, w[r + V.V_SEL]
    finally:
        rw_exit(lock)


# -- directories ---------------------------------------------------------------------------------


def cached_entries(arena: Arena, node: int) -> dict[str, int] | None:
    """A directory's entries if this process has them at its current version."""
    r = rec(arena, node)
    cached = arena.cache.get(("dir", node))
    if cached is not None and cached[0] == (arena.w[r + V.V_GEN], arena.w[r + V.V_VERS]):  # type: ignore[index]
        return cached[1]  # type: ignore[index]
    return None


def dir_entries(arena: Arena, node: int) -> dict[str, int]:
    """A directory's entries, name to node (the caller holds its lock).  Kept per
    process by version, so a lookup in an unchanged directory unpickles nothing.
    Do not modify the dict: ``dir_store`` a changed copy."""
    entries = cached_entries(arena, node)
    if entries is not None:
        return entries
    w, r = arena.w, rec(arena, node)
    size = w[r + V.V_SIZE]
    base = w[r + V.V_DATA]
    entries = pickle.loads(arena.buf[base : base + size]) if size else {}
    arena.cache[("dir", node)] = ((w[r + V.V_GEN], w[r + V.V_VERS]), entries)
    return entries


def dir_store(arena: Arena, node: int, entries: dict[str, int]) -> None:
    """Replace a directory's entries (the caller holds its lock for writing)."""
    w, r = arena.w, rec(arena, node)
    data = pickle.dumps(entries, pickle.HIGHEST_PROTOCOL) if entries else b""
    set_data_size(arena, node, len(data), shrink=len(data) < w[r + V.V_CAP] // 4)
    base = w[r + V.V_DATA]
    arena.buf[base : base + len(data)] = data
    w[r + V.V_SIZE] = len(data)
    w[r + V.V_VERS] += 1
    w[r + V.V_MTIME] = w[r + V.V_CTIME] = now_ns()
    arena.cache[("dir", node)] = ((w[r + V.V_GEN], w[r + V.V_VERS]), entries)
    vn_knote(arena, node, F.NOTE_WRITE)


# -- attributes ------------------------------------------------------------------------------------


def getattr_(arena: Arena, node: int) -> Stat:
    """VOP_GETATTR: the node's stat (the caller holds its lock)."""
    w, r = arena.w, rec(arena, node)
    a, m, c = w[r + V.V_ATIME], w[r + V.V_MTIME], w[r + V.V_CTIME]
    vtype = w[r + V.V_TYPE]
    path = host_path(arena, node)
    if path is not None:
        size = _host_size(arena, node, path)
    elif vtype == V.VDIR:
        size = len(dir_entries(arena, node))
    else:
        size = w[r + V.V_SIZE]
    return Stat(  # (in field order: a NamedTuple is made faster without keywords)
        V.VTTOIF[vtype] | w[r + V.V_MODE],  # st_mode
        node,  # st_ino
        w[r + V.V_MOUNT],  # st_dev
        w[r + V.V_NLINK],  # st_nlink
        w[r + V.V_UID],  # st_uid
        w[r + V.V_GID],  # st_gid
        size,  # st_size
        a / NS,  # st_atime
        m / NS,  # st_mtime
        c / NS,  # st_ctime
        a,  # st_atime_ns
        m,  # st_mtime_ns
        c,  # st_ctime_ns
        BLOCK * 8,  # st_blksize
        -(-w[r + V.V_CAP] // BLOCK),  # st_blocks
    )


def vaccess(arena: Arena, node: int, want: int, cred: tuple[int, int, list[int]]) -> None:
    """vaccess(9): EACCES unless ``cred`` (uid, gid, groups) may ``want`` (R_OK,
    W_OK, X_OK bits) the node.  Root may do anything but execute a file no one may."""
    if not want:
        return
    w, r = arena.w, rec(arena, node)
    uid, gid, groups = cred
    mode = w[r + V.V_MODE]
    if uid == 0:
        if not want & V.X_OK or w[r + V.V_TYPE] == V.VDIR or mode & 0o111:
            return
    elif uid == w[r + V.V_UID]:
        mode >>= 6
    elif w[r + V.V_GID] == gid or w[r + V.V_GID] in groups:
        mode >>= 3
    if want & ~mode & 0o7:
        raise PermissionError(errno.EACCES, "permission denied")
