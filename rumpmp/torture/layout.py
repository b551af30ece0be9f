"""The torture run's shared record: words of one kmem buffer, read by the host.

Header words, then one record per torture lwp.  A checker that sees a violation
counts it in its lwp's record and keeps the first one: which (an index into the
type's ``kinds()``), what it saw and what it expected.
"""

#: The built-in torture types (``--type``), in the order the help lists them (the
#: classes are lwps.BUILTIN; the names are here so that parsing options loads none).
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


def record(i: int) -> int:
    """Word index of torture lwp ``i``'s record."""
    return H_WORDS + i * R_WORDS


def words(nlwps: int) -> int:
    return H_WORDS + nlwps * R_WORDS
