"""Torture types: what ``python -m rumpmp stress`` hammers, built-in or your own.

A type is a subclass of ``TortureType`` naming its lwp classes, and each lwp class
is a subclass of ``TortureLwp`` whose ``step()`` does one unit of work (take the
lock, check what must hold inside, let it go) and reports a violation with
``fail(what, seen, expected)``, ``what`` being one of the type's ``violations``::

    from rumpmp.kern import mutex_enter, mutex_exit
    from rumpmp.torture import TortureLwp, TortureType

    class CounterWriter(TortureLwp):
        def step(self) -> bool:
            lock = self.t.locks[0]
            mutex_enter(lock)
            before = self.s[0]
            self.hold()  # the critical section: now and then a long one
            self.s[0] = before + 1
            mutex_exit(lock)
            return True  # False: this lwp is done

    class Counter(TortureType):
        writer = CounterWriter
        violations = ("count lost",)

        @staticmethod
        def check(t) -> None:  # after every lwp has finished
            if t.s[0] != t.acquisitions():
                t.fail(0, "count lost", t.s[0], t.acquisitions())

Name it ``--type package.module:Counter``, or under the entry point group
``rumpmp.torture_types``; from Python, ``torture.run(Counter, ncpu=4)``.  It gets
everything a built-in type gets: writer (and reader) lwps bound to every CPU, the
statistics lines, first-violation records, perturbation, stutter/shuffle/freeze,
``--json``, campaigns and the replay line.  The built-in types are written this way.

Everything here runs in the kernel (in the torture lwps), so the classes must be
importable there: defined in a module, not in ``__main__`` of a script that is not
on the path of the CPU processes (they are forked from the host, so a module the
host imported is).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rumpmp.kern import DELAY, KBuf, mutex_init, preempt
from rumpmp.torture import layout as L

#: The violations every type may report, before its own ``violations``.
GENERIC = ("torture lwp raised an exception",)

_views: dict[tuple[str, int, int], memoryview] = {}


def words(buf: KBuf) -> memoryview:
    """The buffer as int64 words, made once per CPU process (kernel code only: the
    host reads the record through a view of its own, which it lets go at halt)."""
    key = (buf.prefix, buf.offset, buf.gen)
    view = _views.get(key)
    if view is None:
        view = _views[key] = int64_view(buf)
    return view


def int64_view(buf: KBuf) -> memoryview:
    return memoryview(buf).cast("B").cast("q")


@dataclass
class Torture:
    """One run: its type, parameters and kernel objects; pickles by reference to them.

    ``stats`` holds the per-lwp records the host reads; ``shared`` is
    ``SHARED_WORDS`` words the type may use as it likes (``s`` in an lwp);
    ``locks`` and ``cvs`` are what the type's ``setup`` made."""

    kind: type[TortureType]
    ncpu: int
    nwriters: int
    nreaders: int
    seed: int
    long_hold: int  # ms
    nested: int
    stats: KBuf
    shared: KBuf
    locks: list[Any] = field(default_factory=list)
    cvs: list[Any] = field(default_factory=list)
    lids: list[int] = field(default_factory=list)
    deterministic: bool = False
    det: KBuf | None = None  # the deterministic run's record (rumpkern/base/detsched.py)

    @property
    def nlwps(self) -> int:
        return self.nwriters + self.nreaders

    @property
    def s(self) -> memoryview:
        """The shared words."""
        return words(self.shared)

    def acquisitions(self, indexes: range | None = None) -> int:
        """Steps done by the lwps ``indexes`` (all of them by default)."""
        w = words(self.stats)
        return sum(w[L.record(i) + L.R_ACQ] for i in indexes or range(self.nlwps))

    def fail(self, i: int, what: str, seen: int, expected: int) -> None:
        """Count a violation against torture lwp ``i``, keeping the first one's details."""
        w, r = words(self.stats), L.record(i)
        if not w[r + L.R_FAIL]:
            w[r + L.R_WHAT] = self.kind.kind_index(what)
            w[r + L.R_SEEN], w[r + L.R_WANT] = seen, expected
        w[r + L.R_FAIL] += 1


class TortureLwp:
    """One torture lwp of a type: ``step()`` until the run stops.

    ``t`` is the run, ``i`` this lwp's index (writers first), ``s`` the shared words,
    ``rng`` a generator seeded from the run's seed and ``i``."""

    #: Keeps stepping after the stop until ``step()`` says it is done (a consumer
    #: that empties what producers left).
    drains: ClassVar[bool] = False

    def __init__(self, t: Torture, i: int) -> None:
        self.t, self.i = t, i
        self.w, self.s = words(t.stats), words(t.shared)
        self.r = L.record(i)
        self.rng = random.Random(f"rumpmp-torture:{t.seed}:{i}")

    def step(self) -> bool:
        """One unit of work and its checks; False once this lwp has nothing more to do."""
        raise NotImplementedError

    def done(self) -> None:
        """Called once the lwp stops (release what it holds)."""

    def fail(self, what: str, seen: int, expected: int) -> None:
        """Report a violation: ``what`` (one of the type's ``violations``), what was
        seen and what was expected.  The first is kept, each is counted."""
        self.t.fail(self.i, what, seen, expected)

    def hold(self) -> None:
        """The critical section: now and then a long one (locktorture's long_hold).
        In a deterministic run it is a hand-over point instead: the seed decides
        whether another lwp runs inside it."""
        if self.t.deterministic:
            preempt()
        elif self.t.long_hold and not self.rng.randrange(2000 * self.t.nwriters):
            DELAY(self.t.long_hold * 1000)
        else:
            DELAY(self.rng.randrange(3))


class TortureType:
    """A torture type: its lwp classes, how many of each, and its hooks.  Every hook
    runs in the kernel; the defaults make one adaptive mutex (``t.locks[0]``)."""

    #: The name the reports use (the class name, lower case, unless set).
    name: ClassVar[str] = ""
    writer: ClassVar[type[TortureLwp]]
    reader: ClassVar[type[TortureLwp] | None] = None
    #: Default lwps per CPU (locktorture's: 2 writers for an exclusive lock, 1 writer
    #: and 1 reader for a type with readers).
    writers_per_cpu: ClassVar[int] = 2
    readers_per_cpu: ClassVar[int] = 1
    #: Whether ``--nested`` (extra locks taken in order) means something to it.
    takes_nested: ClassVar[bool] = False
    #: What its lwps may report with ``fail``.
    violations: ClassVar[tuple[str, ...]] = ()
    #: Whether ``--deterministic`` can schedule it: its lwps meet only through kernel
    #: mutexes, rwlocks, condvars, tsleep/mtsleep/kpause/wakeup and preempt (not
    #: cross-calls, callouts or softints, nor a spin mutex held across another entry).
    deterministic: ClassVar[bool] = True

    @classmethod
    def type_name(cls) -> str:
        return cls.name or cls.__name__.lower()

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return GENERIC + cls.violations

    @classmethod
    def kind_index(cls, what: str) -> int:
        """The record's code for a violation (1-based); TypeError if undeclared."""
        try:
            return cls.kinds().index(what) + 1
        except ValueError:
            raise TypeError(
                f"fail: {what!r} is not among {cls.__name__}.violations {cls.violations}"
            ) from None

    @classmethod
    def kind_text(cls, code: int) -> str:
        kinds = cls.kinds()
        return kinds[code - 1] if 0 < code <= len(kinds) else f"violation {code}"

    @staticmethod
    def setup(t: Torture) -> None:
        """Make the run's kernel objects (before any lwp starts)."""
        t.locks = [mutex_init(name=f"torture lock {i}") for i in range(1 + t.nested)]

    @staticmethod
    def start(t: Torture) -> None:
        """Just before the lwps start (e.g. take a baseline)."""

    @staticmethod
    def check(t: Torture) -> None:
        """After every lwp has finished: the end-of-run checks (``t.fail``)."""

    @staticmethod
    def extra(t: Torture) -> dict[str, Any]:
        """Figures for the report beyond the counts (name: value)."""
        return {}
