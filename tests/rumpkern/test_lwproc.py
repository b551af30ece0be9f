"""Processes, lwp contexts and credentials: NetBSD's t_lwproc.c and t_threads.c,
ported to rumpmp's Python API (issue 3)."""

from __future__ import annotations

import errno

import pytest

import rumpmp
from rumpmp.rumpkern.base.arena import current
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.proc import P_NLWP, PID_MAX, T_NEXTPID


def makelwp():
    from rumpmp.kern import (
        rump_lwproc_curlwp,
        rump_lwproc_newlwp,
        rump_lwproc_newproc,
        rump_sys_getpid,
    )

    rump_lwproc_newlwp(0)
    with pytest.raises(ProcessLookupError) as info:
        rump_lwproc_newlwp(37)
    assert info.value.errno == errno.ESRCH
    l = rump_lwproc_curlwp()
    rump_lwproc_newproc()
    assert rump_lwproc_curlwp() != l
    l = rump_lwproc_curlwp()
    rump_lwproc_newlwp(rump_sys_getpid())
    assert rump_lwproc_curlwp() != l
    return rump_sys_getpid()


@pytest.mark.timeout(60)
def test_makelwp(rump_kernel):
    assert rump_kernel.run(makelwp) not in (-1, 0, 1)


def proccreds():
    from rumpmp.kern import (
        rump_lwproc_curlwp,
        rump_lwproc_newlwp,
        rump_lwproc_newproc,
        rump_lwproc_switch,
        rump_sys_getpid,
        rump_sys_getuid,
        rump_sys_setuid,
    )

    rump_lwproc_newproc()
    l1 = rump_lwproc_curlwp()
    rump_lwproc_newproc()
    l2 = rump_lwproc_curlwp()
    rump_sys_setuid(22)
    seen = [rump_sys_getuid()]
    rump_lwproc_switch(l1)
    seen.append(rump_sys_getuid())  # from its parent, proc0
    rump_sys_setuid(11)
    seen.append(rump_sys_getuid())
    rump_lwproc_switch(l2)
    seen.append(rump_sys_getuid())
    rump_lwproc_newlwp(rump_sys_getpid())
    seen.append(rump_sys_getuid())
    return seen


@pytest.mark.timeout(60)
def test_processes_have_their_own_credentials(rump_kernel):
    assert rump_kernel.run(proccreds) == [22, 0, 11, 22, 22]


def inherit():
    from rumpmp.kern import (
        rump_lwproc_newproc,
        rump_lwproc_releaselwp,
        rump_sys_getgroups,
        rump_sys_getppid,
        rump_sys_getuid,
        rump_sys_setgroups,
        rump_sys_setuid,
    )

    rump_lwproc_newproc()
    rump_sys_setgroups([5, 6])
    rump_sys_setuid(66)
    parent = rump_sys_getuid()
    rump_lwproc_newproc()
    child = (rump_sys_getuid(), rump_sys_getgroups(), rump_sys_getppid() > 1)
    with pytest.raises(PermissionError):
        rump_sys_setuid(0)  # no longer root
    rump_lwproc_releaselwp()  # the lwp, and the process with it
    return parent, child, rump_sys_getuid()


@pytest.mark.timeout(60)
def test_new_processes_inherit_credentials(rump_kernel):
    assert rump_kernel.run(inherit) == (66, (66, [5, 6], True), 0)


LOOPS = 128


def many_lwps():
    from rumpmp.kern import (
        rump_lwproc_curlwp,
        rump_lwproc_newlwp,
        rump_lwproc_newproc,
        rump_lwproc_releaselwp,
        rump_lwproc_switch,
        rump_sys_getpid,
        rump_sys_getuid,
        rump_sys_setuid,
    )

    rump_lwproc_newproc()
    mypid = rump_sys_getpid()
    rump_sys_setuid(375)
    l_orig = rump_lwproc_curlwp()
    lwps = []
    for _ in range(LOOPS):
        rump_lwproc_newlwp(mypid)
        lwps.append(rump_lwproc_curlwp())
        assert rump_sys_getuid() == 375
    t = tables(current())
    nlwp = t.w[t.find_proc(mypid) + P_NLWP]
    rump_lwproc_switch(l_orig)
    rump_lwproc_releaselwp()
    for l in lwps:
        rump_lwproc_switch(l)
        assert (rump_sys_getpid(), rump_sys_getuid()) == (mypid, 375)
        rump_lwproc_releaselwp()
        assert (rump_sys_getpid(), rump_sys_getuid()) == (0, 0)
    with pytest.raises(ProcessLookupError):
        rump_lwproc_newlwp(mypid)  # collected with its last lwp
    return nlwp, len(set(lwps))


@pytest.mark.timeout(60)
def test_a_process_holds_many_lwps_and_goes_with_the_last(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    assert rump_kernel.run(many_lwps) == (LOOPS + 1, LOOPS)
    assert rump_kernel.kmem_stats()[0] == before  # the credentials went too


def implicit_context():
    from rumpmp.kern import rump_lwproc_curlwp, rump_sys_getpid

    return rump_lwproc_curlwp(), rump_sys_getpid()


@pytest.mark.timeout(60)
def test_an_implicit_context_has_no_curlwp(rump_kernel):
    assert rump_kernel.run(implicit_context) == (None, 0)


def nullswitch():
    from rumpmp.kern import rump_lwproc_curlwp, rump_lwproc_newlwp, rump_lwproc_switch

    rump_lwproc_newlwp(0)
    l = rump_lwproc_curlwp()
    rump_lwproc_switch(None)
    assert rump_lwproc_curlwp() is None
    rump_lwproc_switch(l)  # would panic if l were still marked running
    return rump_lwproc_curlwp() == l


@pytest.mark.timeout(60)
def test_switching_to_null_marks_the_lwp_not_running(rump_kernel):
    assert rump_kernel.run(nullswitch)


def park_a_context(arg):
    """Leave an lwp context switched in on this thread; return its id."""
    from rumpmp.kern import rump_lwproc_curlwp, rump_lwproc_newlwp, rump_lwproc_switch

    rump_lwproc_newlwp(0)
    l = rump_lwproc_curlwp()
    if arg == "keep":
        return l
    rump_lwproc_switch(None)
    return l


def switch_to(l):
    from rumpmp.kern import rump_lwproc_curlwp, rump_lwproc_switch, rump_sys_getpid

    rump_lwproc_switch(l)
    return rump_lwproc_curlwp(), rump_sys_getpid()


def switch_to_kthread_lwp():
    from rumpmp.kern import rump_lwproc_switch

    rump_lwproc_switch(1)  # lwp0: not an lwp context


@pytest.mark.timeout(60)
def test_lwp_contexts_move_between_cpus_and_bad_switches_panic(rump_boot):
    k = rump_boot(2)
    # A context made on cpu0 and left behind when its thread ended is taken up on cpu1.
    l = k.run(park_a_context, "keep", cpu=0)
    assert k.run(switch_to, l, cpu=1) == (l, 0)
    with pytest.raises(rumpmp.RumpPanic, match="is not an lwp context"):
        k.run(switch_to_kthread_lwp)


def rfork_tables():
    from rumpmp.kern import (
        RUMP_RFCFDG,
        RUMP_RFFDG,
        rump_lwproc_curlwp,
        rump_lwproc_newproc,
        rump_lwproc_rfork,
        rump_lwproc_switch,
        rump_sys_close,
        rump_sys_pipe,
        rump_sys_read,
        rump_sys_write,
    )
    from rumpmp.rumpkern.file.descrip import open_fds

    rump_lwproc_newproc()
    parent = rump_lwproc_curlwp()
    r, w = rump_sys_pipe()
    seen = {}
    for name, flags in (("share", 0), ("copy", RUMP_RFFDG), ("clean", RUMP_RFCFDG)):
        rump_lwproc_rfork(flags)
        fds = open_fds(current())
        if fds:  # the child's descriptors name the parent's files: write through them
            rump_sys_write(w, name.encode())
        made = rump_sys_pipe()  # new descriptors: in the parent's table only if shared
        rump_lwproc_switch(parent)
        seen[name] = (fds, len(open_fds(current())) == 4)
        for fd in made if seen[name][1] else ():
            rump_sys_close(fd)
    data = rump_sys_read(r, 100)
    with pytest.raises(OSError) as info:
        rump_lwproc_rfork(RUMP_RFFDG | RUMP_RFCFDG)
    return (r, w), seen, data, info.value.errno


@pytest.mark.timeout(60)
def test_rfork_shares_copies_or_cleans_the_fd_table(rump_kernel):
    """rump_lwproc(3): 0 shares the table, RUMP_RFFDG copies it (the files are
    shared, the table is not), RUMP_RFCFDG starts clean."""
    fds, seen, data, err = rump_kernel.run(rfork_tables)
    assert seen["share"] == (list(fds), True)
    assert seen["copy"] == (list(fds), False)
    assert seen["clean"] == ([], False)
    assert data == b"sharecopy"  # both children wrote into the parent's pipe
    assert err == errno.EINVAL


def pid_wrap():
    from rumpmp.kern import rump_lwproc_newproc, rump_lwproc_switch, rump_sys_getpid

    t = tables(current())
    rump_lwproc_newproc()
    live = rump_sys_getpid()
    rump_lwproc_switch(None)
    t.w[t.hdr + T_NEXTPID] = PID_MAX - 1
    pids = []
    for _ in range(live + 1):
        rump_lwproc_newproc()
        pids.append(rump_sys_getpid())
        rump_lwproc_switch(None)
    return live, pids


@pytest.mark.timeout(60)
def test_pids_wrap_skipping_live_ones_and_never_zero(rump_kernel):
    live, pids = rump_kernel.run(pid_wrap)
    # After PID_MAX the counter wraps: 0 is never used, 1 (initproc) and 2 are live.
    assert live == 2 and pids == [PID_MAX, 3, 4]


def cred_refcounts():
    from rumpmp.kern import (
        kauth_cred_free,
        kauth_cred_get,
        kauth_cred_getgroups,
        kauth_cred_getrefcnt,
        kauth_cred_getuid,
        kauth_cred_hold,
        kauth_cred_ismember_gid,
        rump_cred_create,
        rump_cred_put,
        rump_lwproc_newproc,
    )

    cred = rump_cred_create(1000, 100, 2, [7, 8, 9])
    facts = [kauth_cred_getuid(cred), kauth_cred_getgroups(cred)]
    facts.append(kauth_cred_ismember_gid(cred, 8) and not kauth_cred_ismember_gid(cred, 9))
    kauth_cred_hold(cred)
    facts.append(kauth_cred_getrefcnt(cred))
    kauth_cred_free(cred)
    rump_cred_put(cred)
    with pytest.raises(OSError) as info:
        rump_cred_create(0, 0, 17, list(range(17)))
    facts.append(info.value.errno)
    shared = kauth_cred_get()  # proc0's: shared with every child
    before = kauth_cred_getrefcnt(shared)
    rump_lwproc_newproc()
    facts.append(kauth_cred_getrefcnt(shared) - before)
    return facts


@pytest.mark.timeout(60)
def test_credentials_are_reference_counted(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    assert rump_kernel.run(cred_refcounts) == [1000, [7, 8], True, 2, errno.EINVAL, 1]
    assert rump_kernel.kmem_stats()[0] == before  # the child shares proc0's credential


# -- t_threads.c ----------------------------------------------------------------------


def thread_body(arg):
    from rumpmp.kern import kthread_exit

    buf, i = arg
    buf[i] = 1
    kthread_exit(0)
    buf[i] = 2  # never reached


def threads_create_and_join():
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_NONE, kmem_zalloc, kthread_create, kthread_join

    buf = kmem_zalloc(8)
    lids = [
        kthread_create(PRI_NONE, KTHREAD_MUSTJOIN, None, thread_body, (buf, i), f"t{i}")
        for i in range(8)
    ]
    joined = [kthread_join(lid) for lid in lids]
    return joined, bytes(buf)


@pytest.mark.timeout(60)
def test_threads_create_and_join(rump_kernel):
    assert rump_kernel.run(threads_create_and_join) == ([0] * 8, b"\x01" * 8)


def _thread_and_lwp():
    import threading

    from hypercalls import thread

    return threading.get_ident(), thread.curlwp()


@pytest.mark.timeout(60)
def test_an_ended_lwps_thread_carries_the_next_lwp_of_its_cpu(rump_kernel):
    seen = [rump_kernel.run(_thread_and_lwp, cpu=2, timeout=30) for _ in range(20)]
    threads = {t for t, _ in seen}
    assert len(threads) < 20  # threads are reused...
    assert all(lid > 0 for _, lid in seen)  # ...each time as the lwp it carries
