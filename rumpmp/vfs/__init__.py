"""The file layer (rump's rumpvfs, with the descriptor, pipe, select and kqueue code
of its kernel): every structure lives in shared memory, so any CPU serves any call
on any file.

- ``select``: selinfo, selrecord/selnotify and the wait every poll, select and
  kevent makes;
- ``pipe``: pipes; ``vnode``: the node table, vnode locks and file data;
- ``memfs``: the memory file system (a RUMP_COMPONENT_KERN_VFS component) and its
  mounts; ``namei``: path lookup and the name cache;
- ``event``: kqueues and their filters; ``descrip``: files and descriptor tables;
- ``sys_generic`` and ``vfs_syscalls``: the system calls.
"""
