"""Priorities and limits (sys/param.h)."""

# NetBSD's priorities (sys/param.h); higher runs first.
PRI_COUNT = 224
PRI_NONE = -1
PRI_USER = 0
PRI_KERNEL = 64
PRI_KTHREAD = 96
PRI_XCALL = 127
PRI_PGDAEMON = 126
PRI_BIO = 123
PRI_SOFTCLOCK = 220
PRI_SOFTBIO = 221
PRI_SOFTNET = 222
PRI_SOFTSERIAL = 223

MAXCPUS = 64
