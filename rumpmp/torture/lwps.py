"""The torture lwps: kernel code that hammers one kind of lock or service and checks it.

The built-in torture types, written with the API every type uses (``base.py``): a
``TortureType`` names its writer (and reader) ``TortureLwp`` classes; one instance
runs in each torture lwp, bound to CPU ``i % ncpu``.  ``step()`` does one unit of
work (an acquisition, an item, a hand-off, a call) and checks what it may assume;
``fail()`` records a violation in the lwp's record (``layout``), which the host reads
while the run goes on.  The host drives a run with ``setup``, ``start``, ``join`` and
``describe``, each run through ``Kernel.run``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from hypercalls import clock
from rumpmp.kern import (
    CALLOUT_MPSAFE,
    IPL_VM,
    KM_SLEEP,
    KTHREAD_MPSAFE,
    KTHREAD_MUSTJOIN,
    MUTEX_SPIN,
    PRI_NONE,
    RW_READER,
    RW_WRITER,
    KBuf,
    callout_bind,
    callout_halt,
    callout_init,
    callout_reset,
    cpu_index,
    cv_broadcast,
    cv_init,
    cv_signal,
    cv_timedwait,
    getticks,
    hz,
    kmem_alloc,
    kmem_free,
    kmem_zalloc,
    kpause,
    kthread_create,
    kthread_join,
    mtsleep,
    mutex_enter,
    mutex_exit,
    mutex_init,
    preempt,
    printf,
    rw_enter,
    rw_exit,
    rw_init,
    wakeup,
    xc_broadcast,
    xc_unicast,
    xc_wait,
)
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import detsched, perturb
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_owner
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys.cpu import cpu_word
from rumpmp.sys.lwp import L_CPU, L_STATE, L_WAITLOCK, L_WCHAN, LSIDL, LSONPROC, LSRUN, LSSLEEP
from rumpmp.sys.sched import SPC_BASE, SPC_CURLWP
from rumpmp.torture import layout as L
from rumpmp.torture.base import GENERIC, Torture, TortureLwp, TortureType, words

RING = 64  # slots of the cv type's ring
#: A torture lwp offers its CPU to the others placed there every so many steps.
PREEMPT_EVERY = 64
SHARED_WORDS = 4096

# What the built-in types' checkers report (each type declares its own).
TWO_HOLDERS = "lock taken while another lwp held it"
HOLDER_CHANGED = "holder word changed inside the critical section"
WRITER_WITH_READERS = "writer got the lock with readers inside"
READER_WITH_WRITER = "reader got the lock with a writer inside"
OUT_OF_ORDER = "item consumed out of order (lost or duplicated)"
LOST_ITEMS = "items produced but never consumed"
LOST_WAKEUP = "wake-up lost (or later than 200 ms)"
XCALL_COUNT = "cross-call ran a wrong number of times on a target"
CALLOUT_EARLY = "callout ran before its time"
CALLOUT_WRONG_CPU = "callout ran on another CPU"
KMEM_CORRUPT = "kmem buffer changed under its owner (overlap or corruption)"
KMEM_LEAK = "kmem statistics differ from the start"


# -- exclusive locks: mutex, spin, busted ------------------------------------------


def _busted_enter(_: object) -> None:
    """A lock that excludes nobody (locktorture's lock_busted): the checkers must see it."""


class Exclusive(TortureLwp):
    """Takes the lock and its nested locks in order; each has a holder word."""

    busted = False

    def __init__(self, t: Torture, i: int) -> None:
        super().__init__(t, i)
        self.enter: Callable[[Any], None] = _busted_enter if self.busted else mutex_enter
        self.exit: Callable[[Any], None] = _busted_enter if self.busted else mutex_exit

    def step(self) -> bool:
        s, me = self.s, self.i + 1
        for k, m in enumerate(self.t.locks):
            self.enter(m)
            if holder := s[k]:
                self.fail(TWO_HOLDERS, holder, 0)
            s[k] = me
        self.hold()
        for k in reversed(range(len(self.t.locks))):
            if (holder := s[k]) != me:
                self.fail(HOLDER_CHANGED, holder, me)
            s[k] = 0
            self.exit(self.t.locks[k])
        return True


class BustedExclusive(Exclusive):
    busted = True


# -- rw ------------------------------------------------------------------------------

_RW_WRITER = 0  # shared word: the writer inside, 0 if none
_RW_READERS = 8  # one word per reader: 1 while it is inside


class RwWriter(TortureLwp):
    def step(self) -> bool:
        s, me, nr = self.s, self.i + 1, self.t.nreaders
        rw_enter(self.t.locks[0], RW_WRITER)
        if writer := s[_RW_WRITER]:
            self.fail(TWO_HOLDERS, writer, 0)
        if inside := sum(s[_RW_READERS : _RW_READERS + nr]):
            self.fail(WRITER_WITH_READERS, inside, 0)
        s[_RW_WRITER] = me
        self.hold()
        if (writer := s[_RW_WRITER]) != me:
            self.fail(HOLDER_CHANGED, writer, me)
        s[_RW_WRITER] = 0
        rw_exit(self.t.locks[0])
        return True


class RwReader(TortureLwp):
    def step(self) -> bool:
        s, slot = self.s, _RW_READERS + self.i - self.t.nwriters
        rw_enter(self.t.locks[0], RW_READER)
        if writer := s[_RW_WRITER]:
            self.fail(READER_WITH_WRITER, writer, 0)
        s[slot] = 1
        self.hold()
        if writer := s[_RW_WRITER]:
            self.fail(READER_WITH_WRITER, writer, 0)
        s[slot] = 0
        rw_exit(self.t.locks[0])
        return True


# -- cv: producers and consumers through a ring -----------------------------------------

_CV_HEAD, _CV_TAIL, _CV_DONE = 0, 1, 2
_CV_LAST = 8  # per producer: the last sequence number consumed
_CV_RING = 1024


class CvProducer(TortureLwp):
    """Puts (producer, sequence) items in the ring; waits while it is full."""

    def step(self) -> bool:
        t, s, w = self.t, self.s, self.w
        (m,), (notempty, notfull) = t.locks, t.cvs
        mutex_enter(m)
        while s[_CV_TAIL] - s[_CV_HEAD] >= RING and not w[L.H_STOP]:
            cv_timedwait(notfull, m, max(1, hz() // 10))
        if w[L.H_STOP]:
            mutex_exit(m)
            return False
        seq = w[self.r + L.R_ACQ] + 1
        s[_CV_RING + s[_CV_TAIL] % RING] = (self.i + 1) << 32 | seq
        s[_CV_TAIL] += 1
        cv_signal(notempty)
        mutex_exit(m)
        return True

    def done(self) -> None:
        (m,), (notempty, _) = self.t.locks, self.t.cvs
        mutex_enter(m)
        self.s[_CV_DONE] += 1
        cv_broadcast(notempty)
        mutex_exit(m)


class CvConsumer(TortureLwp):
    """Takes items out; each producer's must come in order, each exactly once."""

    drains = True

    def step(self) -> bool:
        t, s = self.t, self.s
        (m,), (notempty, notfull) = t.locks, t.cvs
        mutex_enter(m)
        while s[_CV_TAIL] == s[_CV_HEAD]:
            if s[_CV_DONE] == t.nwriters:
                mutex_exit(m)
                return False
            cv_timedwait(notempty, m, max(1, hz() // 10))
        item = s[_CV_RING + s[_CV_HEAD] % RING]
        s[_CV_HEAD] += 1
        producer, seq = (item >> 32) - 1, item & 0xFFFFFFFF
        want = s[_CV_LAST + producer] + 1
        if seq != want:
            self.fail(OUT_OF_ORDER, seq, want)
        s[_CV_LAST + producer] = seq
        cv_signal(notfull)
        mutex_exit(m)
        return True


def _cv_check(t: Torture) -> None:
    """Every item produced was consumed: a producer's count is its last sequence."""
    w, s = words(t.stats), words(t.shared)
    for p in range(t.nwriters):
        made, taken = w[L.record(p) + L.R_ACQ], s[_CV_LAST + p]
        if made != taken:
            t.fail(p, LOST_ITEMS, taken, made)


# -- sleepq: a token passed round with mtsleep/wakeup ---------------------------------

_SQ_TOKEN, _SQ_HANDOFF_NS = 0, 1
_LATE_NS = 200_000_000


class SleepqPasser(TortureLwp):
    def step(self) -> bool:
        t, s, w = self.t, self.s, self.w
        m, chan = t.locks[0], t.shared.offset
        mutex_enter(m)
        while s[_SQ_TOKEN] != self.i:
            if w[L.H_STOP]:
                mutex_exit(m)
                return False
            rc = mtsleep(chan, 0, "torture", max(1, hz() // 4), m)
            late = clock.monotonic_ns() - s[_SQ_HANDOFF_NS]
            if rc == errno.EWOULDBLOCK and s[_SQ_TOKEN] == self.i and late > _LATE_NS:
                self.fail(LOST_WAKEUP, late // 1_000_000, _LATE_NS // 1_000_000)
        s[_SQ_TOKEN] = (self.i + 1) % t.nwriters
        s[_SQ_HANDOFF_NS] = clock.monotonic_ns()
        wakeup(chan)
        mutex_exit(m)
        return True


# -- xcall: every target runs each call exactly once ----------------------------------


def _xc_bump(t: Torture, issuer: int) -> None:
    words(t.shared)[issuer * t.ncpu + cpu_index()] += 1


class XcallIssuer(TortureLwp):
    def __init__(self, t: Torture, i: int) -> None:
        super().__init__(t, i)
        self.expected = [0] * t.ncpu

    def step(self) -> bool:
        t, s, base = self.t, self.s, self.i * self.t.ncpu
        if self.rng.random() < 0.5:
            xc_wait(xc_broadcast(0, _xc_bump, t, self.i))
            targets = range(t.ncpu)
        else:
            target = self.rng.randrange(t.ncpu)
            xc_wait(xc_unicast(0, _xc_bump, t, self.i, target))
            targets = range(target, target + 1)
        for c in targets:
            self.expected[c] += 1
        for c, want in enumerate(self.expected):
            if s[base + c] != want:
                self.fail(XCALL_COUNT, s[base + c], want)
                self.expected[c] = s[base + c]  # count each wrong run once
        return True


# -- callout: never early, on the right CPU -------------------------------------------

_CO_FIRED = 0  # per lwp: set by its callout
_CO_HIST = 512  # per lwp, 4 words: callouts 0, 1, 2 and 3+ ticks late
LATE_BUCKETS = 4


def _callout_fired(arg: Any) -> None:
    t, i, t0, ticks, cpu = arg
    s = words(t.shared)
    elapsed = getticks() - t0
    if elapsed < ticks:
        t.fail(i, CALLOUT_EARLY, elapsed, ticks)
    if cpu_index() != cpu:
        t.fail(i, CALLOUT_WRONG_CPU, cpu_index(), cpu)
    s[_CO_HIST + i * LATE_BUCKETS + min(max(elapsed - ticks, 0), LATE_BUCKETS - 1)] += 1
    mutex_enter(t.locks[0])
    s[_CO_FIRED + i] = 1
    wakeup(t.shared.offset + 1 + i)
    mutex_exit(t.locks[0])


class CalloutSetter(TortureLwp):
    def __init__(self, t: Torture, i: int) -> None:
        super().__init__(t, i)
        self.cpu = cpu_index()
        self.c = callout_init(CALLOUT_MPSAFE)
        callout_bind(self.c, self.cpu)

    def step(self) -> bool:
        t, s, w, i = self.t, self.s, self.w, self.i
        m = t.locks[0]
        ticks = self.rng.randint(1, 4)
        s[_CO_FIRED + i] = 0
        callout_reset(self.c, ticks, _callout_fired, (t, i, getticks(), ticks, self.cpu))
        mutex_enter(m)
        while not s[_CO_FIRED + i] and not w[L.H_STOP]:
            mtsleep(t.shared.offset + 1 + i, 0, "callout", max(1, hz() // 4), m)
        fired = s[_CO_FIRED + i]
        mutex_exit(m)
        return bool(fired)

    def done(self) -> None:
        callout_halt(self.c, None)


def callout_lateness(t: Torture) -> list[int]:
    """How many callouts ran 0, 1, 2 and 3 or more ticks late, over all lwps."""
    s = words(t.shared)
    return [
        sum(s[_CO_HIST + i * LATE_BUCKETS + b] for i in range(t.nwriters))
        for b in range(LATE_BUCKETS)
    ]


# -- kmem: allocations from every CPU never overlap ---------------------------------------

_KMEM_BLOCKS = 0  # shared word: blocks allocated in the kernel before the run
_KMEM_SIZES = (8, 24, 64, 200, 512, 1500, 4096)
_KMEM_LIVE = 16


class KmemChurner(TortureLwp):
    def __init__(self, t: Torture, i: int) -> None:
        super().__init__(t, i)
        self.live: list[tuple[KBuf, int]] = []

    def step(self) -> bool:
        rng = self.rng
        if self.live and (len(self.live) >= _KMEM_LIVE or rng.random() < 0.5):
            self.free(self.live.pop(rng.randrange(len(self.live))))
        else:
            size, tag = rng.choice(_KMEM_SIZES), rng.randrange(1, 256)
            buf = kmem_alloc(size, KM_SLEEP)
            buf[:] = bytes((tag,)) * size
            self.live.append((buf, tag))
        return True

    def free(self, entry: tuple[KBuf, int]) -> None:
        buf, tag = entry
        data = bytes(buf)
        if data != bytes((tag,)) * len(data):
            bad = next(b for b in data if b != tag)
            self.fail(KMEM_CORRUPT, bad, tag)
        kmem_free(buf, len(data))

    def done(self) -> None:
        while self.live:
            self.free(self.live.pop())


# -- the types ---------------------------------------------------------------------------


class Mutex(TortureType):
    """2 writers per CPU on an adaptive mutex (and its nested locks, in order)."""

    writer = Exclusive
    takes_nested = True
    violations = (TWO_HOLDERS, HOLDER_CHANGED)


class Spin(Mutex):
    """The same on spin mutexes."""

    deterministic = False

    @staticmethod
    def setup(t: Torture) -> None:
        t.locks = [
            mutex_init(MUTEX_SPIN, IPL_VM, name=f"torture lock {i}") for i in range(1 + t.nested)
        ]


class Busted(Mutex):
    """A lock that excludes nobody: a run must end in FAILURE."""

    writer = BustedExclusive


class Rw(TortureType):
    """1 writer and 1 reader per CPU on a reader/writer lock."""

    writer, reader = RwWriter, RwReader
    writers_per_cpu = 1
    violations = (TWO_HOLDERS, HOLDER_CHANGED, WRITER_WITH_READERS, READER_WITH_WRITER)

    @staticmethod
    def setup(t: Torture) -> None:
        t.locks = [rw_init("torture rwlock")]


class Cv(TortureType):
    """Producers and consumers through a ring under a mutex and two condvars."""

    writer, reader = CvProducer, CvConsumer
    writers_per_cpu = 1
    violations = (OUT_OF_ORDER, LOST_ITEMS)

    @staticmethod
    def setup(t: Torture) -> None:
        t.locks = [mutex_init(name="torture lock 0")]
        t.cvs = [cv_init("notempty"), cv_init("notfull")]

    @staticmethod
    def check(t: Torture) -> None:
        _cv_check(t)


class Sleepq(TortureType):
    """A token passed round with mtsleep/wakeup."""

    writer = SleepqPasser
    violations = (LOST_WAKEUP,)


class Xcall(TortureType):
    """xc_broadcast/xc_unicast issued from every CPU at once."""

    deterministic = False

    writer = XcallIssuer
    violations = (XCALL_COUNT,)


class Callout(TortureType):
    """A callout per lwp, bound to its CPU."""

    deterministic = False

    writer = CalloutSetter
    violations = (CALLOUT_EARLY, CALLOUT_WRONG_CPU)

    @staticmethod
    def extra(t: Torture) -> dict[str, Any]:
        late = callout_lateness(t)
        return {
            "callout lateness (ticks late: count)": dict(
                zip(("0", "1", "2", "3+"), late, strict=True)
            )
        }


class Kmem(TortureType):
    """Allocations from every CPU, filled and checked."""

    writer = KmemChurner
    violations = (KMEM_CORRUPT, KMEM_LEAK)

    @staticmethod
    def start(t: Torture) -> None:
        words(t.shared)[_KMEM_BLOCKS] = _kmem_blocks()

    @staticmethod
    def check(t: Torture) -> None:
        """As many blocks allocated as before the run, measured from a kernel lwp both
        times, so the harness's own payloads cancel out."""
        if _kmem_blocks() != words(t.shared)[_KMEM_BLOCKS]:
            t.fail(0, KMEM_LEAK, _kmem_blocks(), words(t.shared)[_KMEM_BLOCKS])


#: The built-in types by name, in the order the help lists them.
BUILTIN: dict[str, type[TortureType]] = {
    cls.type_name(): cls for cls in (Mutex, Spin, Rw, Cv, Sleepq, Xcall, Callout, Kmem, Busted)
}


def setup(
    kind: type[TortureType],
    ncpu: int,
    nwriters: int,
    nreaders: int,
    seed: int,
    long_hold: int,
    nested: int,
) -> Torture:
    """Make the run's record and shared words, then the type's objects (kernel code:
    run it in the kernel)."""
    stats = kmem_zalloc(L.words(nwriters + nreaders) * 8)
    shared = kmem_zalloc(SHARED_WORDS * 8)
    t = Torture(kind, ncpu, nwriters, nreaders, seed, long_hold, nested, stats, shared)
    kind.setup(t)
    words(stats)[L.H_NLWPS] = t.nlwps
    return t


def _role(t: Torture, i: int) -> tuple[int, type[TortureLwp]]:
    if i < t.nwriters:
        return L.WRITER, t.kind.writer
    assert t.kind.reader is not None
    return L.READER, t.kind.reader


def _main(arg: tuple[Torture, int]) -> None:
    """A torture lwp's life: step until the stop (or, draining, until done)."""
    t, i = arg
    role, cls = _role(t, i)
    w, r = words(t.stats), L.record(i)
    w[r + L.R_CPU], w[r + L.R_ROLE] = cpu_index(), role
    try:
        if t.deterministic:
            detsched.register(i)  # from here on, the seed decides when it runs
        me = cls(t, i)
        while me.drains or not w[L.H_STOP]:
            if w[L.H_PAUSE] and not me.drains:
                kpause("stutter", False, 1)
                continue
            if not me.step():
                break
            w[r + L.R_ACQ] += 1
            if t.deterministic:
                detsched.point()  # the end of a step is a hand-over point
            elif not w[r + L.R_ACQ] % PREEMPT_EVERY:
                preempt()  # the kernel is not preemptive: let this CPU's other lwps in
        me.done()
    except Exception as e:  # noqa: BLE001 - a checker that breaks is a failure to report
        printf("%s-torture/%d: %r\n", t.kind.type_name(), i, e)
        t.fail(i, GENERIC[0], 0, 0)
    finally:
        w[r + L.R_DONE] = 1
        if t.deterministic:
            detsched.finish()


def _kmem_blocks() -> int:
    return kmem.kmem_stats(_arena.current())[0]


def start(t: Torture) -> Torture:
    """Start one bound kthread per torture lwp; the run with their lwp ids."""
    t.kind.start(t)
    for i in range(t.nlwps):
        lid = kthread_create(
            PRI_NONE,
            KTHREAD_MPSAFE | KTHREAD_MUSTJOIN,
            i % t.ncpu,
            _main,
            (t, i),
            f"{t.kind.type_name()}-torture/{i}",
        )
        words(t.stats)[L.record(i) + L.R_LWP] = lid
        t.lids.append(lid)
    return t


def det_setup(
    t: Torture, end_ticks: int, overrides: list[tuple[int, int]] | None = None
) -> Torture:
    """Make the deterministic run's record (kernel code, before the lwps start); its
    end is a virtual time, and the stop flag it sets is the run's H_STOP.  With
    ``overrides`` it replays that schedule instead of choosing with PCT."""
    t.deterministic = True
    t.det = kmem_zalloc(detsched.record_words(t.nlwps) * 8)
    stop = t.stats.offset // 8 + L.H_STOP
    arena = _arena.current()
    detsched.create(arena, t.det.offset // 8, t.nlwps, t.seed, end_ticks, stop, overrides)
    return t


def det_switch(on: bool, _: object) -> None:
    """Cross-call: this CPU process takes part in the deterministic run (or not)."""
    detsched.switch(on)


def det_schedule(t: Torture) -> dict[str, object]:
    """The deterministic run's schedule (detsched.schedule)."""
    return detsched.schedule(_arena.current())


def join(t: Torture) -> dict[str, Any]:
    """Wait for every torture lwp (after the host set H_STOP), then run the type's
    end-of-run check; the type's extra figures."""
    for lid in t.lids:
        kthread_join(lid)
    t.kind.check(t)
    return t.kind.extra(t)


_STATES = {LSIDL: "not started", LSRUN: "runnable", LSONPROC: "running", LSSLEEP: "asleep"}


def describe(t: Torture) -> dict[str, Any]:
    """What the torture lwps that have not finished are doing, as far as the kernel
    can tell (kernel code: the host asks when a run stops making progress): each
    one's state (asleep on which channel; "blocked" for a thread that gave its CPU up
    waiting), which of the run's locks it holds and which it waits to take, and the
    wait-for cycle among them if there is one (a deadlock)."""
    arena = _arena.current()
    tab, w = tables(arena), words(t.stats)
    mutexes = {k: m for k, m in enumerate(t.locks) if isinstance(m, kmutex_t)}
    holders = {k: mutex_owner(m) for k, m in mutexes.items()}
    by_rec = {m.rec.offset: k for k, m in mutexes.items()}
    out = []
    for i in range(t.nlwps):
        r = L.record(i)
        if w[r + L.R_DONE]:
            continue
        lid = w[r + L.R_LWP]
        l = tab.lwp(lid)
        state = _STATES.get(arena.w[l + L_STATE], f"state {arena.w[l + L_STATE]}")
        cpu = arena.w[l + L_CPU]  # (the record's is set only once the lwp has started)
        wants = by_rec.get(arena.w[l + L_WAITLOCK])
        blocked_on = _det_wait(t, i)  # a deterministic run's lwps wait on its record
        if blocked_on is not None and blocked_on not in by_rec:
            state = f"asleep on channel {blocked_on:#x}"
        elif wants is not None:
            state = f"waiting for lock {wants} (held by lwp {holders[wants]})"
        elif state == "running" and arena.w[cpu_word(arena, cpu) + SPC_BASE + SPC_CURLWP] != lid:
            state = "blocked (gave its CPU up waiting, for a lock or the host)"
        elif state == "asleep":
            state += f" on channel {arena.w[l + L_WCHAN]:#x}"
        held = [k for k, owner in holders.items() if owner == lid]
        out.append(
            {"index": i, "lwp": lid, "cpu": cpu, "state": state, "holds": held, "waits": wants}
        )
    return {"unfinished": out, "deadlock": _cycle(out, holders)}


def _det_wait(t: Torture, i: int) -> int | None:
    """What participant ``i`` of a deterministic run is blocked on, if it is."""
    if t.det is None:
        return None
    d = words(t.det)
    p = detsched.D_PART + i * detsched.P_WORDS
    return d[p + detsched.P_KEY] if d[p + detsched.P_STATUS] == detsched.BLOCKED else None


def _cycle(lwps: list[dict[str, Any]], holders: dict[int, int]) -> list[str]:
    """A wait-for cycle among ``lwps`` (lwp waits for a lock, the lock's holder waits
    for another ...), as one line per lwp in it; [] if there is none."""
    waits = {u["lwp"]: u["waits"] for u in lwps if u["waits"] is not None}
    for start in waits:
        path, lid = [], start
        while lid in waits and lid not in path:
            path.append(lid)
            lid = holders[waits[lid]]
        if lid == start:
            held = {lid: [k for k, o in holders.items() if o == lid] for lid in path}
            return [
                f"lwp {lid} holds lock {', '.join(map(str, held[lid]))} and waits for lock "
                f"{waits[lid]} (held by lwp {holders[waits[lid]]})"
                for lid in path
            ]
    return []


def perturb_on(seed: int, _: object) -> None:
    """Cross-call: start this CPU's seeded perturbation."""
    perturb.start(seed, cpu_index())


def perturb_off(_: object, __: object) -> dict[str, object]:
    """Cross-call: stop it; this CPU's decisions (count, digest, first ones)."""
    return perturb.stop()
