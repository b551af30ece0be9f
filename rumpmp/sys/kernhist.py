"""Layout of the kernel trace (rumpmp.rumpkern.base.kernhist): a ring of events per
CPU in the "kernhist" region."""

# Region header words.
K_CAP = 0  # events per CPU ring, 0 when the trace is off
K_HDR_WORDS = 8

# Event words.
V_SEQ = 0  # 1 + the event's number on its CPU; 0 for a slot never written
V_TS = 1  # monotonic ns
V_KIND = 2
V_LWP = 3  # the lwp it is about (the one running, or the one woken)
V_A = 4
V_B = 5
V_WORDS = 6

# Event kinds and what their two arguments hold.
EV_RUN = 1  # the lwp starts holding the CPU
EV_OFF = 2  # it lets the CPU go: A the lock record it waits for, B the wait channel (0, 0: a yield or its end)
EV_WAKE = 3  # it is woken by this CPU's running lwp: A that lwp, B the woken lwp's CPU
EV_LOCK = 4  # it took a contended lock: A the lock record, B ns waited
EV_XC_SEND = 5  # it issued a cross-call: A the target CPU (-1 all), B its ticket
EV_XC_SERVE = 6  # it ran a cross-call: A its ticket, B ns it took
EV_SOFTINT = 7  # it ran a softint handler: A the level, B ns it took
EV_CALLOUT = 8  # it ran a callout: A the callout record, B ns it took
EV_TICK = 9  # the CPU's hardclock ticked: A the tick
KIND_NAMES = ("", "run", "off", "wake", "lock", "xc send", "xc serve", "softint", "callout", "tick")

#: Events per CPU ring unless RUMP_TRACE_EVENTS says otherwise.
DEFAULT_EVENTS = 1 << 16


def ring_words(cap: int) -> int:
    return cap * V_WORDS


def region(ncpu: int, cap: int) -> tuple[str, int]:
    return ("kernhist", (K_HDR_WORDS + ncpu * ring_words(cap)) * 8)
