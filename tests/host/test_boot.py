"""Booting, running code on CPUs, halting, panics and cleanup (issue 2)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import hypercalls
import rumpmp
from hypercalls import shm
from tests.helpers import assert_no_leak, pid_gone, wait_for


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ncpu", [1, 2, 8])
def test_boot_runs_each_cpu_in_its_own_process(rump_boot, ncpu):
    k = rump_boot(ncpu)
    assert k.ncpu == ncpu
    pids = k.cpu_pids()
    assert len(set(pids)) == ncpu and os.getpid() not in pids
    log = k.dmesg()
    for i in range(ncpu):
        assert f"cpu{i} at thinair0: rump virtual cpu" in log
    for i in range(ncpu):
        assert k.run(os.getpid, cpu=i) == pids[i]


@pytest.mark.timeout(30)
def test_run_returns_results_and_propagates_exceptions(rump_kernel):
    assert rump_kernel.run(sum, [1, 2, 3]) == 6
    assert rump_kernel.run(lambda a, b: a * b, 6, 7, cpu=3) == 42

    def fails():
        raise ValueError("from inside the kernel")

    with pytest.raises(ValueError, match="from inside the kernel") as info:
        rump_kernel.run(fails, cpu=1)
    assert any("cpu1" in note for note in info.value.__notes__)


@pytest.mark.timeout(30)
def test_run_rejects_a_cpu_that_does_not_exist(rump_kernel):
    with pytest.raises(OSError) as info:
        rump_kernel.run(os.getpid, cpu=4)
    assert info.value.errno == errno.EINVAL


@pytest.mark.timeout(60)
def test_environment_parameters_are_honoured(monkeypatch):
    """(rumpmp.boot itself: the plugin's rump_boot would add the suite's rump_ncpu.)"""
    monkeypatch.setenv("RUMP_NCPU", "3")
    monkeypatch.setenv("RUMP_VERBOSE", "1")
    monkeypatch.setenv("RUMP_THREADS", "0")
    with rumpmp.boot() as k:
        assert k.ncpu == 3
        assert "The NetBSD Foundation" in k.dmesg()
        assert k.params.threads is False
    monkeypatch.setenv("RUMP_VERBOSE", "0")
    monkeypatch.setenv("RUMP_NCPU", "host")
    monkeypatch.delenv("RUMP_THREADS")
    with rumpmp.boot() as quiet:
        assert quiet.ncpu == hypercalls.param.getnhostcpu()
        assert "The NetBSD Foundation" not in quiet.dmesg()
        assert quiet.params.threads is True


@pytest.mark.timeout(30)
def test_bad_ncpu_is_refused(monkeypatch):
    for bad in (0, -1, 65):  # a wrong type ("x") is a TypeError: test_hardening
        with pytest.raises(OSError) as info:
            rumpmp.boot(bad)
        assert info.value.errno == errno.EINVAL


@pytest.mark.timeout(30)
def test_hypercall_version_mismatch_is_refused(monkeypatch):
    before = shm.list_prefix("rmp-")
    monkeypatch.setattr(hypercalls, "VERSION", hypercalls.VERSION + 1)
    with pytest.raises(OSError) as info:
        rumpmp.boot(1)
    assert info.value.errno == rumpmp.EPROGMISMATCH
    assert shm.list_prefix("rmp-") == before


@pytest.mark.timeout(30)
def test_halt_unlinks_everything_and_later_calls_fail(rump_boot):
    k = rump_boot(2)
    assert shm.list_prefix(k.prefix), "a running kernel has named objects"
    k.halt()
    assert_no_leak(k.prefix)
    assert k.state == "halted"
    assert "rump kernel halting..." in k.dmesg()
    assert k.dmesg().endswith("halted\n")
    with pytest.raises(rumpmp.KernelHalted) as info:
        k.run(os.getpid)
    assert info.value.errno == errno.ENXIO
    for pid in k.cpu_pids():
        assert pid_gone(pid)
    k.halt()  # halting twice is harmless


@pytest.mark.timeout(30)
def test_halt_flags(rump_boot):
    k = rump_boot(2)
    k.halt(rumpmp.RB_HALT | rumpmp.RB_NOSYNC)
    assert k.dmesg().endswith("rump kernel halted\n")
    d = rump_boot(1)
    d.halt(rumpmp.RB_DUMP)
    assert_no_leak(d.prefix)


@pytest.mark.timeout(30)
def test_killed_cpu_panics_the_kernel(rump_boot):
    k = rump_boot(3)
    victim = k.cpu_pids()[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: k.state == "panicked", 1.0, "the panic")
    with pytest.raises(rumpmp.RumpPanic) as info:
        k.run(os.getpid)
    assert info.value.cpu == 1
    assert "SIGKILL" in info.value.cause
    wait_for(lambda: not shm.list_prefix(k.prefix), 2.0, "cleanup after the panic")
    for pid in k.cpu_pids():
        wait_for(lambda pid=pid: pid_gone(pid), 2.0, f"cpu process {pid} to exit")


@pytest.mark.timeout(30)
def test_cpu_dying_under_a_call_raises_in_the_caller(rump_boot):
    k = rump_boot(2)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(rumpmp.RumpPanic, match="cpu1 died: signal SIGKILL"):
        k.run(die, cpu=1)


@pytest.mark.timeout(60)
def test_host_killed_leaves_nothing_behind(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time, rumpmp
        k = rumpmp.boot(2)
        print(k.prefix, *k.cpu_pids(), flush=True)
        time.sleep(60)
        """
    )
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    prefix, *pids = host.stdout.readline().split()
    assert shm.list_prefix(prefix)
    host.kill()
    host.wait()
    for pid in map(int, pids):
        wait_for(lambda pid=pid: pid_gone(pid), 2.0, f"cpu process {pid} to exit")
    wait_for(lambda: not shm.list_prefix(prefix), 2.0, "the named objects to go")


@pytest.mark.timeout(60)
def test_two_kernels_are_independent(rump_boot):
    a, b = rump_boot(2), rump_boot(3)
    assert a.prefix != b.prefix
    assert set(a.cpu_pids()).isdisjoint(b.cpu_pids())
    assert a.run(os.getpid, cpu=1) == a.cpu_pids()[1]
    assert b.run(os.getpid, cpu=2) == b.cpu_pids()[2]
    a.halt()
    assert_no_leak(a.prefix)
    assert b.run(lambda: 7) == 7
    assert shm.list_prefix(b.prefix)


@pytest.mark.timeout(60)
def test_rump_init_boots_once_and_again_after_halt():
    k = rumpmp.rump_init()
    try:
        assert rumpmp.rump_init() is k
        k.halt()
        again = rumpmp.rump_init()
        assert again is not k and again.state == "running"
        again.halt()
    finally:
        k.halt()
    assert_no_leak(k.prefix)


@pytest.mark.timeout(30)
def test_boot_timings_cover_every_phase(rump_kernel):
    assert set(rump_kernel.timings) == {"parameters", "arena", "cpus", "kthreads"}
    assert all(ms >= 0 for ms in rump_kernel.timings.values())


# -- the fork server (issue 26) ----------------------------------------------------------


def _log_something() -> str:
    import logging

    logging.getLogger("rumpmp.test").warning("from a CPU")  # takes logging's module lock
    return logging.getLogger("rumpmp.test").name


@pytest.mark.timeout(60)
def test_a_lock_another_host_thread_holds_is_not_held_in_the_cpus(rump_boot):
    """A CPU forked from the host while another host thread held logging's lock
    would find it held forever; the CPUs come from a fork server with one thread."""
    import logging
    import threading

    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with logging._lock:  # (logging's module lock, as getLogger takes it)
            holding.set()
            done.wait(50)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        k = rump_boot(2)
        for cpu in (0, 1):
            assert k.run(_log_something, cpu=cpu, timeout=20) == "rumpmp.test"
    finally:
        done.set()
        holder.join(10)


@pytest.mark.timeout(60)
def test_boot_forks_no_thread_of_a_threaded_host(tmp_path):
    """Python 3.12 warns when a process with threads forks; booting (a second time,
    after the first kernel's threads started, and with a thread of the program's
    own) forks none."""
    script = (
        "import threading, warnings, rumpmp\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait, daemon=True).start()\n"
        "for _ in range(2):\n"
        "    with rumpmp.boot(2) as k:\n"
        "        assert k.run(sum, [1, 2]) == 3\n"
        "stop.set()\n"
        "print('ok')\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", script],
        capture_output=True, text=True, timeout=50, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.timeout(60)
def test_a_fork_server_that_died_is_replaced(rump_boot):
    """SIGKILL the fork server: the next boot starts a new one and boots."""
    import signal

    from hypercalls import forkserver

    rump_boot(1).halt()
    dead = forkserver.server_pid()
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    k = rump_boot(2)
    assert k.run(sum, [2, 3]) == 5
    assert forkserver.server_pid() not in (None, dead)
