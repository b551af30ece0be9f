"""The file system calls (vfs_syscalls.c): open and the calls that take a path,
plus those that work on an open file's node (lseek, ftruncate, fsync, fchdir,
fchmod, fchown, getdents).

Permissions are checked against the calling process's credential: its effective
ids, or its real ids for ``access``.  Results follow Python's ``os`` functions:
``stat`` returns a ``Stat`` with os.stat_result's fields, ``listdir`` a list of
names.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import curproc_word
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.file import descrip, objlock
from rumpmp.rumpkern.locking.mutex import mutex_enter, mutex_exit
from rumpmp.rumpkern.locking.rwlock import RW_READER, RW_WRITER
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys import file as F
from rumpmp.sys import vnode as V
from rumpmp.sys.proc import P_CWD
from rumpmp.sys.vnode import Stat, Statvfs
from rumpmp.vfs import fifofs, memfs, namei, vfs_init, vnode
from rumpmp.vfs.namei import Cred

T = TypeVar("T")
DT_UNKNOWN, DT_FIFO, DT_DIR, DT_REG, DT_LNK = 0, 1, 4, 8, 10
_DTYPE = {V.VDIR: DT_DIR, V.VREG: DT_REG, V.VLNK: DT_LNK, V.VFIFO: DT_FIFO}


def _with_node(arena: Arena, node: int, gen: int, op: int, body: Callable[[int], T]) -> T:
    """``body(record)`` under the node's lock, once (node, gen) is checked."""
    return vnode.vlocked(arena, node, op, lambda: body(vnode.check(arena, node, gen)))


def _file_node(arena: Arena, fd: int) -> tuple[int, int, int]:
    """(file, node, flag) of a descriptor that opens a vnode; the file is held.
    EBADF for a closed descriptor, EINVAL for a pipe or kqueue."""
    f = descrip.fd_getfile(arena, fd)
    ftype, flag, node, _ = descrip.file_info(arena, f)
    if ftype != F.DTYPE_VNODE:
        descrip.fd_putfile(arena, f)
        raise OSError(errno.EINVAL, "not a file")
    return f, node, flag


def _on_fd(fd: int, body: Callable[[Arena, int, int, int], T]) -> T:
    arena = vnode.vfs_arena()
    f, node, flag = _file_node(arena, fd)
    try:
        return body(arena, f, node, flag)
    finally:
        descrip.fd_putfile(arena, f)


# -- open ----------------------------------------------------------------------------------


def rump_sys_open(path: str, flags: int, mode: int = 0o777) -> int:
    """open(2): a descriptor for ``path``.  O_CREAT (with O_EXCL: EEXIST if it
    exists), O_TRUNC, O_APPEND, O_NONBLOCK, O_DIRECTORY (ENOTDIR), O_NOFOLLOW (ELOOP
    for a link), O_CLOEXEC; EISDIR to write a directory, EACCES without permission.
    A FIFO's open waits for the other side (``fifofs``)."""
    arena = vnode.vfs_arena()
    acc = flags & F.O_ACCMODE
    if acc == F.O_ACCMODE:
        raise OSError(errno.EINVAL, "open: bad access mode")
    fflag = (acc + 1) | flags & F.FCNTLFLAGS
    cred = kauth.curproc_ids()
    node, gen, created = _lookup_or_create(arena, path, flags, mode, cred)
    r = vnode.rec(arena, node)
    vtype = arena.w[r + V.V_TYPE]
    if vtype == V.VLNK:
        raise OSError(errno.ELOOP, "open: O_NOFOLLOW and a symbolic link")
    if flags & F.O_DIRECTORY and vtype != V.VDIR:
        raise NotADirectoryError(errno.ENOTDIR, "open: not a directory")
    if vtype == V.VDIR and (fflag & F.FWRITE or flags & F.O_TRUNC):
        raise IsADirectoryError(errno.EISDIR, "open: a directory for writing")
    want = (V.R_OK if fflag & F.FREAD else 0) | (V.W_OK if fflag & F.FWRITE else 0)
    vnode.vget(arena, node, gen)
    try:
        trunc = bool(flags & F.O_TRUNC and fflag & F.FWRITE)
        _with_node(
            arena,
            node,
            gen,
            RW_WRITER if trunc else RW_READER,
            lambda _: _open_checks(arena, node, 0 if created else want, trunc, cred),
        )
        fifo = 0
        if vtype == V.VFIFO:
            fifo = fifofs.fifo_open(arena, node, fflag, bool(flags & F.O_NONBLOCK))
        try:
            f = descrip.falloc(arena, F.DTYPE_VNODE, fflag, node, fifo)
        except BaseException:
            if fifo:
                fifofs.fifo_close(arena, node, fifo)
            raise
    except BaseException:
        vnode.vrele(arena, node)
        raise
    try:
        return descrip.fd_alloc(arena, f, cloexec=bool(flags & F.O_CLOEXEC))
    except OSError:
        descrip.closef(arena, f)
        raise


def _open_checks(arena: Arena, node: int, want: int, trunc: bool, cred: Cred) -> None:
    vnode.vaccess(arena, node, want, cred)
    if trunc:
        vnode.truncate(arena, node, 0)


def _lookup_or_create(
    arena: Arena, path: str, flags: int, mode: int, cred: Cred
) -> tuple[int, int, bool]:
    follow = not flags & F.O_NOFOLLOW
    try:
        node, gen = namei.namei(arena, path, cred, follow)
    except FileNotFoundError:
        if not flags & F.O_CREAT:
            raise
    else:
        if flags & F.O_CREAT and flags & F.O_EXCL:
            raise FileExistsError(errno.EEXIST, f"{path}: exists")
        return node, gen, False
    d, dgen, name = namei.namei_parent(arena, path, cred)
    try:
        node, gen = memfs.create(arena, d, dgen, name, V.VREG, mode, cred)
        return node, gen, True
    except FileExistsError:
        if flags & F.O_EXCL:
            raise
    node, gen = namei.namei(arena, path, cred, follow)  # made meanwhile by another lwp
    return node, gen, False


# -- names --------------------------------------------------------------------------------------


def rump_sys_mkdir(path: str, mode: int = 0o777) -> None:
    """mkdir(2).  EEXIST if the name is taken."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    d, dgen, name = namei.namei_parent(arena, path, cred)
    memfs.create(arena, d, dgen, name, V.VDIR, mode, cred)


def rump_sys_mkfifo(path: str, mode: int = 0o666) -> None:
    """mkfifo(2): a FIFO named ``path``.  EEXIST if the name is taken."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    d, dgen, name = namei.namei_parent(arena, path, cred)
    memfs.create(arena, d, dgen, name, V.VFIFO, mode, cred)


def rump_sys_mknod(path: str, mode: int, dev: int = 0) -> None:
    """mknod(2): a node of the type ``mode`` names; memfs makes FIFOs
    (S_IFIFO) only: EPERM for a device unless root, then EOPNOTSUPP (there are
    no devices), EINVAL for another type."""
    kind = mode & V.S_IFMT
    if kind in (V.S_IFCHR, V.S_IFBLK):
        if kauth.curproc_ids()[0] != 0:
            raise PermissionError(errno.EPERM, "mknod: a device node needs root")
        raise OSError(errno.EOPNOTSUPP, "mknod: no devices in memfs")
    if kind != V.S_IFIFO:
        raise OSError(errno.EINVAL, "mknod: not a FIFO")
    rump_sys_mkfifo(path, mode)


def rump_sys_symlink(target: str, path: str) -> None:
    """symlink(2): a link at ``path`` to ``target``."""
    if not isinstance(target, str):
        raise TypeError(f"target must be str, not {type(target).__name__}")
    if len(target.encode()) >= V.MAXPATHLEN:
        raise OSError(errno.ENAMETOOLONG, "symlink: target too long")
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    d, dgen, name = namei.namei_parent(arena, path, cred)
    memfs.create(arena, d, dgen, name, V.VLNK, 0o777, cred, target=target)


def rump_sys_readlink(path: str) -> str:
    """readlink(2): the target of link ``path``; EINVAL if it is not a link."""
    arena = vnode.vfs_arena()
    node, gen = namei.namei(arena, path, kauth.curproc_ids(), follow=False)
    return namei.readlink(arena, node, gen)


def rump_sys_unlink(path: str) -> None:
    """unlink(2): remove a name that is not a directory's (EPERM for one)."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    d, dgen, name = namei.namei_parent(arena, path, cred)
    memfs.remove(arena, d, dgen, name, False, cred)


def rump_sys_rmdir(path: str) -> None:
    """rmdir(2): remove an empty directory (ENOTEMPTY otherwise)."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    d, dgen, name = namei.namei_parent(arena, path, cred)
    memfs.remove(arena, d, dgen, name, True, cred)


def rump_sys_rename(src: str, dst: str) -> None:
    """rename(2): atomic, across directories, replacing what ``dst`` names."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    memfs.rename(
        arena, namei.namei_parent(arena, src, cred), namei.namei_parent(arena, dst, cred), cred
    )


def rump_sys_link(src: str, dst: str) -> None:
    """link(2): another name for file ``src``."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    node, gen = namei.namei(arena, src, cred, follow=False)
    d, dgen, name = namei.namei_parent(arena, dst, cred)
    memfs.link(arena, node, gen, d, dgen, name, cred)


# -- attributes --------------------------------------------------------------------------------------


def _stat_path(path: str, follow: bool) -> Stat:
    arena = vnode.vfs_arena()
    node, gen = namei.namei(arena, path, kauth.curproc_ids(), follow)
    return _with_node(arena, node, gen, RW_READER, lambda _: vnode.getattr_(arena, node))


def rump_sys_stat(path: str) -> Stat:
    """stat(2)."""
    return _stat_path(path, True)


def rump_sys_lstat(path: str) -> Stat:
    """lstat(2): a link's own attributes."""
    return _stat_path(path, False)


def _owner_or_root(arena: Arena, r: int, cred: Cred) -> None:
    if cred[0] not in (0, arena.w[r + V.V_UID]):
        raise PermissionError(errno.EPERM, "not the owner")


Change = Callable[[Arena, int, int, Cred], None]  # (arena, node, record, cred)


def _setattr(path_or_fd: str | int, follow: bool, change: Change) -> None:
    """VOP_SETATTR: ``change`` a node's attributes under its lock, the node named by
    a path or an open descriptor."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    if isinstance(path_or_fd, str):
        node, gen = namei.namei(arena, path_or_fd, cred, follow)
    else:
        f, node, _ = _file_node(arena, path_or_fd)
        descrip.fd_putfile(arena, f)  # the node stays checked by its generation
        gen = arena.w[vnode.rec(arena, node) + V.V_GEN]

    def setattr_(r: int) -> None:
        change(arena, node, r, cred)
        vnode.vn_knote(arena, node, F.NOTE_ATTRIB)

    _with_node(arena, node, gen, RW_WRITER, setattr_)


def _chmod(mode: int) -> Change:
    def change(arena: Arena, node: int, r: int, cred: Cred) -> None:
        _owner_or_root(arena, r, cred)
        arena.w[r + V.V_MODE] = mode & V.ALLPERMS
        arena.w[r + V.V_CTIME] = vnode.now_ns()

    return change


def rump_sys_chmod(path: str, mode: int) -> None:
    """chmod(2): EPERM unless the owner or root."""
    _setattr(path, True, _chmod(mode))


def rump_sys_fchmod(fd: int, mode: int) -> None:
    """fchmod(2)."""
    _setattr(fd, True, _chmod(mode))


def _chown(uid: int, gid: int) -> Change:
    def change(arena: Arena, node: int, r: int, cred: Cred) -> None:
        w = arena.w
        _owner_or_root(arena, r, cred)
        if cred[0] != 0:
            if uid not in (-1, w[r + V.V_UID]):
                raise PermissionError(errno.EPERM, "chown: only root may give a file away")
            if gid not in (-1, w[r + V.V_GID]) and gid != cred[1] and gid not in cred[2]:
                raise PermissionError(errno.EPERM, "chown: not a member of that group")
        if uid != -1:
            w[r + V.V_UID] = uid
        if gid != -1:
            w[r + V.V_GID] = gid
        w[r + V.V_CTIME] = vnode.now_ns()

    return change


def rump_sys_chown(path: str, uid: int, gid: int) -> None:
    """chown(2): -1 leaves an id as it is.  Only root gives a file away; an owner
    may change the group to one of its own."""
    _setattr(path, True, _chown(uid, gid))


def rump_sys_lchown(path: str, uid: int, gid: int) -> None:
    """lchown(2): chown of a link itself."""
    _setattr(path, False, _chown(uid, gid))


def rump_sys_fchown(fd: int, uid: int, gid: int) -> None:
    """fchown(2)."""
    _setattr(fd, True, _chown(uid, gid))


def rump_sys_utimes(path: str, times: tuple[float, float] | None = None) -> None:
    """utimes(2): set (atime, mtime) in seconds, or both to now with None (which
    write permission allows; explicit times need the owner or root)."""
    if times is not None and (not isinstance(times, tuple | list) or len(times) != 2):
        raise TypeError("times must be (atime, mtime) or None")

    def change(arena: Arena, node: int, r: int, cred: Cred) -> None:
        if times is None:
            if cred[0] not in (0, arena.w[r + V.V_UID]):
                vnode.vaccess(arena, node, V.W_OK, cred)
            now = vnode.now_ns()
            arena.w[r + V.V_ATIME] = arena.w[r + V.V_MTIME] = now
        else:
            _owner_or_root(arena, r, cred)
            arena.w[r + V.V_ATIME], arena.w[r + V.V_MTIME] = (int(t * 1e9) for t in times)
        arena.w[r + V.V_CTIME] = vnode.now_ns()

    _setattr(path, True, change)


def _truncate_node(arena: Arena, node: int, length: int) -> None:
    if arena.w[vnode.rec(arena, node) + V.V_TYPE] == V.VDIR:
        raise IsADirectoryError(errno.EISDIR, "truncate: a directory")
    vnode.truncate(arena, node, length)


def rump_sys_truncate(path: str, length: int) -> None:
    """truncate(2): set a file's size (new bytes are zeros).  EACCES without write
    permission, EISDIR for a directory."""
    if length < 0:
        raise OSError(errno.EINVAL, "truncate: negative length")
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    node, gen = namei.namei(arena, path, cred)

    def body(_: int) -> None:
        vnode.vaccess(arena, node, V.W_OK, cred)
        _truncate_node(arena, node, length)

    _with_node(arena, node, gen, RW_WRITER, body)


def rump_sys_ftruncate(fd: int, length: int) -> None:
    """ftruncate(2): EINVAL unless open for writing."""
    if length < 0:
        raise OSError(errno.EINVAL, "ftruncate: negative length")

    def body(arena: Arena, f: int, node: int, flag: int) -> None:
        if not flag & F.FWRITE:
            raise OSError(errno.EINVAL, "ftruncate: not open for writing")
        gen = arena.w[vnode.rec(arena, node) + V.V_GEN]
        _with_node(arena, node, gen, RW_WRITER, lambda _: _truncate_node(arena, node, length))

    _on_fd(fd, body)


def rump_sys_fsync(fd: int) -> None:
    """fsync(2): the data is in memory already; only checks the descriptor."""
    _on_fd(fd, lambda arena, f, node, flag: None)


def rump_sys_lseek(fd: int, offset: int, whence: int) -> int:
    """lseek(2): the new offset.  ESPIPE on a pipe or FIFO, EINVAL for a bad whence or a
    negative result."""
    arena = vnode.vfs_arena()
    f = descrip.fd_getfile(arena, fd)
    try:
        ftype, _, node, fifo = descrip.file_info(arena, f)
        if ftype != F.DTYPE_VNODE or fifo:
            raise OSError(errno.ESPIPE, "lseek: not a file")
        r = descrip.frec(arena, f)
        lock = objlock.objlock(arena, objlock.FILE, f)
        mutex_enter(lock)
        try:
            base = {
                F.SEEK_SET: 0,
                F.SEEK_CUR: arena.w[r + F.F_OFFSET],
                F.SEEK_END: arena.w[vnode.rec(arena, node) + V.V_SIZE],
            }.get(whence)
            if base is None or base + offset < 0:
                raise OSError(errno.EINVAL, "lseek: bad whence or offset")
            arena.w[r + F.F_OFFSET] = base + offset
            return base + offset
        finally:
            mutex_exit(lock)
    finally:
        descrip.fd_putfile(arena, f)


# -- directories ------------------------------------------------------------------------------------


def _entries(arena: Arena, node: int, gen: int, cred: Cred) -> list[tuple[int, int, str]]:
    """(ino, type, name) of a directory's entries, "." and ".." first."""

    def body(r: int) -> list[tuple[int, int, str]]:
        if arena.w[r + V.V_TYPE] != V.VDIR:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        vnode.vaccess(arena, node, V.R_OK, cred)
        entries = sorted(vnode.dir_entries(arena, node).items())
        parent = arena.w[r + V.V_PARENT]
        out = [(node, DT_DIR, "."), (parent, DT_DIR, "..")]
        for name, child in entries:
            out.append((child, _DTYPE.get(arena.w[vnode.rec(arena, child) + V.V_TYPE], 0), name))
        return out

    return _with_node(arena, node, gen, RW_READER, body)


def rump_sys_getdents(fd: int, count: int) -> list[tuple[int, int, str]]:
    """getdents(2): up to ``count`` entries (d_fileno, d_type, d_name) of an open
    directory, from its offset (which counts entries); [] at the end."""
    cred = kauth.curproc_ids()

    def body(arena: Arena, f: int, node: int, flag: int) -> list[tuple[int, int, str]]:
        gen = arena.w[vnode.rec(arena, node) + V.V_GEN]
        r = descrip.frec(arena, f)
        lock = objlock.objlock(arena, objlock.FILE, f)
        mutex_enter(lock)
        try:
            at = arena.w[r + F.F_OFFSET]
            chunk = _entries(arena, node, gen, cred)[at : at + count]
            arena.w[r + F.F_OFFSET] = at + len(chunk)
            return chunk
        finally:
            mutex_exit(lock)

    return _on_fd(fd, body)


def rump_sys_listdir(path: str = ".") -> list[str]:
    """The names in directory ``path``, as ``os.listdir`` gives them (no "." or
    ".."); rumpmp's host-side convenience, served by the kernel in one call."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    node, gen = namei.namei(arena, path, cred)
    return [name for _, _, name in _entries(arena, node, gen, cred)[2:]]


def rump_sys_chdir(path: str) -> None:
    """chdir(2): ENOTDIR, EACCES without search permission."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids()
    node, gen = namei.namei(arena, path, cred)
    _set_cwd(arena, node, gen, cred)


def rump_sys_fchdir(fd: int) -> None:
    """fchdir(2)."""
    cred = kauth.curproc_ids()
    _on_fd(
        fd,
        lambda arena, f, node, flag: _set_cwd(
            arena, node, arena.w[vnode.rec(arena, node) + V.V_GEN], cred
        ),
    )


def _set_cwd(arena: Arena, node: int, gen: int, cred: Cred) -> None:
    def body(r: int) -> None:
        if arena.w[r + V.V_TYPE] != V.VDIR:
            raise NotADirectoryError(errno.ENOTDIR, "chdir: not a directory")
        vnode.vaccess(arena, node, V.X_OK, cred)

    _with_node(arena, node, gen, RW_READER, body)
    vnode.vget(arena, node, gen)
    w, p = arena.w, curproc_word(arena)
    old = w[p + P_CWD]
    w[p + P_CWD], w[p + P_CWD + 1] = node, gen
    if old:
        vnode.vrele(arena, old)


def rump_sys_getcwd() -> str:
    """getcwd(2): the working directory's path; ENOENT if it has been removed."""
    arena = vnode.vfs_arena()
    w = arena.w
    node, gen = namei.cwd(arena)
    root, _ = namei.root(arena)
    names: list[str] = []

    def entries_of(d: int) -> Callable[[int], dict[str, int]]:
        return lambda _: vnode.dir_entries(arena, d)

    while node != root:
        r = vnode.rec(arena, node)
        if not w[r + V.V_NLINK] or not vnode.valid(arena, node, gen):
            raise FileNotFoundError(errno.ENOENT, "getcwd: the directory has been removed")
        m = vnode.mount_rec(arena, w[r + V.V_MOUNT])
        if w[m + V.M_ROOT] == node:  # a mounted root: carry on from what it covers
            node = w[m + V.M_COVERED]
            gen = w[vnode.rec(arena, node) + V.V_GEN]
            continue
        parent = w[r + V.V_PARENT]
        pgen = w[vnode.rec(arena, parent) + V.V_GEN]
        entries = _with_node(arena, parent, pgen, RW_READER, entries_of(parent))
        names.append(next((n for n, c in entries.items() if c == node), "?"))
        node, gen = parent, pgen
    return "/" + "/".join(reversed(names))


def rump_sys_access(path: str, mode: int) -> None:
    """access(2), with the process's real ids: EACCES if it may not, ENOENT if the
    file does not exist (F_OK)."""
    arena = vnode.vfs_arena()
    cred = kauth.curproc_ids(real=True)
    node, gen = namei.namei(arena, path, cred)
    _with_node(arena, node, gen, RW_READER, lambda _: vnode.vaccess(arena, node, mode & 7, cred))


# -- file systems ---------------------------------------------------------------------------------


def rump_sys_statvfs(path: str) -> Statvfs:
    """statvfs(2) of the file system ``path`` is on."""
    arena = vnode.vfs_arena()
    node, _ = namei.namei(arena, path, kauth.curproc_ids())
    w = arena.w
    m = vnode.mount_rec(arena, w[vnode.rec(arena, node) + V.V_MOUNT])
    bsize = 4096
    total = w[m + V.M_LIMIT] or kmem.heap_size(arena)
    free = max(0, min(total - w[m + V.M_USED], kmem.heap_size(arena) - kmem.kmem_stats(arena)[1]))
    nodes_free = V.NVNODE - w[arena.region_word("vnode") + V.VH_NODES]
    return Statvfs(
        f_bsize=bsize,
        f_frsize=bsize,
        f_blocks=total // bsize,
        f_bfree=free // bsize,
        f_bavail=free // bsize,
        f_files=V.NVNODE,
        f_ffree=nodes_free,
        f_favail=nodes_free,
        f_fsid=w[vnode.rec(arena, node) + V.V_MOUNT],
        f_flag=w[m + V.M_FLAGS],
        f_namemax=V.MAXNAMLEN,
    )


def rump_sys_mount(fstype: str, path: str, flags: int = 0, size: int = 0) -> None:
    """mount(2) of a new memory file system on directory ``path``, its file data
    limited to ``size`` bytes (0: the heap's).  ``fstype`` is one vfs_attach made
    known ("memfs" and "tmpfs" from boot): ENODEV for another, EPERM unless root,
    EBUSY if something is mounted."""
    arena = vnode.vfs_arena()
    if not isinstance(fstype, str) or not vfs_init.vfs_known(arena, fstype):
        raise OSError(errno.ENODEV, f"mount: no file system type {fstype!r}")
    memfs.mount(arena, path, size, kauth.curproc_ids())


def rump_sys_unmount(path: str, flags: int = 0) -> None:
    """unmount(2): EBUSY while a file is open in it, a process works in it or a
    file system is mounted in it."""
    memfs.unmount(vnode.vfs_arena(), path, flags, kauth.curproc_ids())
