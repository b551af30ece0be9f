"""The command line (python -m rumpmp)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from hypercalls import shm


def rumpmp(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rumpmp", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.timeout(90)
def test_boot_prints_every_cpu_a_summary_and_halts():
    before = shm.list_prefix("rmp-")
    r = rumpmp("boot", "--ncpu", "8", "--timings")
    assert r.returncode == 0, r.stderr
    for i in range(8):
        assert f"cpu{i} at thinair0: rump virtual cpu" in r.stdout
    assert re.search(r"rumpmp: 8 CPUs up in [\d.]+ ms", r.stdout)
    assert "rump kernel halting..." in r.stdout
    assert "cpus" in r.stdout  # a timings line
    assert "Copyright" not in r.stdout
    assert shm.list_prefix("rmp-") == before


@pytest.mark.timeout(60)
def test_environment_and_verbose():
    r = rumpmp("boot", "--verbose", env={"RUMP_NCPU": "3"})
    assert r.returncode == 0, r.stderr
    assert "cpu2 at thinair0" in r.stdout and "cpu3 at" not in r.stdout
    assert "The NetBSD Foundation" in r.stdout


@pytest.mark.timeout(60)
def test_no_vfs_boots_without_the_file_system():
    """--no-vfs (or RUMP_VFS=0): no file system, so its component (memfs) never runs."""
    with_vfs = rumpmp("boot", "--ncpu", "2", "--verbose")
    assert with_vfs.returncode == 0 and "component memfs initialised" in with_vfs.stdout
    for r in (
        rumpmp("boot", "--ncpu", "2", "--verbose", "--no-vfs"),
        rumpmp("boot", "--ncpu", "2", "--verbose", env={"RUMP_VFS": "0"}),
    ):
        assert r.returncode == 0, r.stderr
        assert "cpu1 at thinair0" in r.stdout and "memfs" not in r.stdout
    bad = rumpmp("boot", "--ncpu", "2", env={"RUMP_VFS": "x"})
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "RUMP_VFS" in bad.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", ["0", "x", "-3"])
def test_bad_ncpu_is_one_line_and_exit_2(bad):
    r = rumpmp("boot", "--ncpu", bad)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "ncpu" in r.stderr


@pytest.mark.timeout(60)
def test_help_and_missing_command():
    r = rumpmp("boot", "--help")
    assert r.returncode == 0 and "--ncpu" in r.stdout and "--wait" in r.stdout
    r = rumpmp()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_wait_halts_cleanly_on_sigterm():
    p = subprocess.Popen(
        [sys.executable, "-m", "rumpmp", "boot", "--ncpu", "2", "--wait"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "SIGINT or SIGTERM halts" in line:
            break
    p.send_signal(signal.SIGTERM)
    rest, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert "rump kernel halting..." in rest


@pytest.mark.timeout(60)
def test_cleanup_removes_objects_of_dead_hosts():
    # A dead host's leftovers, made by hand: a segment named as a kernel would name it.
    from hypercalls.shm import Segment

    dead_pid = 2**22 + 12345  # above pid_max, so certainly not alive
    prefix = f"rmp-{dead_pid}-0-abcdef."
    Segment.create(prefix + "arena", 4096)
    r = rumpmp("cleanup")
    assert r.returncode == 0
    assert shm.list_prefix(prefix) == []
    assert "removed" in r.stdout


@pytest.mark.timeout(60)
def test_boot_evcnt_prints_the_kernel_counters():
    out = subprocess.run(
        [sys.executable, "-m", "rumpmp", "boot", "--ncpu", "2", "--evcnt"],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    ).stdout
    assert "sched / started" in out and "clock / hardclock" in out


# -- lockstat, the trace and top (issue 25) ---------------------------------------------


def _contend(n: int) -> None:
    from rumpmp.kern import mutex_enter, mutex_exit, mutex_init

    m = mutex_init(name="cli lock")
    for _ in range(n):
        mutex_enter(m)
        mutex_exit(m)


@pytest.mark.timeout(90)
def test_top_once_and_lockstat_read_a_server(rump_boot, tmp_path):
    k = rump_boot(2, lockstat=True)
    url = f"unix://{tmp_path}/sock"
    k.listen(url)
    k.run(_contend, 5)
    env = {"RUMP_SERVER": url}
    top = rumpmp("top", "--once", "--interval", "0.2", env=env)
    assert top.returncode == 0, top.stderr
    for c in range(2):
        assert re.search(rf"cpu{c}\s*│\s*(idle|\d+)\s*│\s*\d+\s*│", top.stdout), top.stdout
    assert "most contended locks" in top.stdout and "cli lock" in top.stdout
    table = rumpmp("lockstat", "-n", "50", env=env)
    assert table.returncode == 0, table.stderr
    (line,) = [ln for ln in table.stdout.splitlines() if "cli lock" in ln]
    assert line.split()[1] == "5"  # Count: the five acquisitions
    assert "test_cli.py:" in line  # where it was initialised


@pytest.mark.timeout(60)
def test_lockstat_says_when_the_server_does_not_count(rump_kernel, tmp_path):
    url = f"unix://{tmp_path}/sock"
    rump_kernel.listen(url)
    r = rumpmp("lockstat", env={"RUMP_SERVER": url})
    assert r.returncode == 1 and "RUMP_LOCKSTAT=1" in r.stderr
    assert rumpmp("top", "--once", "--interval", "0", env={"RUMP_SERVER": url}).returncode == 2


@pytest.mark.timeout(90)
def test_stress_lockstat_and_trace(tmp_path):
    path = tmp_path / "stress.json"
    args = ("stress", "--ncpu", "2", "--duration", "0.5", "--seed", "4", "--lockstat")
    r = rumpmp(*args, "--trace", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = [ln for ln in r.stdout.splitlines() if "torture lock 0" in ln]
    assert int(row.split()[1]) > 0 and "adaptive" in row
    assert "Wait%" in r.stdout and f"trace in {path}" in r.stdout
    events = json.loads(path.read_text())["traceEvents"]
    assert {e["args"]["name"] for e in events if e["name"] == "thread_name"} == {"cpu0", "cpu1"}
    usage = rumpmp("stress", "--trace", str(path), "--campaign", "2")
    assert usage.returncode == 2 and "--trace records one run" in usage.stderr


@pytest.mark.timeout(60)
def test_boot_trace_writes_at_the_halt(tmp_path):
    path = tmp_path / "boot.json"
    r = rumpmp("boot", "--ncpu", "2", "--trace", str(path), "--lockstat")
    assert r.returncode == 0, r.stderr
    assert f"events to {path}" in r.stdout and "Lock contention" in r.stdout
    assert json.loads(path.read_text())["otherData"]["ncpu"] == 2


# -- tools that read like NetBSD's (issue 26) ------------------------------------------


@pytest.mark.timeout(90)
def test_sysctl_prints_struct_nodes_as_netbsds_sysctl_does(rump_boot, tmp_path):
    k = rump_boot(2, hz=100)
    url = f"unix://{tmp_path}/sock"
    k.listen(url)
    env = {"RUMP_SERVER": url}
    r = rumpmp("sysctl", "kern.boottime", "kern.clockrate", "kern.proc2", "hw.ncpu", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # NetBSD: "kern.boottime = Fri Dec  4 18:57:30 2026"
    assert re.fullmatch(r"kern\.boottime = \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", lines[0])
    assert (
        lines[1]
        == "kern.clockrate = tick = 10000, tickadj = 0, hz = 100, profhz = 100, stathz = 100"
    )
    procs = [ln for ln in lines if ln.startswith("kern.proc2 = ")]
    assert len(procs) >= 2 and all(
        re.fullmatch(r"kern\.proc2 = pid=\d+ ppid=\d+ uid=\d+ gid=\d+ comm=.* rtime=[\d.e-]+", ln)
        for ln in procs
    )
    assert lines[-1] == "hw.ncpu = 2"
    every = rumpmp("sysctl", "-a", env=env).stdout.splitlines()
    names = [ln.split(" = ")[0] for ln in every]
    assert names.index("kern.ostype") < names.index("kern.hostname") < names.index("hw.ncpu")
    assert (
        names[0] == "kern.ostype"
        and "kern.clockrate = tick = 10000, tickadj = 0, hz = 100, profhz = 100, stathz = 100"
        in every
    )


@pytest.mark.timeout(60)
def test_a_closed_output_pipe_ends_a_command_quietly(rump_kernel, tmp_path):
    """`rumpmp sysctl -a | head -3`: no 'Broken pipe' lines, the status of SIGPIPE."""
    url = f"unix://{tmp_path}/sock"
    rump_kernel.listen(url)
    p = subprocess.Popen(
        [sys.executable, "-m", "rumpmp", "sysctl", "-a"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "RUMP_SERVER": url},
    )  # fmt: skip
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()  # as head does, having read its lines
    assert p.wait(30) == 141 and first.startswith(b"kern.")
    assert p.stderr.read() == b""


def test_version_and_the_console_script():
    r = rumpmp("--version")
    assert r.returncode == 0 and re.fullmatch(r"rumpmp \d+\.\d+\.\d+\n", r.stdout)
    script = os.path.join(os.path.dirname(sys.executable), "rumpmp")
    if not os.path.exists(script):
        pytest.skip(f"no console script next to {sys.executable}: rumpmp is not pip-installed")
    same = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert same.stdout == r.stdout


@pytest.mark.parametrize(
    "command",
    ["", "boot", "stress", "cleanup", "server", "halt", "sysctl", "ps", "lockstat", "top"],
)
def test_every_commands_help_ends_with_examples(command):
    r = rumpmp(*([command] if command else []), "--help")
    assert r.returncode == 0, r.stderr
    examples = r.stdout.split("examples:\n", 1)[1].splitlines()
    assert examples and all("rumpmp" in line for line in examples)
    if command:
        assert all(command in line for line in examples)
