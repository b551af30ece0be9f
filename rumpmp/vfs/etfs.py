"""rump's etfs (rump_etfs(3)): a host file seen in the kernel's namespace.

``rump_pub_etfs_register(key, hostpath, RUMP_ETFS_REG)`` makes ``key`` (a path in
the kernel, its directory existing) a regular file of the memory file system whose
bytes are those of the host file ``hostpath``: reads, writes, truncation and its
size go to the host file through the host-file hypercalls, from whichever CPU
serves the call.  ``rump_pub_etfs_remove(key)`` removes it.  Only regular files are
mapped (rump's block, character and directory types give EOPNOTSUPP here).
"""

from __future__ import annotations

import errno

from hypercalls import hostfile
from rumpmp.rumpkern.locking.rwlock import RW_WRITER
from rumpmp.rumpkern.mem.blob import blob_put
from rumpmp.sys import vnode as V
from rumpmp.vfs import memfs, namei, vnode
from rumpmp.vfs.namei import Cred

ROOT: Cred = (0, 0, [])  # the kernel registers mappings with root's rights


def rump_pub_etfs_register(key: str, hostpath: str, ftype: int) -> None:
    """rump_pub_etfs_register(3): map host file ``hostpath`` at ``key``.  ENOENT if
    the host file is not there, EEXIST if ``key`` is, EOPNOTSUPP for a type other
    than RUMP_ETFS_REG, EINVAL if the host path is not a regular file."""
    if not isinstance(hostpath, str):
        raise TypeError(f"hostpath must be str, not {type(hostpath).__name__}")
    if ftype != V.RUMP_ETFS_REG:
        raise OSError(errno.EOPNOTSUPP, "etfs: only RUMP_ETFS_REG is supported")
    _, regular = hostfile.getfileinfo(hostpath)
    if not regular:
        raise OSError(errno.EINVAL, f"etfs: {hostpath} is not a regular file")
    arena = vnode.vfs_arena()
    d, dgen, name = namei.namei_parent(arena, key, ROOT)
    node, gen = memfs.create(arena, d, dgen, name, V.VREG, 0o644, ROOT)
    held = vnode.vlock_nodes(arena, [node], RW_WRITER)
    try:
        r = vnode.check(arena, node, gen)
        blob_put(arena, hostpath, r + V.V_HOST)
        arena.w[r + V.V_FLAGS] |= V.VN_ETFS
    finally:
        vnode.vunlock(held)


def rump_pub_etfs_remove(key: str) -> None:
    """rump_pub_etfs_remove(3): remove the mapping at ``key`` (the host file stays).
    EINVAL if ``key`` is not an etfs mapping."""
    arena = vnode.vfs_arena()
    node, _ = namei.namei(arena, key, ROOT, follow=False)
    if vnode.host_path(arena, node) is None:
        raise OSError(errno.EINVAL, f"etfs: {key} is not a host file mapping")
    d, dgen, name = namei.namei_parent(arena, key, ROOT)
    memfs.remove(arena, d, dgen, name, False, ROOT)
