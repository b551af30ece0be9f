"""System call numbers (NetBSD's sys/syscall.h, for the calls rumpmp serves; a
call NetBSD has under a versioned name, such as __stat50, has that number)."""

SYS_read = 3
SYS_write = 4
SYS_open = 5
SYS_close = 6
SYS_link = 9
SYS_unlink = 10
SYS_chdir = 12
SYS_fchdir = 13
SYS_chmod = 15
SYS_chown = 16
SYS_getpid = 20
SYS_unmount = 22
SYS_access = 33
SYS_dup = 41
SYS_pipe = 42
SYS_ioctl = 54
SYS_symlink = 57
SYS_readlink = 58
SYS_dup2 = 90
SYS_fcntl = 92
SYS_fsync = 95
SYS_readv = 120
SYS_writev = 121
SYS_fchown = 123
SYS_fchmod = 124
SYS_rename = 128
SYS_mkfifo = 132
SYS_mkdir = 136
SYS_rmdir = 137
SYS_pread = 173
SYS_pwrite = 174
SYS_lseek = 199
SYS_truncate = 200
SYS_ftruncate = 201
SYS_poll = 209
SYS_lchown = 275
SYS_getcwd = 296
SYS_kqueue = 344
SYS_statvfs = 357
SYS_getdents = 390
SYS_mount = 410
SYS_select = 417
SYS_gettimeofday = 418
SYS_utimes = 420
SYS_clock_gettime = 427
SYS_clock_getres = 429
SYS_nanosleep = 430
SYS_kevent = 435
SYS_pollts = 437
SYS_stat = 439
SYS_fstat = 440
SYS_lstat = 441
SYS_mknod = 450  # __mknod50
SYS_pipe2 = 453
SYS_dup3 = 454
SYS_clock_nanosleep = 477
#: rumpmp's own: a directory's names in one call (os.listdir); NetBSD has no such call.
SYS_listdir = 500
SYS_kill = 37
SYS_setuid = 23
SYS_getuid = 24
SYS_geteuid = 25
SYS_getppid = 39
SYS_getegid = 43
SYS_getgid = 47
SYS_getgroups = 79
SYS_setgroups = 80
SYS_setgid = 181
SYS_getrlimit = 194
SYS_setrlimit = 195
SYS___sysctl = 202
SYS_reboot = 208
SYS_modctl = 299
SYS_MAXSYSCALL = 512

#: A kernel's table of the system calls its components established at boot
#: (rump_syscall_boot_establish): a word per number, 1 for a call it serves.  The
#: core's calls are served by every kernel and are not in it.
SYSENT_REGION = ("sysent", SYS_MAXSYSCALL * 8)

#: Calls that fill buffers their caller passes, and which argument holds them: a
#: caller in another address space (the host, a remote client) gets the contents
#: back with the result and copies them into its own buffers.
FILLS = {SYS_readv: 1}
