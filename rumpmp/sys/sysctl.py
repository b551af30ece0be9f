"""sysctl(7): the tree's names and numbers (NetBSD's sys/sysctl.h) and its shared layout."""

CTL_MAXNAME = 12
SYSCTL_NAMELEN = 32
CTL_EOL, CTL_QUERY, CTL_CREATE, CTL_DESTROY = -1, -2, -3, -5
#: Numbers CTL_CREATE hands out start here, as in NetBSD.
CREATE_BASE = 1024

CTLTYPE_NODE, CTLTYPE_INT, CTLTYPE_STRING, CTLTYPE_QUAD, CTLTYPE_STRUCT, CTLTYPE_BOOL = (
    1,
    2,
    3,
    4,
    5,
    6,
)

CTLFLAG_READONLY = 0x00000000
CTLFLAG_READWRITE = 0x00000070
CTLFLAG_ANYWRITE = 0x00000080
CTLFLAG_PERMANENT = 0x00000200

CTL_KERN, CTL_HW = 1, 6
KERN_OSTYPE, KERN_OSRELEASE, KERN_VERSION, KERN_MAXPROC, KERN_MAXFILES = 1, 2, 4, 6, 7
KERN_HOSTNAME, KERN_CLOCKRATE, KERN_PROC2, KERN_BOOTTIME, KERN_EVCNT = 10, 12, 47, 83, 84
HW_NCPU, HW_PHYSMEM, HW_PHYSMEM64, HW_NCPUONLINE = 3, 5, 13, 16
MAXHOSTNAMELEN = 256

# The tree in the "sysctl" region: a header, then fixed node records.
S_LOCK = 0  # pool slot of the tree's spin lock
S_NEXT = 1  # the next number CTL_CREATE gives a top-level node
S_TOP = 2  # records at and past this index have never been used (scans stop here)
S_WORDS = 8
NNODES = 1024
N_USED = 0
N_PARENT = 1  # index + 1 of the parent; 0: a top-level node
N_NUM = 2
N_TYPE = 3
N_FLAGS = 4
N_VALUE = 5  # int, quad and bool values
N_DATA = 6  # string and struct values: byte offset in the arena ...
N_SIZE = 7  # ... their room in bytes
N_LEN = 8  # ... and how many of them hold the value
N_GEN = 9  # the kmem buffer's generation (-1: storage the node does not own)
N_NEXT = 10  # the next number CTL_CREATE gives a child
N_NAME = 11  # SYSCTL_NAMELEN bytes: 4 words
N_FUNC = 15  # a node whose value is computed: 1 + the index of its handler (sysctl.py)
N_WORDS = 16

REGION = ("sysctl", (S_WORDS + NNODES * N_WORDS) * 8)
