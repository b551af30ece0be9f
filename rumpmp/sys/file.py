"""Files, descriptors, pipes, select and kqueue (sys/file.h, sys/filedesc.h,
sys/fcntl.h, sys/pipe.h, sys/poll.h, sys/event.h): NetBSD's numbers and rumpmp's
shared layouts."""

# open(2) and fcntl(2) flags, NetBSD's values
O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE = 0x0, 0x1, 0x2, 0x3
O_NONBLOCK = 0x4
O_APPEND = 0x8
O_CREAT = 0x200
O_TRUNC = 0x400
O_EXCL = 0x800
O_NOFOLLOW = 0x100
O_CLOEXEC = 0x400000
O_DIRECTORY = 0x200000
#: Status flags F_SETFL may change.
FCNTLFLAGS = O_APPEND | O_NONBLOCK

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_DUPFD_CLOEXEC = 12
FD_CLOEXEC = 1

FIONREAD = 0x4004667F
FIONBIO = 0x8004667E

SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2

# file record f_flag bits: FREAD/FWRITE are the open mode plus one (as FFLAGS does)
FREAD, FWRITE = 0x1, 0x2

DTYPE_VNODE, DTYPE_PIPE, DTYPE_KQUEUE = 1, 4, 8

#: kern.maxfiles: the file table's size.
NFILE = 4096

# file records ("file" region, after a header): one per open file
F_TYPE = 0  # DTYPE_*, 0 when free
F_FLAG = 1  # FREAD | FWRITE | O_APPEND | O_NONBLOCK
F_COUNT = 2  # descriptors (in every table) that name it
F_OFFSET = 3
F_DATA = 4  # the vnode, pipe or kqueue number it opens
F_DATA2 = 5  # a pipe: which end (0 read, 1 write)
F_NEXT = 6  # next free record while free
F_GEN = 7  # bumped each time the record is handed out
FILE_WORDS = 8

# the "file" region header
FH_LOCK = 0  # pool slot of the file table's spin lock
FH_FREE = 1  # head of the free list (file number + 1)
FH_HIGH = 2  # records ever handed out
FH_NOPEN = 3  # open files
FH_MAXFILES = 4  # word index of kern.maxfiles's value (used up to NFILE)
FH_LOCKS = 8  # 3 words: blob of the object locks (kmutex_t stripes)
FH_RENAME = 11  # 3 words: blob of the rename lock
FILE_HDR = 16
NOBJLOCKS = 40  # pipes, kqueues, files, fd tables, processes: 8 mutexes each, by number

# descriptor tables ("fdtab" region): one per set of processes sharing one
NFDTAB = 288
FT_REFS = 0  # processes using it (0: free)
FT_BUF = 1  # kmem offset of its slot array
FT_GEN = 2
FT_NSLOTS = 3
FT_LOW = 4  # no free descriptor below this one (fd_alloc starts here)
FDTAB_WORDS = 8
NDFILE = 32  # slots of a new table; it doubles up to RLIMIT_NOFILE
#: A descriptor slot holds (file number + 1) | the file's generation << FD_GENSHIFT |
#: FD_CLOEXEC << FD_FLAGSHIFT; 0 is free.
FD_GENSHIFT = 16
FD_FLAGSHIFT = 40

# select/poll: each object's selinfo is SI_WORDS words in its record
SI_SEQ = 0  # bumped by every selnotify: what EV_CLEAR compares
SI_COLL = 1  # more waiters than slots: notify every selecting lwp
SI_LIDS = 2  # SI_NLIDS lwps recorded as waiting
SI_NLIDS = 4
SI_WORDS = SI_LIDS + SI_NLIDS
SEL_SCANNING, SEL_BLOCKING, SEL_RESET = 1, 2, 3  # an lwp's L_SELFLAG

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLWRNORM = 0x40, POLLOUT
POLLRDBAND, POLLWRBAND = 0x80, 0x100

# pipes ("pipe" region): one record per pipe, both ends
PIPE_BUF = 512  # writes up to this size are atomic
PIPE_SIZE = 65536  # the buffer (NetBSD's BIG_PIPE_SIZE)
NPIPE = 1024
PI_STATE = 0  # 0 free, 1 in use
PI_BUF = 1  # kmem offset of the buffer
PI_GEN = 2
PI_HEAD = 3  # bytes ever read
PI_TAIL = 4  # bytes ever written
PI_READERS = 5  # open read ends (files)
PI_WRITERS = 6  # open write ends
PI_RWAIT = 14  # readers asleep for data
PI_WWAIT = 15  # writers asleep for room
PI_RSEL = 8  # selinfo of the read end (SI_WORDS)
PI_WSEL = 16  # selinfo of the write end
PI_ROPENS = 22  # a FIFO's opens for reading ever: an open for writing waits for it
PI_WOPENS = 23  # ... for writing ever: an open for reading waits for it
PIPE_WORDS = 24

# kqueue(2)/kevent(2), numbered as NetBSD's sys/event.h
EVFILT_READ, EVFILT_WRITE, EVFILT_VNODE, EVFILT_PROC = 0, 1, 3, 4
EVFILT_SIGNAL, EVFILT_TIMER = 5, 6
EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE = 0x1, 0x2, 0x4, 0x8
EV_ONESHOT, EV_CLEAR = 0x10, 0x20
EV_EOF, EV_ERROR = 0x8000, 0x4000
# EVFILT_VNODE's fflags: what happened to the node (bit i is counted in V_NOTES + i)
NOTE_DELETE, NOTE_WRITE, NOTE_EXTEND, NOTE_ATTRIB = 0x1, 0x2, 0x4, 0x8
NOTE_LINK, NOTE_RENAME, NOTE_REVOKE = 0x10, 0x20, 0x40
VNODE_NOTES = 7
# EVFILT_PROC's fflags
NOTE_EXIT, NOTE_FORK, NOTE_EXEC = 0x80000000, 0x40000000, 0x20000000
NOTE_TRACK, NOTE_TRACKERR, NOTE_CHILD = 0x1, 0x2, 0x4
# EVFILT_TIMER's fflags: the unit of data, and a deadline on the wall clock
NOTE_MSECONDS, NOTE_SECONDS, NOTE_USECONDS, NOTE_NSECONDS = 0, 1, 2, 3
NOTE_TIMER_UNITMASK, NOTE_ABSTIME = 0x3, 0x10
NKQUEUE = 256
KQ_STATE = 0
KQ_NOTES = 1  # 3 words: blob of its knotes
KQ_SEL = 8  # selinfo: woken when a knote is added (a kevent waiting in another lwp)
KQ_WORDS = 16

REGIONS = [
    ("file", (FILE_HDR + NFILE * FILE_WORDS) * 8),
    ("fdtab", NFDTAB * FDTAB_WORDS * 8),
    ("pipe", NPIPE * PIPE_WORDS * 8),
    ("kqueue", NKQUEUE * KQ_WORDS * 8),
]
