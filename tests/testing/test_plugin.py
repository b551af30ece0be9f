"""The pytest plugin (issue 12), through pytester: the marker and the options, the
header, the failure report with dmesg, the leak check, xdist and pytest-timeout."""

from __future__ import annotations

import pytest

from hypercalls import shm

pytest_plugins = ["pytester"]


def objects() -> set[str]:
    return set(shm.list_prefix("rmp-"))


@pytest.fixture
def run(pytester):
    """Run pytest in a child process on the given test file; its outcome."""

    def _run(source: str, *args: str, ini: str = "") -> pytest.RunResult:
        pytester.makepyfile(test_it=source)
        if ini:
            pytester.makeini(f"[pytest]\n{ini}\n")
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)

    return _run


@pytest.mark.timeout(120)
def test_marker_options_and_ini_set_the_kernel(run):
    result = run(
        """
import pytest

def test_default(rump_kernel):
    assert rump_kernel.ncpu == 2 and rump_kernel.state == "running"

@pytest.mark.rump(ncpu=3, lockdebug=True, hz=50)
def test_marked(rump_kernel):
    assert rump_kernel.ncpu == 3 and rump_kernel.params.lockdebug and rump_kernel.hz == 50

def test_factory(rump_boot):
    assert [rump_boot(1).ncpu, rump_boot().ncpu] == [1, 2]

seen = []

@pytest.mark.parametrize("i", range(2))
def test_session(rump_kernel_session, i):
    seen.append(rump_kernel_session.prefix)
    assert rump_kernel_session.state == "running" and len(set(seen)) == 1
""",
        "--rump-ncpu",
        "2",
    )
    result.assert_outcomes(passed=5)  # the session kernel is not taken for a leak
    result.stdout.fnmatch_lines(["rumpmp: ncpu=2 lockdebug=*"])
    ini = run(
        "def test_ini(rump_kernel):\n    assert rump_kernel.ncpu == 3\n",
        ini="rump_ncpu = 3\nrump_lockdebug = true",
    )
    ini.assert_outcomes(passed=1)
    ini.stdout.fnmatch_lines(["rumpmp: ncpu=3 lockdebug=on"])


@pytest.mark.timeout(120)
def test_a_failing_test_reports_dmesg_panic_and_seed(run):
    result = run(
        """
import pytest

def say(_, __):
    from rumpmp.kern import printf
    printf("hello from the kernel under test\\n")

@pytest.mark.rump(ncpu=2, perturb=77)
def test_fails(rump_kernel):
    rump_kernel.xc_broadcast(0, say)
    assert False, "on purpose"

def test_panics(rump_kernel):
    def boom():
        from rumpmp.kern import panic
        panic("on purpose")
    rump_kernel.run(boom)
"""
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- rumpmp kernel rmp-* -*",
            "state: running, 2 CPUs",
            "perturbation seed: 77 (replay with --rump-perturb 77)",
            "*hello from the kernel under test*",
        ]
    )
    result.stdout.fnmatch_lines(["state: panicked*", "panic: cpu*: on purpose"])


@pytest.mark.timeout(120)
def test_a_leaked_kernel_fails_its_test_and_is_cleaned_up(run):
    before = objects()
    result = run(
        """
import rumpmp

def test_leaks():
    rumpmp.boot(1)  # never halted

def test_next_is_clean():
    import os
    from hypercalls import shm
    assert shm.list_prefix(f"rmp-{os.getpid()}-") == []
"""
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_leaks*", "*was left running (halted now)*"]
    )
    assert objects() - before == set()


@pytest.mark.timeout(180)
def test_xdist_workers_name_their_objects(run):
    pytest.importorskip("xdist")
    result = run(
        """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_tagged(rump_kernel, i):
    assert rump_kernel.prefix.split("-")[3].startswith("gw")
""",
        "-n",
        "2",
        "--rump-ncpu",
        "1",
    )
    result.assert_outcomes(passed=4)


@pytest.mark.timeout(120)
def test_a_timed_out_test_leaves_no_kernel_behind(run, tmp_path):
    pids = tmp_path / "pids"
    before = objects()
    result = run(
        f"""
import time
import pytest

@pytest.mark.timeout(2)
def test_hangs(rump_kernel):
    open({str(pids)!r}, "w").write(" ".join(map(str, rump_kernel.cpu_pids())))
    time.sleep(60)
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])
    from tests.helpers import pid_gone, wait_for

    for pid in map(int, pids.read_text().split()):
        wait_for(lambda pid=pid: pid_gone(pid), 10, f"cpu process {pid} to end")
    assert objects() - before == set()
