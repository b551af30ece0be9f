"""lwp records (sys/lwp.h): the lwp table, one record per lwp."""

NLWP = 1024

# lwp record words
L_STATE = 0  # LSIDL..., 0 free
L_LID = 1  # lid within its process
L_PID = 2
L_CPU = 3  # CPU it runs (or will run) on
L_BOUND = 4  # bound CPU, -1 if none
L_PRI = 5
L_FLAGS = 6
L_PARK = 7  # pool slot the lwp's thread parks on
L_RUNQ = 8  # waitq link on a CPU's run queue
L_NEWQ = 9  # waitq link on a CPU's queue of lwps not yet started
L_BIGLOCKS = 10  # holds of the big kernel lock
L_BIGSAVED = 11  # holds let go while the lwp sleeps, taken back when it runs
L_CATCH = 12  # 1 while it sleeps interruptibly (PCATCH): a signal wakes it
L_SPECIFIC = 13  # 2 words: offset and generation of its lwp-specific data, 0 if none
L_PROCW = 15  # word index of its process's record (a hint, checked by pid)
L_REPLY = 16  # pool slot to post when the lwp ends (or answers a host call), 0 if none
L_WCHAN = 17
L_SLEEPQ = 18
L_SELFLAG = 20  # SEL_SCANNING, SEL_BLOCKING or SEL_RESET while it selects (sys_select.c)
# A host thread's lwp (LW_HOSTCALL, sched/hostcall.py): the calls it was asked and has
# answered (each the number of the last), and whether to end once it has answered.
L_CALLS = 21
L_ANSWERED = 22
L_RETIRE = 23
L_NAME = 24  # 32 bytes
L_WAITLOCK = 28  # the record (byte offset) of the mutex it waits to take, 0 if none
LWP_WORDS = 32
NAME_LEN = 32

# lwp states (NetBSD's names)
LSIDL, LSRUN, LSONPROC, LSSLEEP, LSZOMB = 1, 2, 3, 4, 7

# lwp flags
LW_SYSTEM = 0x0200  # a kernel thread
LW_MUSTJOIN = 0x0400
LW_WAITER = 0x0800  # someone (the host, or kthread_join) collects its result
LW_CONTEXT = 0x1000  # made by rump_lwproc_*: carried by whichever thread switches to it
LW_IMPLICIT = 0x2000  # a host thread's own lwp: rump_lwproc_curlwp reports None
LW_BIGLOCK = 0x4000  # not MPSAFE: runs holding the big kernel lock
LW_HOSTCALL = 0x8000  # parked between calls from the host: a halt wakes it to leave

# Each lwp has an io record in the "lwpio" region: the pickled (func, args) it runs,
# then its pickled (ok, value) result, each a blob.payload_put buffer, so a small call
# and its result never touch the heap.  A host call's function made in ``__main__``
# pickles by value to about 450 bytes: a kilobyte holds it and its arguments.
IO_ENTRY = 0
IO_RESULT = 128  # words
IO_PAYLOAD_BYTES = IO_RESULT * 8
IO_WORDS = 2 * IO_RESULT
