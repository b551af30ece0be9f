"""Signals as rump models them (issue 13): NetBSD's t_signals.c cases (sigraise,
sigignore, sigpanic) and the record model's interrupted sleeps."""

from __future__ import annotations

import concurrent.futures
import errno
import signal

import pytest

import rumpmp
from rumpmp import kern
from tests.helpers import call_in_process, wait_for


def set_model(model):
    kern.rump_boot_setsigmodel(model)


def kill_self(sig):
    kern.rump_sys_kill(kern.rump_sys_getpid(), sig)


@pytest.fixture
def caught():
    """The signals the host's handler has seen (SIGUSR1 and SIGUSR2)."""
    seen: list[int] = []
    old = {
        s: signal.signal(s, lambda sig, _: seen.append(sig))
        for s in (signal.SIGUSR1, signal.SIGUSR2)
    }
    yield seen
    for s, handler in old.items():
        signal.signal(s, handler)


def test_sigraise_delivers_to_the_host(rump_kernel, caught):
    """t_signals.c sigraise: the default model raises the signal in the host."""
    rump_kernel.run(kill_self, signal.SIGUSR2)
    wait_for(lambda: caught == [signal.SIGUSR2], 10, "the host's handler")


def test_sigignore_does_nothing(rump_kernel, caught):
    """t_signals.c sigignore."""
    rump_kernel.run(set_model, kern.RUMP_SIGMODEL_IGNORE)
    rump_kernel.run(kill_self, signal.SIGUSR2)
    rump_kernel.run(set_model, kern.RUMP_SIGMODEL_HOST)
    rump_kernel.run(kill_self, signal.SIGUSR1)  # a marker: sent after, pending at once
    wait_for(lambda: signal.SIGUSR1 in caught, 10, "the marker")
    assert caught == [signal.SIGUSR1]


def test_sigpanic_panics_the_kernel(rump_kernel):
    """t_signals.c sigpanic."""
    rump_kernel.run(set_model, kern.RUMP_SIGMODEL_PANIC)
    with pytest.raises(rumpmp.RumpPanic, match="signal 10 to pid"):
        rump_kernel.run(kill_self, signal.SIGUSR1)


def sleep_interruptibly():
    from rumpmp.kern import PCATCH, tsleep

    return tsleep("nobody wakes this", PCATCH, "sigwait", 3000)


def pending_then_clear(sig):
    before = kern.sigpending()
    kern.sigclear(sig)
    return before, kern.sigpending()


def cv_wait_interrupted():
    from rumpmp.kern import cv_init, cv_wait_sig, mutex_enter, mutex_exit, mutex_init

    m, cv = mutex_init(), cv_init("sig")
    mutex_enter(m)
    try:
        return cv_wait_sig(cv, m)
    finally:
        mutex_exit(m)


@pytest.mark.timeout(60)
def test_record_model_wakes_interruptible_sleeps_with_eintr(rump_kernel):
    k = rump_kernel
    k.run(set_model, kern.RUMP_SIGMODEL_RECORD)
    with k.process() as p, concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(k.run, call_in_process, p.pid, sleep_interruptibly, timeout=30)
        wait_for(sleeping.running, 10, "the sleeper to start")
        # Asleep or about to be: either way the pending signal ends the sleep.
        k.sys.kill(p.pid, signal.SIGUSR1)
        assert sleeping.result(timeout=30) == errno.EINTR  # not the 30 s timeout
        # The signal stays pending: the next interruptible wait ends at once.
        assert k.run(call_in_process, p.pid, cv_wait_interrupted) == errno.EINTR
        before, after = k.run(call_in_process, p.pid, pending_then_clear, signal.SIGUSR1)
        assert before == {signal.SIGUSR1} and after == set()


def test_kill_errors(rump_kernel):
    k = rump_kernel
    k.run(set_model, kern.RUMP_SIGMODEL_RECORD)
    with pytest.raises(ProcessLookupError):
        k.sys.kill(9999, signal.SIGUSR1)
    with pytest.raises(OSError) as info:
        k.sys.kill(k.sys.getpid(), 99)
    assert info.value.errno == errno.EINVAL
    k.sys.kill(k.sys.getpid(), 0)  # 0: only "does it exist"
    with k.process() as user, k.process() as other:
        user.sys.setuid(1000)
        with pytest.raises(PermissionError):
            user.sys.kill(other.pid, signal.SIGUSR1)  # other is root's
        user.sys.kill(user.pid, signal.SIGUSR1)  # its own: fine


def current_model():
    from rumpmp.rumpkern.base import arena

    return arena.current().w[arena.H_SIGMODEL]


@pytest.mark.timeout(60)
def test_setsigmodel_on_the_host_sets_the_model_of_the_next_boot(rump_boot):
    """rump(3): rump_boot_setsigmodel is called before rump_init."""
    from rumpmp.rumpkern.cred import signals

    saved = signals.boot_sigmodel
    try:
        kern.rump_boot_setsigmodel(kern.RUMP_SIGMODEL_IGNORE)
        assert rump_boot(1).run(current_model) == kern.RUMP_SIGMODEL_IGNORE
        k = rump_boot(1, sigmodel=kern.RUMP_SIGMODEL_RECORD)
        assert k.run(current_model) == kern.RUMP_SIGMODEL_RECORD
    finally:
        signals.boot_sigmodel = saved
    with pytest.raises(OSError) as e:
        rump_boot(1, sigmodel=9)
    assert e.value.errno == errno.EINVAL
