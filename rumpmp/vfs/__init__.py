"""The file system (rump's rumpvfs): vnodes, path lookup and the name cache, the
memory file system and etfs, and the file system's system calls.  Every structure
lives in shared memory, so any CPU serves any call on any file.

- ``vnode``: the node table, vnode locks and file data; ``vfs_vnops``: what the
  core's descriptor calls do with a vnode;
- ``namei``: path lookup and the name cache;
- ``memfs``: the memory file system and its mounts; ``etfs``: host files;
- ``vfs_syscalls``: open, stat, mkdir, mount, ...;
- ``rump_vfs``: the component: importing this package links it into the core.

Descriptors, pipes, select/poll and kqueue are the core's (``rumpmp.rumpkern.file``).
"""

from rumpmp.vfs import rump_vfs as rump_vfs
