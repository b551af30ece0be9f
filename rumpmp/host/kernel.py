"""The host's view of a kernel: ``Kernel``, returned by ``rumpmp.boot``.

The host process is a client of the kernels it boots.  It enters a kernel the way a
remote client would, by handing it requests, with shared memory as the transport:
``run`` hands the call to the calling thread's own lwp, parked in a CPU process
(``rumpmp.host.hostlwp``), and parks until that lwp publishes its result.  A watcher
thread per kernel turns the death of any CPU into a kernel panic within a fraction of
a second: the other CPUs are stopped, every named object is unlinked, and callers get
``RumpPanic`` instead of hanging.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import pathlib
import threading  # the client library may: one host lock guards stopping
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

from hypercalls import clock, param, proc, shm, sp, sync, thread
from hypercalls.intr import hold_interrupts
from rumpmp.host import trace
from rumpmp.host.hostlwp import HostLwps
from rumpmp.rumpkern import init
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import evcnt
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.msgbuf import msgbuf_read
from rumpmp.rumpkern.base.prf import RumpPanic, kprintf, panic_info, record_panic
from rumpmp.rumpkern.intr import xcall
from rumpmp.rumpkern.locking import lockstat as kern_lockstat
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.blob import PickledFunctions
from rumpmp.rumpkern.sched import reboot, scheduler
from rumpmp.rumpkern.svc import module, sysctl
from rumpmp.sys.proc import RUMP_RFCFDG

if TYPE_CHECKING:  # loaded with the first system call: a boot does not need them
    from rumpmp.host.process import Process, Syscalls
    from rumpmp.sp.server import Server

WATCH_INTERVAL = 0.1


class KernelHalted(OSError):
    """A call into a kernel that has halted."""


def _deadline(timeout: float | None) -> int | None:
    """The monotonic deadline (ns) of a call with ``timeout`` seconds, None for none."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, not {timeout!r}")
    return clock.monotonic_ns() + int(timeout * 1e9)


def _int_arg(value: object, name: str) -> int:
    """``value`` if it is an int (a bool is not); TypeError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


class Kernel:
    """A booted kernel: N CPU processes sharing one arena.  Use it as a context manager."""

    def __init__(self, booted: init.Booted) -> None:
        self._booted = booted
        self._arena: Arena = booted.arena
        self.prefix = self._arena.prefix
        self.timings = booted.timings
        self.params = booted.params
        self._pid = param.getpid()  # a forked child must not act on its parent's kernel
        self._panic: RumpPanic | None = None
        self._host_process: Process | None = None
        self._servers: list[Server] = []
        self._functions = PickledFunctions()
        self._lwps = HostLwps(self._arena)
        self._stop_hooks: list[Callable[[Kernel], None]] = []
        self._process_lock = threading.Lock()  # not _lock: a panic must not wait for it
        self._stopped = False
        self._lock = threading.Lock()  # halt, panic and the watcher may race to stop
        self._watcher = thread.thread_create(self._watch, None, f"{self.prefix}watch")
        atexit.register(self._atexit)
        _booted.append(weakref.ref(self))

    def __reduce__(self) -> tuple:
        raise TypeError(
            "a rumpmp.Kernel cannot be sent into a kernel: it is the host's handle; "
            "kernel code reaches its own kernel through rumpmp.kern"
        )

    # -- facts ---------------------------------------------------------------------

    @property
    def ncpu(self) -> int:
        return self._arena.ncpu

    @property
    def state(self) -> str:
        """'running', 'halted' or 'panicked'."""
        return _arena.STATE_NAMES[self._arena.state]

    @property
    def panic(self) -> RumpPanic | None:
        """Why the kernel panicked (the CPU and the cause), None if it has not."""
        if self._panic is None and self._arena.state == _arena.PANICKED:
            return panic_info(self._arena)
        return self._panic

    @property
    def hz(self) -> int:
        """Clock ticks per second (RUMP_HZ)."""
        return self._arena.w[_arena.H_HZ]

    @property
    def hostname(self) -> str:
        return self._arena.get_str(_arena.HOSTNAME_OFF, _arena.HOSTNAME_LEN)

    def cpu_pids(self) -> list[int]:
        """The OS process id of each virtual CPU."""
        return [p.pid for p in self._booted.procs]

    def dmesg(self) -> str:
        """The kernel message buffer (readable after halt and panic too)."""
        return msgbuf_read(self._arena)

    def sched_stats(self) -> list[dict[str, int]]:
        """Per-CPU scheduler counters (context switches, fast/slow path, steals)."""
        self._check_running()
        return [scheduler.stats(self._arena, i) for i in range(self.ncpu)]

    def lockstat(self) -> list[kern_lockstat.LockStat]:
        """lockstat(8)'s figures: a row per lock and kind of hold, summed over the
        CPUs, most time waited first (EINVAL unless booted with ``lockstat=True``)."""
        self._check_running()
        if not kern_lockstat.enabled(self._arena):
            raise OSError(errno.EINVAL, "lockstat is off: boot with lockstat=True")
        return kern_lockstat.rows(self._arena)

    def trace_dump(self, path: str | pathlib.PurePath) -> trace.TraceSummary:
        """Write the trace so far to ``path`` as Chrome trace-event JSON (Perfetto
        opens it); EINVAL unless booted with ``trace=``."""
        self._check_running()
        return trace.write(self._arena, path)

    def evcnts(self) -> list[tuple[str, str, int]]:
        """(group, name, count) of every event counter, the kernel's own first
        (readable after halt too)."""
        return evcnt.evcnt_list(self._arena)

    @property
    def sys(self) -> Syscalls:
        """The system calls as methods, run in the host's own rump process (made at
        the first call): ``k.sys.getpid()``, ``k.sys.setuid(1000)``, ..."""
        return (self._host_process or self._own_process()).sys

    def _own_process(self) -> Process:
        from rumpmp.host.process import Process  # noqa: PLC0415 - loaded with the first call

        with self._process_lock:
            if self._host_process is None:
                self._check_running()
                self._host_process = Process(self)
            return self._host_process

    def process(self, flags: int = RUMP_RFCFDG) -> Process:
        """A fresh child of the host's process for the host's calls
        (rump_lwproc_rfork from the host; RUMP_RFCFDG: a clean fd table,
        RUMP_RFFDG: a copy of the host process's).  ``with k.process() as p:
        p.sys.getpid()``; the process ends with the block."""
        from rumpmp.host.process import Process  # noqa: PLC0415 - loaded with the first call

        return Process(self, flags, parent=self._own_process().pid)

    @property
    def _channels(self) -> list[sp.Channel]:
        """The host's ends of its channels to the CPUs (the sysproxy server hands
        connections over them)."""
        return self._booted.channels

    def listen(self, url: str, **options: Any) -> Server:
        """rump_init_server(3): serve this kernel's system calls to other programs
        at ``url`` (``unix://path``, ``unix:///abs/path``, ``tcp://127.0.0.1:port``,
        ``tcp://[::1]:port``) until ``close()`` or the kernel halts.  ``options`` are
        ``rumpmp.sp.server.Options``'s: ``mode`` (0o600), ``listen_any``, ``token``,
        ``root_clients``, and the per-client limits."""
        from rumpmp.sp.server import Options, Server  # noqa: PLC0415 - loaded when used

        self._check_running()
        server = Server(self, url, Options(**options))
        self._servers.append(server)
        if server.listener.path:
            paths = self._arena.get_str(_arena.SOCKETS_OFF, _arena.SOCKETS_LEN).split()
            text = "\n".join([*paths, server.listener.path])
            if len(text.encode()) < _arena.SOCKETS_LEN:
                self._arena.set_str(_arena.SOCKETS_OFF, _arena.SOCKETS_LEN, text)
        return server

    def sysctl(self, name: str | tuple[int, ...], value: object = None) -> object:
        """sysctl(3) from the host: the value of ``name`` (a dotted name or a MIB),
        set to ``value`` when it is not None (the old value is returned).  The host
        owns its kernel, so it may set any read-write node."""
        self._check_running()
        return sysctl.sysctl_in(self._arena, sysctl._node(name, "name"), value)

    def sysctl_all(self) -> dict[str, object]:
        """Every leaf of the tree and its value (``sysctl -a``)."""
        self._check_running()
        return sysctl.all_in(self._arena)

    def kmem_stats(self) -> tuple[int, int, int]:
        """(blocks allocated, bytes in them, heap size) of the kernel heap."""
        self._check_running()
        return kmem.kmem_stats(self._arena)

    # -- entering the kernel -----------------------------------------------------

    def run(
        self,
        func: Callable[..., Any],
        *args: Any,
        cpu: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run ``func(*args)`` in the calling thread's lwp of proc0 and return its
        result, or raise its exception.  The thread's lwp is made at its first call,
        on CPU ``cpu`` if given (one lwp per CPU asked for) or where the kernel
        places it, and kept for its later calls.  The function is pickled once (a
        function of ``__main__`` by value, with the globals it uses as they are at
        its first call), the arguments at each call.

        After ``timeout`` seconds TimeoutError is raised.  A call given up that way,
        or by Ctrl-C, is detached: its lwp runs on, ends when the call does, and its
        result is dropped; the thread's next call gets a new lwp.
        """
        return self._run(func, args, cpu, timeout)

    def _run(
        self,
        func: Callable[..., Any],
        args: tuple,
        cpu: int | None,
        timeout: float | None,
        pid: int = 0,
    ) -> Any:
        """``run``, in the calling thread's lwp of process ``pid`` (``Process.run``)."""
        self._check_running()
        bound = -1 if cpu is None else self._cpu_index(cpu, "cpu")
        deadline = _deadline(timeout)
        call = (self._functions.pickle(func), args, None)
        return self._enter(lambda poll: self._lwps.call(pid, bound, call, deadline, poll))

    def _enter(self, call: Callable[[Callable[[], None]], tuple[bool, object]]) -> Any:
        """Make a call into the kernel with Ctrl-C held off (``call`` gets the poll
        that delivers a held one between its waits); its value, or its exception
        raised.  If the kernel stops meanwhile, why it stopped is raised: once its
        memory is the host's copy, what the call read there cannot be trusted."""
        with hold_interrupts() as hold:
            try:
                ok, value = call(hold.check)
            except BaseException as e:
                if self._stopped or isinstance(e, sync.Shutdown):
                    self._check_running()  # (a panic shuts the pool down first)
                raise
        if self._stopped:
            self._check_running()
        if ok:
            return value
        assert isinstance(value, BaseException)
        raise value

    def _release_lwps(self, pid: int) -> None:
        """End every host thread's lwp in process ``pid`` (its release)."""
        with hold_interrupts():
            self._lwps.release(pid)

    def xc_broadcast(
        self,
        flags: int,
        func: Callable[[Any, Any], Any],
        arg1: Any = None,
        arg2: Any = None,
        *,
        timeout: float | None = None,
    ) -> list[Any]:
        """xc_broadcast(9) from the host: run ``func(arg1, arg2)`` on every CPU, in
        parallel, and return each CPU's result in CPU order (the first exception is
        raised).  The fast path into a kernel: no lwp is created.  After ``timeout``
        seconds TimeoutError is raised and the cross-call is abandoned."""
        return self._xcall(flags, func, arg1, arg2, -1, timeout)

    def xc_unicast(
        self,
        flags: int,
        func: Callable[[Any, Any], Any],
        arg1: Any,
        arg2: Any,
        ci: int,
        *,
        timeout: float | None = None,
    ) -> Any:
        """xc_unicast(9) from the host: run ``func(arg1, arg2)`` on CPU ``ci`` and
        return its result (or raise its exception); ``timeout`` as in xc_broadcast."""
        return self._xcall(flags, func, arg1, arg2, self._cpu_index(ci, "ci"), timeout)[0]

    def _xcall(
        self, flags: int, func: Callable, arg1: Any, arg2: Any, target: int, timeout: float | None
    ) -> list:
        self._check_running()
        _int_arg(flags, "flags")
        deadline = _deadline(timeout)
        arena = self._arena
        with hold_interrupts() as hold:
            try:
                where = xcall.issue(
                    arena, flags, func, arg1, arg2, target, True, deadline, hold.check
                )
                results = xcall.collect_results(arena, where, target, deadline, hold.check)
            except sync.Shutdown:
                self._check_running()
                raise
        for ok, value in results:
            if not ok:
                assert isinstance(value, BaseException)
                raise value
        return [value for _, value in results]

    def _cpu_index(self, cpu: object, name: str) -> int:
        """A CPU index argument: an int naming one of this kernel's CPUs."""
        i = _int_arg(cpu, name)
        if not 0 <= i < self.ncpu:
            raise OSError(errno.EINVAL, f"no cpu{i}: this kernel has {self.ncpu} CPUs")
        return i

    def _check_running(self) -> None:
        if param.getpid() != self._pid:
            raise OSError(
                errno.ENXIO,
                f"rump kernel {self.prefix} belongs to process {self._pid}: "
                "a forked child cannot use its parent's kernel",
            )
        st = self._arena.state
        if st == _arena.RUNNING:
            return
        if st == _arena.PANICKED:
            self._stop_after_panic()
            raise self._panic  # type: ignore[misc]
        raise KernelHalted(errno.ENXIO, f"rump kernel {self.prefix} has halted")

    # -- halt, panic, cleanup ----------------------------------------------------------

    def halt(self, howto: int = 0) -> None:
        """cpu_reboot(howto): stop every CPU and unlink every named object.

        Unless RB_NOSYNC, CPUs get reboot.HALT_GRACE seconds to finish the lwps they run.
        RB_DUMP ends them at once with the PANIC status, as the seed's dump does.
        RB_HALT only changes the last message; the host is never taken down.
        Halting a halted kernel does nothing.
        """
        _int_arg(howto, "howto")
        if param.getpid() != self._pid:
            self._check_running()  # raises: not this process's kernel
        if self._arena.state == _arena.PANICKED:
            self._stop_after_panic()
            return
        reboot.begin_halt(self._arena, howto)
        self._reap(reboot.HALT_GRACE + 1.0)
        self._finish_halt()

    def _finish_halt(self) -> None:
        with self._lock:
            if self._stopped:
                return
            arena = self._arena
            howto = arena.w[_arena.H_HOWTO]
            kprintf(arena, "rump kernel halted\n" if howto & reboot.RB_HALT else "halted\n")
            arena.w[_arena.H_STATE] = _arena.HALTED
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt()

    def _reap(self, grace: float) -> None:
        """Wait up to ``grace`` seconds in all for the CPU processes to exit, then
        kill the ones still there."""
        procs = self._booted.procs
        deadline = clock.monotonic_ns() + int(grace * 1e9)
        for p in procs:
            p.join(max(0.0, (deadline - clock.monotonic_ns()) / 1e9))
        for p in procs:
            if p.exitcode is None:
                proc.kill(p.pid)
        for p in procs:
            p.join(5)

    def _add_stop_hook(self, hook: Callable[[Kernel], None]) -> None:
        """Have ``hook(kernel)`` run as this kernel stops (a halt or a panic), once its
        CPUs have stopped and before its memory is unmapped: what they left in it is
        still there to read.  It runs under the kernel's stop lock, so it must not
        call into the kernel, nor take a kernel lock (a dead CPU may hold one)."""
        self._stop_hooks.append(hook)

    def _write_trace(self, path: str | pathlib.PurePath) -> None:
        """The stop hook of ``boot(trace=PATH)``: what the CPUs recorded, to PATH."""
        try:
            summary = trace.write(self._arena, path)
        except OSError as e:  # the kernel still stops; dmesg (the host's copy) says why
            kprintf(self._arena, f"trace: cannot write {path!s}: {e.strerror}\n")
            return
        lost = sum(summary.dropped)
        kprintf(self._arena, f"trace: {summary.events} events to {summary.path}"
                + (f" ({lost} oldest dropped)\n" if lost else "\n"))  # fmt: skip

    def _remove_stop_hook(self, hook: Callable[[Kernel], None]) -> None:
        self._stop_hooks.remove(hook)

    def _release(self) -> None:
        """Unlink every named object of this kernel and unmap it; dmesg, state and
        the counters stay readable from a private copy."""
        self._stopped = True
        for hook in self._stop_hooks:
            hook(self)
        for server in self._servers:  # first: their sockets go, no new client comes
            server.close()
        self._arena.pool.shutdown()
        shm.unlink_prefix(self.prefix)
        init.close_channels(self._booted)
        self._arena.close()
        atexit.unregister(self._atexit)

    def _stop_after_panic(self) -> None:
        with self._lock:
            if self._panic is None:
                self._panic = panic_info(self._arena)
            if not self._stopped:
                self._reap(0)
                self._release()

    def _watch(self, _: object) -> None:
        """Turn a dead CPU into a kernel panic; stop the kernel once it has panicked."""
        arena = self._arena
        procs = self._booted.procs
        while True:
            dead = proc.wait_any(procs, WATCH_INTERVAL)
            st = arena.state
            if st == _arena.HALTED or self._stopped:
                return
            if st == _arena.HALTING:
                if len(dead) == len(procs):  # halted from inside the kernel
                    self._finish_halt()
                    return
                continue
            if dead and st != _arena.PANICKED:
                i = dead[0]
                record_panic(arena, i, f"cpu{i} died: {proc.exitcode_text(procs[i].exitcode)}")
            if dead or arena.state == _arena.PANICKED:
                self._stop_after_panic()
                return

    def _atexit(self) -> None:
        if param.getpid() != self._pid:
            return  # a forked child exiting: the kernel is its parent's
        try:
            self.halt(reboot.RB_NOSYNC)
        except Exception:  # noqa: BLE001 - the host is exiting; do what can be done
            for p in self._booted.procs:  # CPUs ignore SIGTERM, which multiprocess sends
                proc.kill(p.pid)
            shm.unlink_prefix(self.prefix)

    def __repr__(self) -> str:
        return f"<rumpmp.Kernel {self.prefix} ncpu={self.ncpu} {self.state}>"


#: Every kernel this process has booted (the pytest plugin checks each test's).
_booted: list[weakref.ref[Kernel]] = []


def booted_kernels(since: int = 0) -> list[Kernel]:
    """The kernels this process booted, in order, from the ``since``-th on (those
    still referenced: a kernel that is running always is, by its exit hook)."""
    return [k for ref in _booted[since:] if (k := ref()) is not None]


def boot_count() -> int:
    """How many kernels this process has booted (a mark for ``booted_kernels``)."""
    return len(_booted)


def boot(
    ncpu: int | None = None,
    *,
    verbose: bool | None = None,
    threads: bool | None = None,
    hostname: str | None = None,
    lockdebug: bool | None = None,
    hz: int | None = None,
    vfs: bool | None = None,
    sigmodel: int | None = None,
    lockstat: bool | None = None,
    trace: str | pathlib.PurePath | None = None,
    components: Iterable[module.rump_component] = (),
) -> Kernel:
    """Boot a new, independent kernel.  Unset parameters come from RUMP_NCPU,
    RUMP_VERBOSE, RUMP_THREADS, RUMP_LOCKDEBUG, RUMP_HZ, RUMP_VFS and the host, as
    in rump.  ``vfs=False`` leaves the file system out, as a rump kernel without
    rumpvfs: descriptors, pipes, poll and kqueue work, and the file system's calls
    (open, stat, mkdir, ...) answer ENOSYS.  ``sigmodel`` is what a signal to a
    rump process does (RUMP_SIGMODEL_*; rump_boot_setsigmodel on the host sets the
    default).

    ``lockstat=True`` (or RUMP_LOCKSTAT=1) counts lock contention (``k.lockstat()``);
    ``trace=PATH`` records what each CPU does and writes it to PATH as the kernel
    stops (``k.trace_dump(path)`` writes it on demand).

    The components the host provides (entry points ``rumpmp.components``) and
    ``components`` run, then the modules it provides load (``rumpmp.modules``); one
    that fails fails the boot with its name, and the kernel is halted."""
    components = list(components)
    if not all(isinstance(c, module.rump_component) for c in components):
        raise TypeError("components must be rump_component objects")
    cleanup()  # what kernels of dead hosts left behind (a SIGKILL of a process group)
    # Link the file system into the core (its hooks), at the first boot: a program
    # that only imports rumpmp does not load it.
    import rumpmp.vfs  # noqa: F401, PLC0415

    if trace is not None and not isinstance(trace, str | pathlib.PurePath):
        raise TypeError(f"trace must be a path, not {type(trace).__name__}")
    booted = init.rump__init(
        ncpu, verbose, threads, hostname, lockdebug, hz, vfs, sigmodel, lockstat, trace is not None
    )
    k = Kernel(booted)
    if trace is not None:
        k._add_stop_hook(lambda k: k._write_trace(trace))
    if not (components or module.provided()):
        return k  # nothing to run: spare the boot a call into the kernel
    try:
        k.run(module.components_init, components)
    except BaseException:
        with contextlib.suppress(Exception):
            k.halt()
        raise
    return k


_default: Kernel | None = None


def rump_init() -> Kernel:
    """The seed's entry point: boot the process-wide default kernel once and return
    it on later calls.  Once it has halted, the next call boots a fresh one: rumpmp
    keeps no global state that would need a host restart."""
    global _default
    if _default is None or _default.state != "running" or _default._pid != param.getpid():
        _default = boot()
    return _default


__all__ = ["Kernel", "KernelHalted", "RumpPanic", "boot", "rump_init"]


def orphaned_kernels() -> dict[str, int]:
    """Prefixes of kernels whose host process is gone, with their host pid."""
    found: dict[str, int] = {}
    for entry in shm.list_prefix(init.PREFIX_STEM):
        name = entry.removeprefix("sem.")
        prefix = name[: name.index(".") + 1] if "." in name else name
        try:
            pid = int(prefix[len(init.PREFIX_STEM) :].split("-", 1)[0])
        except ValueError:
            continue
        if not param.pid_alive(pid):
            found[prefix] = pid
    return found


def cleanup() -> list[str]:
    """Unlink every named object left by kernels whose host has died, and the
    semaphore files a process killed inside sem_open left half made."""
    removed: list[str] = []
    for prefix in orphaned_kernels():
        removed += shm.unlink_prefix(prefix)
    return removed + shm.unlink_stale_sem_temps()
