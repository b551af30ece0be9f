"""The host layer of rumpmp: everything the kernel needs from the host (rumpuser(3)).

Only this package touches host primitives (processes, threads, clocks, environment,
shared memory, semaphores, console).  It knows nothing of kernel structures.  The
kernel checks ``VERSION`` at boot and refuses a mismatch with EPROGMISMATCH.
"""

VERSION = 1

#: rumpuser_exit(RUMPUSER_PANIC): the exit status of a panicked CPU process.
PANIC = 70
