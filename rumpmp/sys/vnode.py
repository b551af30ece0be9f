"""Vnodes, mounts and the name cache (sys/vnode.h, sys/mount.h, sys/stat.h,
sys/namei.h): NetBSD's numbers and rumpmp's shared layouts."""

from typing import NamedTuple

# vnode types (enum vtype)
VNON, VREG, VDIR, VBLK, VCHR, VLNK, VSOCK, VFIFO = range(8)

S_IFMT = 0o170000
S_IFIFO, S_IFCHR, S_IFDIR, S_IFBLK, S_IFREG, S_IFLNK, S_IFSOCK = (
    0o010000,
    0o020000,
    0o040000,
    0o060000,
    0o100000,
    0o120000,
    0o140000,
)
#: The S_IF* bits of each vnode type.
VTTOIF = {VREG: S_IFREG, VDIR: S_IFDIR, VLNK: S_IFLNK, VFIFO: S_IFIFO}
ALLPERMS = 0o7777

# access(2)
F_OK, X_OK, W_OK, R_OK = 0, 1, 2, 4

MAXPATHLEN = 1024
MAXNAMLEN = 255
MAXSYMLINKS = 32

# node records ("vnode" region, after a header): the memory file system's inodes
V_TYPE = 0  # VREG, VDIR, VLNK; VNON when free
V_GEN = 1  # bumped when the record is reused
V_MODE = 2  # permission bits
V_UID = 3
V_GID = 4
V_NLINK = 5
V_SIZE = 6
V_ATIME = 7  # nanoseconds since the epoch
V_MTIME = 8
V_CTIME = 9
V_DATA = 10  # kmem offset of its data (file bytes, directory entries, link target)
V_DGEN = 11  # its kmem generation
V_CAP = 12  # bytes the data block holds
V_PARENT = 13  # a directory's parent (itself for a root); next free while free
V_MOUNT = 14  # the mount it belongs to
V_MOUNTED = 15  # mount number + 1 of a file system mounted on it, 0 if none
V_USE = 16  # open files and working directories that hold it
V_VERS = 17  # a directory's version: bumped by every change to its entries
V_SEL = 18  # selinfo (SI_WORDS): kevent on a file waits here for writes
V_FLAGS = 24  # VN_ETFS
V_HOST = 25  # 3 words: blob of an etfs node's host path
V_FIFO = 28  # a FIFO's pipe number + 1 while it is open, else 0
V_NOTES = 32  # 7 words: how often each EVFILT_VNODE event (NOTE_* bit i) happened
VNODE_WORDS = 40
VN_ETFS = 0x1  # its data is a host file's (rump_pub_etfs_register)

# rump_pub_etfs_register types (rump.h)
RUMP_ETFS_REG, RUMP_ETFS_BLK, RUMP_ETFS_CHR, RUMP_ETFS_DIR, RUMP_ETFS_DIR_SUBDIRS = range(5)

# the "vnode" region header
VH_LOCK = 0  # pool slot of the node table's spin lock
VH_FREE = 1  # head of the free list (node number)
VH_HIGH = 2  # node numbers ever handed out
VH_LOCKS = 4  # 3 words: blob of the vnode rwlocks (stripes by node number)
VH_NODES = 7  # nodes in use
VNODE_HDR = 16
NVNODE = 16384
NVLOCKS = 32

# mounts ("mount" region): a record per mounted file system
NMOUNT = 16
M_STATE = 0  # 0 free, 1 mounted
M_ROOT = 1  # its root node
M_COVERED = 2  # the node it is mounted on (0 for /)
M_LIMIT = 3  # bytes its file data may take (0: as much as the heap has)
M_USED = 4  # bytes its file data takes
M_NODES = 5
M_FLAGS = 6
M_LOCK = 7  # pool slot of its spin lock (the counters)
MOUNT_WORDS = 8
MNT_RDONLY, MNT_FORCE = 0x1, 0x80000

# the name cache ("namecache" region): (directory, name) -> node, names up to NCHNAMLEN
NCHNAMLEN = 31
NCACHE = 4096
NC_DIR = 0  # directory node, 0 when free
NC_DGEN = 1
NC_NODE = 2
NC_NGEN = 3
NC_NAME = 4  # 32 bytes: length byte, then the name
NC_WORDS = 8
NC_LOCKS = 4  # spin locks, by bucket; their slots are in the region's first words
NC_HDR = 16

# The file-system types mount(2) knows (vfs_attach): word 0 holds the slot of the
# table's spin lock, then an entry per type: its name, NUL-padded.
NVFSOPS = 16
VFSOPS_NAME = 32
VFSOPS_HDR = 8

REGIONS = [
    ("vnode", (VNODE_HDR + NVNODE * VNODE_WORDS) * 8),
    ("mount", NMOUNT * MOUNT_WORDS * 8),
    ("namecache", (NC_HDR + NCACHE * NC_WORDS) * 8),
    ("vfsops", VFSOPS_HDR + NVFSOPS * VFSOPS_NAME),
]


class Stat(NamedTuple):
    """struct stat, with os.stat_result's field names (times in seconds and ns)."""

    st_mode: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_size: int
    st_atime: float
    st_mtime: float
    st_ctime: float
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_blksize: int
    st_blocks: int


class Statvfs(NamedTuple):
    """struct statvfs, with os.statvfs_result's field names."""

    f_bsize: int
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int
    f_favail: int
    f_fsid: int
    f_flag: int
    f_namemax: int
