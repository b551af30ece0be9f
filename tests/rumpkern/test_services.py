"""The smaller services of the seed (issue 13): once(9) across CPUs, resource limits
inherited by rfork, the reboot system call, the boot flags and the version."""

from __future__ import annotations

import errno

import pytest

from rumpmp import kern
from tests.helpers import wait_for


def make_once():
    return kern.once_init(), kern.kmem_zalloc(8)


def run_it(arg, _):
    from rumpmp.kern import DELAY, RUN_ONCE

    once, counter = arg

    def init():
        counter[0] += 1  # only one CPU ever gets here
        DELAY(20_000)  # long enough that the others arrive while it runs
        return errno.EAGAIN

    return RUN_ONCE(once, init)


def test_run_once_runs_once_across_every_cpu_and_all_get_its_result(rump_kernel):
    arg = rump_kernel.run(make_once)
    assert rump_kernel.xc_broadcast(0, run_it, arg) == [errno.EAGAIN] * 4
    assert arg[1][0] == 1
    assert rump_kernel.run(lambda: run_it(arg, None)) == errno.EAGAIN  # later callers too


def raising_once(arg, _):
    from rumpmp.kern import RUN_ONCE

    once, counter = arg

    def init():
        counter[0] += 1
        if counter[0] == 1:
            raise ValueError("first try fails")
        return 0

    try:
        return RUN_ONCE(once, init)
    except ValueError:
        return "raised"


def test_a_raising_init_leaves_the_once_to_run_again(rump_kernel):
    arg = rump_kernel.run(make_once)
    assert rump_kernel.xc_unicast(0, raising_once, arg, None, 0) == "raised"
    assert rump_kernel.xc_unicast(0, raising_once, arg, None, 1) == 0
    assert rump_kernel.xc_unicast(0, raising_once, arg, None, 2) == 0
    assert arg[1][0] == 2


def test_resource_limits_per_process_inherited_by_rfork(rump_kernel):
    k = rump_kernel
    soft, hard = k.sys.getrlimit(kern.RLIMIT_NOFILE)
    assert 0 < soft <= hard
    k.sys.setrlimit(kern.RLIMIT_NOFILE, 64, hard)
    with k.process() as child:
        assert child.sys.getrlimit(kern.RLIMIT_NOFILE) == (64, hard)  # inherited
        child.sys.setrlimit(kern.RLIMIT_NOFILE, 16, 32)  # lowering the hard limit: anyone
        assert k.sys.getrlimit(kern.RLIMIT_NOFILE) == (64, hard)  # the parent keeps its own
        child.sys.setuid(1000)
        with pytest.raises(PermissionError):
            child.sys.setrlimit(kern.RLIMIT_NOFILE, 16, 64)  # raising it: root only
        for bad in [(kern.RLIMIT_NOFILE, 33, 32), (99, 1, 1), (kern.RLIMIT_NOFILE, -1, 5)]:
            with pytest.raises(OSError) as info:
                child.sys.setrlimit(*bad)
            assert info.value.errno == errno.EINVAL
    assert k.sys.getrlimit(kern.RLIMIT_NPROC)[0] > 0


def test_the_reboot_system_call_halts_for_root_only(rump_kernel):
    k = rump_kernel
    with k.process() as user:
        user.sys.setuid(1000)
        with pytest.raises(PermissionError):
            user.sys.reboot(kern.RB_HALT, None)
    assert k.state == "running"
    k.sys.reboot(kern.RB_HALT, None)
    wait_for(lambda: k.state == "halted", 30, "the kernel to halt")
    assert "rump kernel halting" in k.dmesg()


def flags(_, __):
    from rumpmp.kern import rump_boot_gethowto, rump_boot_sethowto, rump_getversion

    before = rump_boot_gethowto()
    rump_boot_sethowto(before | 0x4)
    return before, rump_boot_gethowto(), rump_getversion()


def test_boot_flags_and_version(rump_boot):
    quiet, verbose = rump_boot(1, verbose=False), rump_boot(1, verbose=True)
    assert quiet.xc_unicast(0, flags, None, None, 0) == (0, 0x4, 100)
    assert verbose.xc_unicast(0, flags, None, None, 0)[0] == kern.AB_VERBOSE


def load_symbols(_, __):
    out = []
    try:
        kern.ksyms_getval("rump_init")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
    kern.rump_kernelfsym_load({"rump_init": 0x1000, "hz": 100})
    try:
        kern.rump_kernelfsym_load({"again": 1})
    except OSError as e:
        out.append(errno.errorcode[e.errno])
    return out


def test_the_symbol_table_loads_once_and_every_cpu_resolves_against_it(rump_kernel):
    k = rump_kernel
    assert k.xc_unicast(0, load_symbols, None, None, 0) == ["ENOENT", "EBUSY"]
    assert k.xc_broadcast(0, lambda *_: kern.ksyms_getval("rump_init")) == [0x1000] * 4
    with pytest.raises(FileNotFoundError):
        k.run(kern.ksyms_getval, "nope")


def take_ids(pid, lid):
    kern.rump_lwproc_rfork(kern.RUMP_RFCFDG)
    try:
        kern.rump_allbetsareoff_setid(pid, lid)
        return kern.rump_sys_getpid(), kern.rump_lwproc_curlwp() is not None
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        kern.rump_lwproc_releaselwp()


def test_allbetsareoff_setid_gives_a_process_a_clients_pid(rump_kernel):
    assert rump_kernel.run(take_ids, 4242, 7) == (4242, True)
    assert rump_kernel.run(take_ids, 1, 1) == "EBUSY"  # initproc has it
    assert rump_kernel.run(take_ids, 0, 1) == "EINVAL"
