"""A CPU's scheduler state, schedstate_percpu (sys/sched.h), inside its cpu_info."""

from rumpmp.sys.param import PRI_COUNT

BITMAP_WORDS = PRI_COUNT // 32  # 32 levels a word, so no word is ever negative

# schedstate words, relative to SPC_BASE within the cpu_info record
SPC_LOCK = 0  # pool slot of the spin lock
SPC_DOORBELL = 1  # pool slot the CPU's idle loop waits on
SPC_CURLWP = 2  # lwp holding the CPU, 0 if idle
SPC_NRUN = 3  # lwps on the run queue
SPC_LOAD = 4  # lwps placed on this CPU and not yet ended
SPC_NEWQ_HEAD = 5  # waitq list of lwps placed here, not started yet
SPC_NEWQ_TAIL = 6  # its tail
SPC_NSYSTEM = 12  # kernel threads among the load: a halt does not wait for them
SPC_NNEW = 13  # lwps waiting to start
SPC_BITMAP = 16
SPC_RUNQ = SPC_BITMAP + BITMAP_WORDS  # a waitq list (head, tail) per priority level
SPC_WORDS = SPC_RUNQ + 2 * PRI_COUNT

#: Where the schedstate starts inside a cpu_info record (after the CI_* words).
SPC_BASE = 64
