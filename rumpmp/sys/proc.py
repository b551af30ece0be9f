"""proc records (sys/proc.h): the process table and its header."""

from rumpmp.sys.lwp import IO_WORDS, LWP_WORDS, NLWP

NPROC = 256
NSIG = 64
PID_MAX = 30000

# proc record words
P_PID = 0
P_STATE = 1  # 0: free slot
P_NLWP = 2
P_PPID = 3
P_CRED = 4  # 2 words: heap offset and generation of the process's credential
P_FDTAB = 6  # number of its file descriptor table: the parent's when shared
P_NEXTLID = 8
P_SIGPEND = 9  # pending signals, a bit each (RUMP_SIGMODEL_RECORD)
P_CWD = 10  # 2 words: the working directory's node and generation (0: the root)
P_SPRAISE = 15  # signals for the sysproxy server to send to its client, a bit each
P_RLIMIT = 16  # RLIM_NLIMITS pairs of words: the soft and the hard limit
P_COMM = 38  # COMM_LEN bytes: its name (a remote client's: its address and program)
P_RTIME = 46  # nanoseconds its system calls have run
P_SPCLIENT = 47  # a remote client's process: 1 + the CPU serving it (-1 until one does)
# what kevent's EVFILT_PROC and EVFILT_SIGNAL see of a process (under its objlock)
P_KNSEL = 48  # SI_WORDS: selinfo of the kevents waiting for its events
P_NFORK = 54  # times it has forked (rump_lwproc_rfork, a client's fork)
P_NEXEC = 55  # times it has exec'd (a client's exec)
P_XPID = 56  # the pid of the process that last left this record: its counts stay
P_TRACK = 57  # P_NTRACK words: kqueue number + 1 of each kqueue that tracks it
P_NTRACK = 4  # (NOTE_TRACK; under the process table's lock)
P_NSIG = 64  # NSIG words: times each signal was posted to it
PROC_WORDS = 128
COMM_LEN = 64

# resource limits (sys/resource.h)
RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_RSS = 0, 1, 2, 3, 4, 5
RLIMIT_MEMLOCK, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_SBSIZE, RLIMIT_AS = 6, 7, 8, 9, 10
RLIM_NLIMITS = 11
RLIM_INFINITY = 2**63 - 1
#: Open files a process may have by default (soft) and at most (hard).
NOFILE_SOFT, NOFILE_HARD = 1024, 32768

SIDL, SACTIVE, SZOMB = 1, 2, 3  # proc states

# rump_lwproc_rfork flags (rump.h): copy the parent's fd table, or start a clean one.
RUMP_RFFDG = 0x04
RUMP_RFCFDG = 0x1000

# header words of the proc region
T_LOCK = 0
T_NEXTPID = 1
T_NPROCS = 2
T_NLWPS = 3
TABLE_HDR = 64

REGIONS = [
    ("proc", TABLE_HDR + NPROC * PROC_WORDS * 8),
    ("lwp", NLWP * LWP_WORDS * 8),
    ("lwpio", NLWP * IO_WORDS * 8),
]
