"""The rump kernel's core (the seed's librump/rumpkern), in folders from the bottom
up: a module imports only from its own folder and the folders below it (the layout
test enforces it), and nothing above the core (the file system, the sysproxy
server, the host side).  ``init`` boots it all and sits on top."""

#: rumpkern's folders, bottom to top.
LAYERS = (
    "base",  # the arena, handles, kernel entry, printf/panic, msgbuf, evcnt, the clock
    "mem",  # kmem, blobs in the kernel heap, specificdata
    "locking",  # mutexes, rwlocks, condvars, sleep queues, the big lock, LOCKDEBUG
    "cred",  # credentials, ids, resource limits, signals
    "file",  # files and descriptors, pipes, select/poll, kqueue, the generic calls
    "sched",  # the scheduler, lwps and processes, kthreads, host calls, the CPUs, reboot
    "intr",  # softints, cross-calls, callouts, percpu
    "svc",  # sysctl, modules and components, workqueues, once, ksyms, copyin/out
    "syscall",  # the system call table and its dispatcher
)
