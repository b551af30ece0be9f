"""System call numbers (NetBSD's sys/syscall.h, for the calls rumpmp serves)."""

SYS_getpid = 20
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
