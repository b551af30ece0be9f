"""Layout of the lockstat counters (rumpmp.rumpkern.locking.lockstat): a table per CPU
in the "lockstat" region, an entry per lock and kind of hold."""

# The kinds of hold, as lockstat(8) tells them apart.
LS_ADAPTIVE = 0
LS_SPIN = 1
LS_RW_READER = 2
LS_RW_WRITER = 3
KIND_NAMES = ("adaptive", "spin", "rw reader", "rw writer")

# Region header words.
LS_CAP = 0  # entries per CPU table, 0 when lockstat and the trace are both off
LS_HDR_WORDS = 8

# Table header words (each CPU's table starts on its own cache line).
T_USED = 0  # entries in use
T_DROPPED = 1  # lookups that found the table full (their locks are not counted)
T_HDR_WORDS = 8

# Entry words.
E_OFF = 0  # the lock's record: byte offset in the arena
E_GEN = 1  # and generation (a destroyed lock's record may be reused by another)
E_KIND = 2
E_ACQ = 3  # acquisitions
E_CONT = 4  # of which had to wait
E_WAIT = 5  # ns waited in all
E_WAITMAX = 6
E_HOLD = 7  # ns held in all
E_HOLDMAX = 8
E_SPIN = 9  # tries while spinning for it
E_SINCE = 10  # when the current exclusive hold began (ns), 0 if none
E_TEXT = 11  # the name and the initialisation site, a line each
E_WORDS = 32
TEXT_BYTES = (E_WORDS - E_TEXT) * 8

#: Entries per CPU: the distinct locks (times kinds) one CPU counts.
DEFAULT_CAP = 1024


def table_words(cap: int) -> int:
    return T_HDR_WORDS + cap * E_WORDS


def region(ncpu: int, cap: int) -> tuple[str, int]:
    return ("lockstat", (LS_HDR_WORDS + ncpu * table_words(cap)) * 8)
