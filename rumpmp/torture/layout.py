"""The torture run's shared record: words of one kmem buffer, read by the host.

Header words, then one record per torture lwp.  A checker that sees a violation
counts it in its lwp's record and keeps the first one: what it saw and what it
expected.
"""

#: The torture types (``--type``), in the order the help lists them.
TYPES = ("mutex", "spin", "rw", "cv", "sleepq", "xcall", "callout", "kmem", "busted")

H_STOP = 0  # the host asks every torture lwp to finish
H_PAUSE = 1  # stutter: torture lwps idle while this is set
H_NLWPS = 2
H_WORDS = 8

# per-lwp record words
R_ACQ = 0  # acquisitions (or items, hand-offs, calls: the type's unit of work)
R_FAIL = 1  # violations seen
R_CPU = 2
R_ROLE = 3  # WRITER or READER
R_LWP = 4  # the lwp's id
R_WHAT = 5  # the first violation: its kind, what was seen and what was expected
R_SEEN = 6
R_WANT = 7
R_DONE = 8  # 1 once the lwp has finished (whatever it found)
R_WORDS = 16

WRITER, READER = 0, 1

# violation kinds
TWO_HOLDERS = 1
HOLDER_CHANGED = 2
WRITER_WITH_READERS = 3
READER_WITH_WRITER = 4
OUT_OF_ORDER = 5
LOST_ITEMS = 6
LOST_WAKEUP = 7
XCALL_COUNT = 8
CALLOUT_EARLY = 9
CALLOUT_WRONG_CPU = 10
KMEM_CORRUPT = 11
KMEM_LEAK = 12
RAISED = 13

WHAT = {
    TWO_HOLDERS: "lock taken while another lwp held it",
    HOLDER_CHANGED: "holder word changed inside the critical section",
    WRITER_WITH_READERS: "writer got the lock with readers inside",
    READER_WITH_WRITER: "reader got the lock with a writer inside",
    OUT_OF_ORDER: "item consumed out of order (lost or duplicated)",
    LOST_ITEMS: "items produced but never consumed",
    LOST_WAKEUP: "wake-up lost (or later than 200 ms)",
    XCALL_COUNT: "cross-call ran a wrong number of times on a target",
    CALLOUT_EARLY: "callout ran before its time",
    CALLOUT_WRONG_CPU: "callout ran on another CPU",
    KMEM_CORRUPT: "kmem buffer changed under its owner (overlap or corruption)",
    KMEM_LEAK: "kmem statistics differ from the start",
    RAISED: "torture lwp raised an exception",
}


def record(i: int) -> int:
    """Word index of torture lwp ``i``'s record."""
    return H_WORDS + i * R_WORDS


def words(nlwps: int) -> int:
    return H_WORDS + nlwps * R_WORDS
