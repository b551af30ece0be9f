"""The Executor's task queue, in the kernel heap: a header and fixed task records.

The host writes each task into a free record (the function's pickle, made once per
executor, and the arguments) and queues the record; the worker on each CPU takes
tasks off the queue, a batch at a time when many wait, runs them and leaves each
result in its record.  A task's state is in its record, so when a CPU dies the host
knows which task was running there (only that one fails), which were taken but not
started and which are queued (they run on the next kernel), and which are done.

Every finished task goes on the done list, from which the host takes outcomes and
gives records back (``KernelExecutor._reclaim``: its collector thread, or a submit
that finds no free record).  A host thread waiting for a task (``Future.result``)
puts its park slot in the record, and the worker posts it; otherwise the worker
posts the collector, if it sleeps.  The spin mutex at Q_LOCK guards the lists.
"""

from rumpmp.sys.param import MAXCPUS

# header words
Q_LOCK = 0  # pool slot of the spin mutex
Q_TASKS = 1  # 2 words: head and tail of the queued tasks (a waitq)
Q_QUEUED = 3  # how many are queued
Q_DONE = 4  # 2 words: finished tasks nobody waited for, for the collector
Q_COLLECTOR = 6  # the collector thread's park slot
Q_ASLEEP = 7  # 1 while the collector waits for the done list: whoever adds to it posts
Q_STOP = 8  # the workers leave
Q_TASK_NS = 9  # a moving average of a task's run time (ns), for the size of batches
Q_WORKERS = 16  # per CPU, its worker's words:
WK_PARK = 0  # the worker's park slot
WK_IDLE = 1  # 1 while it waits for tasks: whoever queues one clears it and posts WK_PARK
WK_WORDS = 2
HEADER_WORDS = Q_WORKERS + MAXCPUS * WK_WORDS

# task states
FREE, QUEUED, TAKEN, RUNNING, DONE = range(5)

# task record words
T_STATE = 0
T_CPU = 1  # the CPU whose worker took it
T_NEXT = 2  # its link on the task queue, then on the done list
T_WAITER = 3  # park slot of a host thread waiting for it, 0 if none
T_START = 4  # monotonic ns when it started
T_NS = 5  # how long it ran
T_SEQ = 6  # the number of the task it holds: a cancel checks it is still its task's
T_ENTRY = 8  # payload buffer (blob.payload_put): (function's pickle, args, kwargs)
ENTRY_BYTES = 1024
T_RESULT = T_ENTRY + ENTRY_BYTES // 8  # payload buffer: (ok, value)
RESULT_BYTES = 1024
TASK_WORDS = T_RESULT + RESULT_BYTES // 8

#: Task records per queue; tasks past these wait in the host until records come back.
NTASKS = 512
QUEUE_BYTES = (HEADER_WORDS + NTASKS * TASK_WORDS) * 8


def task_word(q: int, i: int) -> int:
    """Word index of task record ``i`` of the queue whose header is at word ``q``."""
    return q + HEADER_WORDS + i * TASK_WORDS
