"""Booting a kernel: the seed's ``rump__init``, with each virtual CPU an OS process.

The steps follow the seed's order.  Each is real or says here why it has nothing to
do; each phase's duration is recorded (``python -m rumpmp boot --timings``).
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import hypercalls
from hypercalls import clock, forkserver, param, proc, rnd, shm, sp
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import clock as kern_clock
from rumpmp.rumpkern.base import evcnt, kernhist, msgbuf
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import aprint_verbose
from rumpmp.rumpkern.cred import signals
from rumpmp.rumpkern.file import descrip, select
from rumpmp.rumpkern.intr import callout, percpu, softint, xcall
from rumpmp.rumpkern.locking import atomic, biglock, lockstat, sleepq
from rumpmp.rumpkern.locking.sleepq import tsleep
from rumpmp.rumpkern.mem import kmem, specificdata
from rumpmp.rumpkern.sched import cpu, kthread, lwproc, reboot
from rumpmp.rumpkern.svc import module, sysctl, threadpool, workqueue
from rumpmp.sys import file as file_layout
from rumpmp.sys import kernhist as kernhist_layout
from rumpmp.sys import lockstat as lockstat_layout
from rumpmp.sys import module as module_layout
from rumpmp.sys import sp as sp_layout
from rumpmp.sys import syscall as syscall_layout
from rumpmp.sys import sysctl as sysctl_layout
from rumpmp.sys.cpu import CI_STATE, CPU_READY, cpu_word, region
from rumpmp.sys.param import MAXCPUS, PRI_PGDAEMON
from rumpmp.sys.proc import REGIONS

#: NetBSD's EPROGMISMATCH (Linux has no such errno; this is NetBSD's number).
EPROGMISMATCH = 74

COPYRIGHT = (
    "Copyright (c) 1996, 1997, 1998, 1999, 2000, 2001, 2002, 2003, 2004, 2005,\n"
    "    2006, 2007, 2008, 2009, 2010\n"
    "    The NetBSD Foundation, Inc.  All rights reserved.\n"
    "Copyright (c) 1982, 1986, 1989, 1991, 1993\n"
    "    The Regents of the University of California.  All rights reserved.\n\n"
)
VERSION_BANNER = "rumpmp 0.1 (NetBSD rump kernel, one process per virtual CPU)\n"
OSTYPE = "NetBSD"  # kern.ostype: the system rumpmp's kernel interfaces follow
OSRELEASE = "0.1"  # kern.osrelease: rumpmp's own release

DEFAULT_HZ = 100
DEFAULT_NSLOTS = 4096  # semaphore pool: bounds the named semaphores a kernel creates
BOOT_TIMEOUT = 60.0  # seconds for every CPU to report ready

#: What a fork server started as a new program imports before it forks a CPU (one
#: forked from the host has what the host has).
CPU_PRELOAD = ("rumpmp", "rumpmp.vfs", "rumpmp.kern")

#: The per-CPU initialisation each CPU runs, in the seed's order.
PERCPU_INIT = [
    kernhist.kernhist_init_cpu,
    callout.callout_init_cpu,
    softint.softint_init,
    xcall.xc_init_cpu,
    kmem.pool_cache_cpu_init,
    select.selsysinit,
    percpu.percpu_init_cpu,
]

_kernel_seq = itertools.count()

#: The file system, once this program has it (importing ``rumpmp.vfs`` sets these,
#: as linking rumpvfs resolves the seed's weak ``rump_vfs_init``): the arena
#: regions it needs and its boot step.  Unset, a kernel has no file system.
rump_vfs_regions: list[tuple[str, int]] = []
rump_vfs_init: Callable[[Arena], None] | None = None

#: Every named object of a kernel is called rmp-<host pid>-<seq>-[<tag>-]<random>.<what>.
PREFIX_STEM = "rmp-"


@dataclass
class BootParams:
    ncpu: int
    verbose: bool
    threads: bool
    hostname: str
    memlimit: int
    hz: int
    lockdebug: bool
    vfs: bool = True  # with the file system, if the program has it
    sigmodel: int = signals.RUMP_SIGMODEL_RAISE
    lockstat: bool = False
    trace_events: int = 0  # events per CPU of the trace's ring, 0 for no trace

    @property
    def lockstat_entries(self) -> int:
        """Entries per CPU of lockstat's tables (the trace names locks through them)."""
        return lockstat_layout.DEFAULT_CAP if self.lockstat or self.trace_events else 0


@dataclass
class Booted:
    """What ``rump__init`` hands to the client: the arena, the CPUs and the timings."""

    arena: Arena
    params: BootParams
    procs: list = field(default_factory=list)
    lifeline: proc.Lifeline | None = None
    channels: list[sp.Channel] = field(default_factory=list)  # connections to each CPU
    timings: dict[str, float] = field(default_factory=dict)


def _env_flag(name: str, arg: str, given: bool | None, default: bool) -> bool:
    """A yes/no parameter: the argument (a bool) if given, else the variable (a
    number, 0 for no, as rump reads it), else ``default``."""
    if given is not None:
        if not isinstance(given, bool | int):
            raise TypeError(f"{arg} must be a bool, not {type(given).__name__}")
        return bool(given)
    try:
        text = param.getenv(name)
    except FileNotFoundError:
        return default
    try:
        return int(text) != 0
    except ValueError:
        raise OSError(errno.EINVAL, f"{name} must be a number, not {text!r}") from None


def _parse_int(value: object, name: str, low: int, high: int) -> int:
    """An int from an argument (an int) or a variable (text); EINVAL outside low..high."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    try:
        n = int(value)
    except ValueError:
        raise OSError(errno.EINVAL, f"{name} must be a number, not {value!r}") from None
    if not low <= n <= high:
        raise OSError(errno.EINVAL, f"{name} must be between {low} and {high}, not {n}")
    return n


def parse_ncpu(value: object, name: str = "ncpu") -> int:
    """A CPU count from an argument or RUMP_NCPU; EINVAL unless 1..MAXCPUS."""
    return _parse_int(value, name, 1, MAXCPUS)


def _env_or(name: str, default: object) -> object:
    try:
        return param.getenv(name)
    except FileNotFoundError:
        return default


def parse_hz(value: object, name: str = "hz") -> int:
    """The clock rate from an argument or RUMP_HZ; EINVAL unless 1..1000."""
    return _parse_int(value, name, 1, 1000)


def parse_memlimit(value: str) -> int:
    """RUMP_MEMLIMIT: bytes, with an optional k/m/g suffix; at most what the host's
    shared memory can hold."""
    text = value.strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    try:
        n = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise OSError(errno.EINVAL, f"RUMP_MEMLIMIT must be a size, not {value!r}") from None
    if n < 4096:
        raise OSError(errno.EINVAL, f"RUMP_MEMLIMIT too small: {n} bytes")
    if n > shm.capacity():
        raise OSError(
            errno.ENOMEM,
            f"RUMP_MEMLIMIT={value}: {n} bytes is more than the host's shared memory "
            f"holds ({shm.capacity()} bytes)",
        )
    return n


def boot_params(
    ncpu: int | None,
    verbose: bool | None,
    threads: bool | None,
    hostname: str | None,
    lockdebug: bool | None = None,
    hz: int | None = None,
    vfs: bool | None = None,
    sigmodel: int | None = None,
    lockstat: bool | None = None,
    trace: bool = False,
) -> BootParams:
    """The boot parameters: arguments first, then the RUMP_* environment, as in rump.
    With ``trace``, the ring holds RUMP_TRACE_EVENTS events per CPU."""
    try:
        memlimit = parse_memlimit(param.getenv("RUMP_MEMLIMIT"))
    except FileNotFoundError:
        memlimit = kmem.DEFAULT_MEMLIMIT
    if hostname is not None and not isinstance(hostname, str):
        raise TypeError(f"hostname must be a str, not {type(hostname).__name__}")
    for value, name in ((ncpu, "ncpu"), (hz, "hz")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return BootParams(
        ncpu=parse_ncpu(ncpu)
        if ncpu is not None
        else parse_ncpu(param.getparam(param.PARAM_NCPU), "RUMP_NCPU"),
        verbose=_env_flag("RUMP_VERBOSE", "verbose", verbose, False),
        threads=_env_flag("RUMP_THREADS", "threads", threads, True),
        hostname=hostname or param.getparam(param.PARAM_HOSTNAME),
        memlimit=memlimit,
        hz=parse_hz(hz) if hz is not None else parse_hz(_env_or("RUMP_HZ", DEFAULT_HZ), "RUMP_HZ"),
        lockdebug=_env_flag("RUMP_LOCKDEBUG", "lockdebug", lockdebug, False),
        vfs=_env_flag("RUMP_VFS", "vfs", vfs, True) and rump_vfs_init is not None,
        sigmodel=signals.boot_sigmodel
        if sigmodel is None
        else signals.check_sigmodel(sigmodel, "sigmodel"),
        lockstat=_env_flag("RUMP_LOCKSTAT", "lockstat", lockstat, False),
        trace_events=_trace_events() if trace else 0,
    )


def _trace_events() -> int:
    """RUMP_TRACE_EVENTS, rounded up to a multiple of 8 (so each CPU's ring starts on
    its own cache line)."""
    n = _parse_int(
        _env_or("RUMP_TRACE_EVENTS", kernhist_layout.DEFAULT_EVENTS),
        "RUMP_TRACE_EVENTS",
        8,
        1 << 24,
    )
    return -(-n // 8) * 8


def name_tag() -> str:
    """RUMP_NAMETAG (letters, digits, _; at most 16), put in every object name as
    ``<tag>-``, so that the names say which of several runners made them (the
    pytest plugin sets it to the xdist worker id)."""
    try:
        tag = param.getenv("RUMP_NAMETAG")
    except FileNotFoundError:
        return ""
    if not tag or len(tag) > 16 or not tag.replace("_", "").isalnum() or not tag.isascii():
        raise OSError(errno.EINVAL, f"RUMP_NAMETAG must be 1-16 letters, digits or _, not {tag!r}")
    return f"{tag}-"


def check_versions() -> None:
    """The seed's two version checks: host layer and kernel must agree."""
    if hypercalls.VERSION != _arena.HYPERCALL_VERSION:
        raise OSError(
            EPROGMISMATCH,
            f"hypercall version mismatch: host layer {hypercalls.VERSION}, "
            f"kernel wants {_arena.HYPERCALL_VERSION}",
        )


def _regions(p: BootParams) -> list[tuple[str, int]]:
    return [
        region(p.ncpu),
        msgbuf.REGION,
        sleepq.REGION,
        atomic.REGION,
        lockstat_layout.region(p.ncpu, p.lockstat_entries),
        kernhist_layout.region(p.ncpu, p.trace_events),
        *REGIONS,
        callout.region(p.ncpu),
        softint.region(p.ncpu),
        xcall.region(p.ncpu),
        kmem.cache_region(p.ncpu),
        select.region(p.ncpu),
        percpu.region(p.ncpu),
        evcnt.region(p.ncpu),
        sysctl_layout.REGION,
        module_layout.REGION,
        threadpool.REGION,
        specificdata.REGION,
        *file_layout.REGIONS,
        syscall_layout.SYSENT_REGION,
        *(rump_vfs_regions if p.vfs else ()),
        *sp_layout.REGIONS,
        ("kmem", kmem.region_size(p.memlimit)),
    ]


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = clock.monotonic_ns()

    def mark(self, phase: str) -> None:
        now = clock.monotonic_ns()
        self.timings[phase] = (now - self.last) / 1e6
        self.last = now


def rump__init(
    ncpu: int | None = None,
    verbose: bool | None = None,
    threads: bool | None = None,
    hostname: str | None = None,
    lockdebug: bool | None = None,
    hz: int | None = None,
    vfs: bool | None = None,
    sigmodel: int | None = None,
    lockstat: bool | None = None,
    trace: bool = False,
) -> Booted:
    """Boot a new kernel; returns when every CPU has reported ready."""
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    check_versions()
    p = boot_params(ncpu, verbose, threads, hostname, lockdebug, hz, vfs, sigmodel, lockstat, trace)
    timer.mark("parameters")

    prefix = (
        f"{PREFIX_STEM}{param.getpid()}-{next(_kernel_seq)}-{name_tag()}{rnd.getrandom(3).hex()}."
    )
    arena = Arena.create(prefix, _regions(p), DEFAULT_NSLOTS)
    # The fork server opens the kernel's semaphores while the kernel is set up here,
    # so that the CPUs it forks have them open, as a fork from here would have.
    forkserver.ahead(prefix, cpu.cpu_preopen, (prefix,), CPU_PRELOAD)
    booted = Booted(arena, p, timings=timings)
    try:
        _setup_kernel(arena, p)
        timer.mark("arena")
        _start_cpus(booted)
        timer.mark("cpus")
    except BaseException:
        _abort_boot(booted)
        raise
    arena.w[_arena.H_STATE] = _arena.RUNNING
    _start_kthreads(arena)
    arena.w[_arena.H_COLD] = 0
    timer.mark("kthreads")
    return booted


def _setup_kernel(arena: Arena, p: BootParams) -> None:
    """Everything the host lays out before the CPUs start (the seed's first half)."""
    w = arena.w
    w[_arena.H_NCPU] = p.ncpu
    w[_arena.H_COLD] = 1
    w[_arena.H_STATE] = _arena.BOOTING
    w[_arena.H_VERBOSE] = int(p.verbose)
    w[_arena.H_BOOTHOWTO] = reboot.AB_VERBOSE if p.verbose else 0
    w[_arena.H_SIGMODEL] = p.sigmodel
    w[_arena.H_THREADS] = int(p.threads)
    w[_arena.H_HZ] = p.hz
    w[_arena.H_LOCKDEBUG] = int(p.lockdebug)
    lockstat.lockstat_init(arena, p.lockstat, p.lockstat_entries)  # before the first lock
    kernhist.kernhist_init(arena, p.trace_events)
    w[_arena.H_HOSTPID] = param.getpid()
    kern_clock.inittimecounter(arena)
    kern_clock.tc_setclock_in(arena, clock.clock_gettime(clock.CLOCK_RELWALL))
    w[_arena.H_PANIC_SLOT] = arena.pool.alloc(1)
    msgbuf.initmsgbuf(arena)
    aprint_verbose(arena, COPYRIGHT + VERSION_BANNER)
    # The seed stirs arc4random from the stack; rumpmp's kernel takes host entropy.
    arena.cache["rnd.seed"] = rnd.getrandom(32)
    kmem.kmem_init(arena)
    atomic.atomic_init(arena)
    sleepq.sleepq_init(arena)
    lwproc.procinit(arena)
    lwproc.proc0_init(arena)
    arena.set_str(_arena.HOSTNAME_OFF, _arena.HOSTNAME_LEN, p.hostname)
    cpu.cpus_bootstrap(arena)
    evcnt.evcnt_init(arena)
    softint.softint_startup(arena)
    xcall.xc_init(arena)
    percpu.percpu_init(arena)
    sysctl.sysctl_init(arena, OSTYPE, OSRELEASE, VERSION_BANNER.strip(), p.memlimit)
    module.module_init(arena)
    threadpool.threadpool_init(arena)
    biglock.biglock_init(arena)
    specificdata.specificdata_init(arena)
    descrip.fd_sys_init(arena, sysctl.value_word(arena, "kern.maxfiles"))
    if p.vfs and rump_vfs_init is not None:
        rump_vfs_init(arena)
        w[_arena.H_VFS] = 1
    w[_arena.H_BOOT_SLOT] = arena.pool.alloc(0)


def _pagedaemon(_: object) -> None:
    """The seed's pagedaemon, standing in: rumpmp's heap has nothing to page out, so
    it sleeps on its channel until the kernel halts (wakeup("pdaemon") rouses it)."""

    arena = _arena.current()
    while arena.state == _arena.RUNNING:
        tsleep("pdaemon", PRI_PGDAEMON, "pgdaemon", arena.w[_arena.H_HZ])


def _start_kthreads(arena: Arena) -> None:
    """The kernel threads the seed starts once the CPUs are up: the softint lwps of
    the clock (callouts) and of high-priority cross-calls, the aiodoned workqueue,
    the pagedaemon."""
    callout.callout_startup(arena)
    xcall.xc_startup(arena)
    if arena.w[_arena.H_THREADS]:
        workqueue.aiodoned_create(arena)
    kthread.kthread_create_in(
        arena, PRI_PGDAEMON, kthread.KTHREAD_MPSAFE, None, _pagedaemon, None, "pdaemon"
    )


def _start_cpus(booted: Booted) -> None:
    """Fork every CPU, then wait until all have initialised in parallel."""
    arena = booted.arena
    booted.lifeline = proc.Lifeline()
    booted.channels = [sp.Channel() for _ in range(arena.ncpu)]
    n = range(arena.ncpu)
    booted.procs = forkserver.spawn_group(
        arena.prefix,
        cpu.cpu_main,
        [(arena.prefix, i, PERCPU_INIT) for i in n],
        [(booted.lifeline.read_fd, booted.channels[i].cpu_fd()) for i in n],
        prepare=(cpu.cpu_prepare, (arena.prefix, arena.pool.open_slots())),
        preload=CPU_PRELOAD,
    )
    for channel in booted.channels:
        channel.forked()
    _wait_ready(booted)


def _wait_ready(booted: Booted) -> None:
    arena = booted.arena
    slot = arena.w[_arena.H_BOOT_SLOT]
    deadline = clock.monotonic_ns() + int(BOOT_TIMEOUT * 1e9)
    ready = 0
    while ready < arena.ncpu:
        if arena.pool.park(slot, 0.05, wrap=False):
            ready += 1
            continue
        for i in proc.wait_any(booted.procs, 0):
            code = proc.exitcode_text(booted.procs[i].exitcode)
            cause = arena.get_str(_arena.PANICSTR_OFF, _arena.PANICSTR_LEN) or code
            raise OSError(errno.EIO, f"boot failed: cpu{i} died ({code}): {cause}")
        if clock.monotonic_ns() > deadline:
            late = [
                i for i in range(arena.ncpu) if arena.w[cpu_word(arena, i) + CI_STATE] != CPU_READY
            ]
            raise OSError(
                errno.ETIMEDOUT,
                f"boot failed: cpu{', cpu'.join(map(str, late))} not ready "
                f"within {BOOT_TIMEOUT:.0f} s",
            )


def close_channels(booted: Booted) -> None:
    """The host's ends of its lifeline and of its channels to the CPUs, and the CPUs'
    sentinels, closed (their exit codes stay known)."""
    if booted.lifeline:
        booted.lifeline.close()
    for channel in booted.channels:
        channel.close()
    for p in booted.procs:
        p.join(0)
        p.close()


def _abort_boot(booted: Booted) -> None:
    """A boot that failed leaves nothing behind: stop the CPUs, unlink everything."""
    arena = booted.arena
    arena.w[_arena.H_STATE] = _arena.HALTED
    arena.pool.shutdown()
    for p in booted.procs:
        proc.kill(p.pid)
    for p in booted.procs:
        p.join(5)
    close_channels(booted)
    hypercalls.shm.unlink_prefix(arena.prefix)
    arena.close()
