"""sysctl(7): the tree's names and numbers (NetBSD's sys/sysctl.h), the structs some
nodes hold, and the tree's shared layout."""

import struct
from typing import NamedTuple

from rumpmp.sys.time import timespec

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


class clockinfo(NamedTuple):
    """struct clockinfo (kern.clockrate)."""

    hz: int
    tick: int  # microseconds a tick
    tickadj: int
    stathz: int
    profhz: int


class kinfo_proc2(NamedTuple):
    """A process as kern.proc2 shows it (NetBSD's struct kinfo_proc2, the fields
    rump has)."""

    pid: int
    ppid: int
    uid: int
    gid: int
    comm: str
    rtime: float  # seconds its system calls ran


#: How the struct nodes' bytes are laid out (kern.boottime is a timespec).
CLOCKINFO = struct.Struct("<5i")
TIMESPEC = struct.Struct("<qq")

#: The struct nodes whose value is stored as bytes, and how.
STRUCT_LAYOUTS: dict[str, struct.Struct] = {"kern.boottime": TIMESPEC, "kern.clockrate": CLOCKINFO}

#: The struct nodes read as named tuples (a list of them for kern.proc2).
STRUCT_TYPES: dict[str, type[tuple]] = {
    "kern.boottime": timespec,
    "kern.clockrate": clockinfo,
    "kern.proc2": kinfo_proc2,
}


def typed(name: str, value: object) -> object:
    """``value`` of node ``name`` as its named tuple(s), if it is a struct node whose
    fields came as a plain tuple (unpacked from its bytes, or through the sysproxy
    wire, which carries tuples)."""
    kind = STRUCT_TYPES.get(name)
    if kind is None:
        return value
    if isinstance(value, list):
        return [kind._make(v) for v in value]  # type: ignore[attr-defined]
    return kind._make(value) if isinstance(value, tuple) else value  # type: ignore[attr-defined]


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
