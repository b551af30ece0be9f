"""The shared arena: one segment per kernel, mapped in every process of that kernel.

The arena begins with a header and a table of regions, laid out once at boot; every
other module finds its shared state through ``Arena.region(name)``.  Records are
arrays of 8-byte words (``Arena.w``, a memoryview cast to int64), so a field is read
or written with one index operation and no process keeps a private copy.

An ``Arena`` object is this process's view of one kernel: the mapping, the kernel's
semaphore pool and the per-process caches (unpickled blobs, opened handles).  There
is one per kernel per process (``Arena.attach``), so handles that pickle by
reference (prefix, offset) find the same view wherever they are unpickled.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Hashable
from typing import TypeVar

from hypercalls import shm, sp, sync, thread

T = TypeVar("T")

MAGIC = 0x72756D706D70  # "rumpmp"

#: The kernel's own version (RUMP_VERSION); the hypercall version it needs is below.
KERNEL_VERSION = 1
HYPERCALL_VERSION = 1

# Header words.
H_MAGIC = 0
H_VERSION = 1
H_NCPU = 2
H_STATE = 3
H_PANIC_CPU = 4
H_BOOT_SEC = 5
H_BOOT_NSEC = 6
H_THREADS = 7
H_VERBOSE = 8
H_HOSTPID = 9
H_NREGIONS = 10
H_COLD = 11
H_HZ = 12
H_NREADY = 13
H_BOOT_SLOT = 14  # pool slot the CPUs post when they are ready
H_LOCKDEBUG = 15
H_HOWTO = 16  # cpu_reboot flags of a halt in progress
H_BOOT_MONO = 17  # host monotonic time (ns) of boot: tick 0
H_AIODONED = 18  # 3 words: blob of the aiodoned workqueue's handle
H_PANIC_SLOT = 21  # pool slot whose one post is the panic token (prf.record_panic)
H_BOOTHOWTO = 22  # boothowto: AB_VERBOSE, ... (rump_boot_gethowto)
H_GIANT = 23  # pool slot of the big kernel lock
H_SIGMODEL = 24  # what a signal does (rump_boot_setsigmodel); 0 is RUMP_SIGMODEL_PANIC
H_KSYMS = 25  # 3 words: blob of the kernel symbol table (size -1 while it is loaded)
H_SPSERVING = 28  # 1 once every CPU runs its sysproxy receiver
H_VFS = 29  # 1 if the kernel has the file system (rump_vfs_init ran at boot)
H_DET = 30  # word index of a deterministic stress run's record (detsched), 0 if none
H_LOCKSTAT = 31  # 1 if lockstat counts (locking.lockstat)
HEADER_WORDS = 32

# Strings in the header area, after the words.
HOSTNAME_OFF = HEADER_WORDS * 8
HOSTNAME_LEN = 256
PANICSTR_OFF = HOSTNAME_OFF + HOSTNAME_LEN
PANICSTR_LEN = 512
#: The sysproxy server's unix socket files, a line each: whoever cleans up after the
#: host (its CPUs, if it dies) removes them too.
SOCKETS_OFF = PANICSTR_OFF + PANICSTR_LEN
SOCKETS_LEN = 512
REGION_TABLE_OFF = SOCKETS_OFF + SOCKETS_LEN
MAX_REGIONS = 32
_REGION = struct.Struct("<16sqq")  # name, offset, size

# Kernel states (H_STATE).
BOOTING, RUNNING, HALTING, HALTED, PANICKED = range(5)
STATE_NAMES = ("booting", "running", "halting", "halted", "panicked")

ALIGN = 64  # a cache line: regions never share one

#: The regions a stopped kernel's host keeps a copy of (``Arena.close``).
KEPT = ("cpu", "msgbuf", "evcnt")


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


_views: dict[str, Arena] = {}


class Arena:
    """This process's view of one kernel's shared state."""

    def __init__(self, prefix: str, seg: shm.Segment, pool: sync.SyncPool) -> None:
        self.prefix = prefix
        self.seg = seg
        self.buf = seg.buf
        self.w = seg.buf.cast("q")
        self.pool = pool
        self.regions: dict[str, tuple[int, int]] = {}
        self.cache: dict[object, object] = {}  # per-process: unpickled blobs, opened objects
        for i in range(self.w[H_NREGIONS]):
            name, off, size = _REGION.unpack_from(self.buf, REGION_TABLE_OFF + i * _REGION.size)
            self.regions[name.rstrip(b"\0").decode()] = (off, size)
        self._region_words = {name: off // 8 for name, (off, _) in self.regions.items()}

    @classmethod
    def create(cls, prefix: str, regions: list[tuple[str, int]], nslots: int) -> Arena:
        """Lay out a new arena with the given (name, size) regions and its pool."""
        if len(regions) > MAX_REGIONS:
            raise ValueError("too many arena regions")
        off = _align(REGION_TABLE_OFF + MAX_REGIONS * _REGION.size)
        table = []
        for name, size in regions:
            table.append((name, off, size))
            off = _align(off + size)
        seg = shm.Segment.create(prefix + "arena", off)
        for i, (name, roff, size) in enumerate(table):
            _REGION.pack_into(
                seg.buf, REGION_TABLE_OFF + i * _REGION.size, name.encode(), roff, size
            )
        w = seg.buf.cast("q")
        w[H_NREGIONS] = len(table)
        w[H_VERSION] = KERNEL_VERSION
        w[H_MAGIC] = MAGIC
        w.release()
        pool = sync.SyncPool.create(prefix, nslots)
        view = cls(prefix, seg, pool)
        _views[prefix] = view
        return view

    @classmethod
    def attach(cls, prefix: str) -> Arena:
        """This process's view of the kernel with this prefix (ENXIO if it is gone)."""
        view = _views.get(prefix)
        if view is None:
            try:
                seg = shm.Segment.attach(prefix + "arena")
                pool = sync.SyncPool.attach(prefix)
            except FileNotFoundError as e:
                raise OSError(errno.ENXIO, f"no kernel {prefix!r}: it has halted") from e
            view = _views[prefix] = cls(prefix, seg, pool)
        return view

    def __reduce__(self) -> tuple:
        return (_attach, (self.prefix,))  # by reference: each process has its own view

    def close(self) -> None:
        """The kernel has stopped: keep a private copy of what the host still reads
        (the header and the KEPT regions: ``state``, ``panic``, ``dmesg``, ``evcnts``;
        the rest of what lies in front of the heap reads as zeros) and let go of the
        shared mapping.

        The segment is unmapped at once unless something still points into it (a
        KBuf the host kept, a host thread still inside a call); then it goes when
        the last such object does.  Nothing is released under a thread using it.
        """
        end = self.regions["kmem"][0] if "kmem" in self.regions else len(self.buf)
        copy = bytearray(end)  # (the rest stays zero: copying all would touch every page)
        first = min((off for off, _ in self.regions.values()), default=end)
        copy[:first] = self.buf[:first]  # the header: state, panic, hostname
        for off, size in (self.regions[name] for name in KEPT if name in self.regions):
            copy[off : off + size] = self.buf[off : off + size]
        self.buf = memoryview(copy)
        self.w = self.buf.cast("q")
        self.cache.clear()
        _views.pop(self.prefix, None)
        self.seg.close()
        self.pool.close()
        shm.forget_prefix(self.prefix)

    def forget(self) -> None:
        """Let go of this view, keeping nothing (the fork server, once it has forked
        a kernel's CPUs, which keep what they inherited)."""
        _views.pop(self.prefix, None)
        self.cache.clear()
        self.buf = self.w = memoryview(b"").cast("q")
        self.seg.close()
        self.pool.close()

    # -- what this process attached ------------------------------------------

    def attached(self, key: Hashable, make: Callable[[], T]) -> T:
        """This process's one ``make()`` for ``key`` (a view of a record, a handle):
        made on first use and kept until the kernel is closed."""
        obj = self.cache.get(key)
        if obj is None:
            obj = self.cache[key] = make()
        return obj  # type: ignore[return-value]

    def spin_lock(self, word: int) -> sync.Mutex:
        """The spin mutex whose pool slot is stored at ``word``, attached once per
        process (the per-kernel locks of msgbuf, evcnt, percpu, softint, callout,
        sleep queues)."""
        lock = self.cache.get(("spin", word))
        if lock is None:
            lock = self.cache[("spin", word)] = sync.Mutex.attach(
                self.pool, self.w[word], sync.MTX_SPIN
            )
        return lock  # type: ignore[return-value]

    # -- regions and header -------------------------------------------------

    def region(self, name: str) -> tuple[int, int]:
        """(byte offset, size) of a region."""
        return self.regions[name]

    def region_word(self, name: str) -> int:
        """Word index of the start of a region."""
        return self._region_words[name]

    @property
    def state(self) -> int:
        return self.w[H_STATE]

    @property
    def ncpu(self) -> int:
        return self.w[H_NCPU]

    def get_str(self, off: int, size: int) -> str:
        raw = bytes(self.buf[off : off + size])
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def set_str(self, off: int, size: int, text: str) -> None:
        raw = text.encode()[: size - 1]
        self.buf[off : off + size] = raw + b"\0" * (size - len(raw))


def _attach(prefix: str) -> Arena:
    return Arena.attach(prefix)


class _Here:
    """Which kernel and CPU this process is (set once in a CPU process)."""

    arena: Arena | None = None
    cpu: int = -1
    channel: sp.Channel | None = None  # from the host: remote clients' connections


here = _Here()


#: Per thread: ``onproc.scheduled`` is True while the calling thread holds its CPU
#: (the scheduler sets it).  It lives in this leaf module so that anything may ask
#: without importing the scheduler.  ``onproc.on_block``, when set, is called once
#: as the thread next gives its CPU up (blocks): whoever set it learns that the
#: thread will be a while, and may hand what it does meanwhile to another lwp.
onproc = thread.local()


def curcpu_scheduled() -> bool:
    """Whether the calling thread holds its CPU."""
    return getattr(onproc, "scheduled", False)


def current() -> Arena:
    """The kernel of this CPU process; ENXIO in a process that is not a CPU."""
    if here.arena is None:
        raise OSError(errno.ENXIO, "not inside a rumpmp kernel (call it through Kernel.run)")
    return here.arena
