"""The torture suite (issue 11): every type passes on a sound kernel, the busted lock
fails, seeds reproduce the perturbation decisions, the CLI reports as locktorture
does, campaigns list the failing seeds with a replay line that fails again."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

import rumpmp
from hypercalls import shm
from rumpmp import torture
from rumpmp.rumpkern.base import perturb
from rumpmp.torture import driver

ROOT = pathlib.Path(__file__).resolve().parents[2]


def stress(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rumpmp", "stress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def objects() -> set[str]:
    return set(shm.list_prefix("rmp-"))


@pytest.fixture
def no_leak():
    before = objects()
    yield
    assert objects() - before == set()


# -- every type, on a sound kernel and a broken lock -------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("type_", [t for t in torture.TYPES if t != "busted"])
def test_every_type_succeeds_on_four_cpus(type_, no_leak):
    r = torture.run(type_, ncpu=4, duration=2, seed=1)
    assert r.success, r.lines()
    assert r.writes.total > 0 and r.writes.min > 0  # every writer got work done
    if type_ in ("rw", "cv"):
        assert r.reads is not None and r.reads.total > 0 and r.reads.min > 0
    assert len(r.per_cpu) == 4 and all(c["acquisitions"] > 0 for c in r.per_cpu)


@pytest.mark.timeout(60)
def test_callout_reports_its_lateness_histogram():
    r = torture.run("callout", ncpu=2, duration=1.5, seed=3)
    hist = r.extra["callout lateness (ticks late: count)"]
    assert sum(hist.values()) == r.writes.total  # every callout that fired was timed


@pytest.mark.timeout(60)
def test_the_busted_lock_fails_and_names_what_was_seen(no_leak):
    """locktorture's lock_busted: a checker that cannot fail proves nothing."""
    r = torture.self_check(ncpu=4, duration=1.5)
    assert not r.success
    assert r.writes.fail > 0 and "!!!" in r.writes.line("busted", "Writes")
    from rumpmp.torture.lwps import HOLDER_CHANGED, TWO_HOLDERS

    kinds = {f.what for f in r.failures}
    assert kinds and kinds <= {TWO_HOLDERS, HOLDER_CHANGED}
    assert all(0 <= f.cpu < 4 and f.lwp > 0 for f in r.failures)


@pytest.mark.timeout(90)
def test_nested_locks_and_lockdebug_pass():
    r = torture.run("mutex", ncpu=2, duration=1.5, nested=2, lockdebug=True, seed=4)
    assert r.success, r.lines()
    r = torture.run("spin", ncpu=2, duration=1.5, nested=1, seed=4)
    assert r.success, r.lines()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("type_", ["mutex", "rw", "sleepq"])
def test_stutter_shuffle_and_freeze_cause_no_false_failures(type_):
    r = torture.run(type_, ncpu=4, duration=2.5, stutter=0.4, shuffle=0.3, freeze=0.2, seed=5)
    assert r.success, r.lines()


# -- perturbation from the seed ---------------------------------------------------------


def decisions(seed, _):
    from rumpmp.kern import cpu_index

    perturb.start(seed, cpu_index())
    for _ in range(500):
        perturb.decide()
    return perturb.stop()


@pytest.mark.timeout(60)
def test_a_seed_gives_each_cpu_the_same_decisions_and_another_seed_others(rump_boot):
    k = rump_boot(3)
    first, again, other = (k.xc_broadcast(0, decisions, s) for s in (11, 11, 12))
    assert first == again  # count, digest and trace, CPU by CPU
    assert [c["count"] for c in first] == [500] * 3
    assert all(a["trace"] != b["trace"] for a, b in zip(first, other, strict=True))
    assert len({c["digest"] for c in first}) == 3  # each CPU has a generator of its own
    assert {d & 3 for c in first for d in c["trace"]} == {0, 1, 2}  # nothing, yield, delay


@pytest.mark.timeout(90)
def test_runs_with_one_seed_record_the_same_decision_sequence():
    """What a seed reproduces: each CPU's sequence of decisions (compared as traces,
    not timings); how many points met them depends on the host's interleaving."""
    a, b = (torture.run("mutex", ncpu=2, duration=1, seed=21) for _ in range(2))
    c = torture.run("mutex", ncpu=2, duration=1, seed=22)
    for x, y, z in zip(a.per_cpu, b.per_cpu, c.per_cpu, strict=True):
        px, py, pz = x["perturbation"], y["perturbation"], z["perturbation"]
        n = min(len(px["trace"]), len(py["trace"]), len(pz["trace"]))
        assert n > 50  # contention met the slow paths
        assert px["trace"][:n] == py["trace"][:n]
        assert px["trace"][:n] != pz["trace"][:n]


def perturbing(_, __):
    return perturb.state.on


@pytest.mark.timeout(60)
def test_perturbation_is_off_unless_a_run_turns_it_on(rump_boot):
    k = rump_boot(2)
    assert k.xc_broadcast(0, perturbing) == [False, False]
    k.xc_broadcast(0, decisions, 1)  # start, decide, stop
    assert k.xc_broadcast(0, perturbing) == [False, False]


# -- the command line -------------------------------------------------------------------------

STATS = re.compile(r"^(\w+)-torture: (Writes|Reads ):  Total: (\d+)  Max/Min: (\d+)/(\d+) ")


@pytest.mark.timeout(120)
def test_cli_reports_as_locktorture_and_exits_0(no_leak):
    out = stress("--type", "rw", "--ncpu", "2", "--duration", "2", "--stat-interval", "1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("rw-torture:--- Start of test: type=rw ncpu=2 nwriters=2 nreaders=2")
    assert re.search(r"seed=\d+", lines[0])  # the random seed is always printed
    assert sum(bool(STATS.match(x)) for x in lines) >= 4  # an interval and the end, both roles
    assert lines[-1].startswith("rw-torture:--- End of test: SUCCESS: ")
    assert "busted self-check has not run" in out.stderr


@pytest.mark.timeout(120)
def test_cli_busted_fails_with_bangs_exit_1_and_a_replay_that_fails_again(no_leak):
    out = stress("--type", "busted", "--ncpu", "2", "--duration", "1")
    assert out.returncode == 1
    assert re.search(r"^busted-torture: Writes: .* Fail: [1-9]\d* !!!$", out.stdout, re.M)
    assert "--- End of test: FAILURE" in out.stdout
    replay = re.search(r"^busted-torture: replay: (.*)$", out.stdout, re.M).group(1)
    argv = shlex.split(replay)
    assert argv[:4] == ["python", "-m", "rumpmp", "stress"] and "--seed" in argv
    again = stress(*argv[4:])
    assert again.returncode == 1 and "End of test: FAILURE" in again.stdout


@pytest.mark.timeout(120)
def test_self_check_runs_first_and_silences_the_warning():
    out = stress("--self-check", "--type", "mutex", "--ncpu", "2", "--duration", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("self-check: the busted lock failed as it must")
    assert "self-check has not run" not in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--type", "nope"],
        ["--ncpu", "0"],
        ["--duration", "-1"],
        ["--nreaders", "2"],  # mutex has no readers
        ["--nested", "1", "--type", "rw"],
        ["--ray", "local"],  # only with --campaign
        ["--campaign", "0"],
        ["--seed", "x"],
    ],
)
def test_cli_bad_usage_exits_2_with_one_line(args):
    out = stress(*args, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("rumpmp: ")


def readme_json_example() -> dict:
    text = (ROOT / "docs" / "guide" / "stress.md").read_text()
    block = re.search(r"<!-- stress-json -->\s*```json\n(.*?)```", text, re.S)
    assert block, "the stress-testing guide documents the --json result"
    return json.loads(block.group(1))


def same_shape(doc, real, where="result") -> None:
    """The real JSON has exactly the documented keys, recursively."""
    if isinstance(doc, dict):
        assert isinstance(real, dict), where
        assert set(real) == set(doc), f"{where}: {sorted(set(real) ^ set(doc))}"
        for key, value in doc.items():
            if real[key] is not None and value is not None:
                same_shape(value, real[key], f"{where}.{key}")
    elif isinstance(doc, list) and doc and real:
        for item in real:
            same_shape(doc[0], item, f"{where}[]")
    else:
        assert type(real) is type(doc) or (isinstance(doc, float) and isinstance(real, int)), where


@pytest.mark.timeout(120)
def test_json_result_is_what_the_readme_documents(tmp_path):
    dest = tmp_path / "r.json"
    args = ["--type", "rw", "--ncpu", "2", "--duration", "1.5", "--stat-interval", "0.5", "--json"]
    out = stress(*args, str(dest))
    assert out.returncode == 0, out.stderr
    result = json.loads(dest.read_text())
    same_shape(readme_json_example(), result)
    assert result["success"] is True and result["type"] == "rw"
    assert len(result["per_cpu"]) == 2 and result["intervals"]
    trace = result["per_cpu"][0]["perturbation"]
    assert trace["count"] >= len(trace["trace"])


# -- campaigns ------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_a_campaign_lists_exactly_the_busted_seed_as_failing(tmp_path):
    dest = tmp_path / "c.json"
    out = stress(
        "--type", "mutex,mutex,busted,mutex", "--campaign", "4", "--ncpu", "2",
        "--duration", "1", "--seed", "700", "--json", str(dest), timeout=220,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    rows = [
        line.split()
        for line in out.stdout.splitlines()
        if re.match(r"^\s+\d+\s+\w+\s+(SUCCESS|FAILURE)", line)
    ]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("700", "mutex", "SUCCESS"),
        ("701", "mutex", "SUCCESS"),
        ("702", "busted", "FAILURE"),
        ("703", "mutex", "SUCCESS"),
    ]
    replays = out.stdout.split("replay the failing seeds with:\n")[1].strip().splitlines()
    assert len(replays) == 1 and "--seed 702" in replays[0]
    again = stress(*shlex.split(replays[0])[4:])
    assert again.returncode == 1 and "End of test: FAILURE" in again.stdout
    assert [r["success"] for r in json.loads(dest.read_text())["campaign"]] == [
        True,
        True,
        False,
        True,
    ]


@pytest.mark.timeout(300)
def test_a_campaign_runs_as_ray_tasks_on_a_local_ray():
    pytest.importorskip("ray", reason="the [cluster] extra")
    out = stress(
        "--type", "mutex,busted", "--campaign", "2", "--ncpu", "2", "--duration", "1",
        "--seed", "900", "--ray", "local", timeout=280,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "Ray at local" in out.stdout
    assert re.search(r"^\s+900\s+mutex\s+SUCCESS", out.stdout, re.M)
    assert re.search(r"^\s+901\s+busted\s+FAILURE", out.stdout, re.M)


# -- the Python API -----------------------------------------------------------------------


def test_every_type_has_its_lwps():
    from rumpmp.torture import lwps

    assert tuple(lwps.BUILTIN) == torture.TYPES
    assert all(lwps.BUILTIN[name].type_name() == name for name in torture.TYPES)


def test_run_checks_its_parameters():
    with pytest.raises(ValueError, match="type"):
        torture.run("nope")
    with pytest.raises(TypeError, match="ncpu must be an int"):
        torture.run("mutex", ncpu="4")
    with pytest.raises(TypeError, match="unknown parameters: bogus"):
        torture.run("mutex", bogus=1)
    with pytest.raises(ValueError, match="nreaders"):
        torture.run("mutex", nreaders=1)


def test_the_kernel_is_halted_even_when_the_host_gives_up(monkeypatch, no_leak):
    """A Ctrl-C in the middle of a run still halts its kernel."""
    seen: list[rumpmp.Kernel] = []
    real_boot = driver.boot

    def boot(*args, **kwargs):
        seen.append(real_boot(*args, **kwargs))
        return seen[-1]

    def interrupt(_snapshot):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "boot", boot)
    with pytest.raises(KeyboardInterrupt):
        torture.run("mutex", ncpu=2, duration=5, on_tick=interrupt)
    assert seen[0].state == "halted"
    assert os.getpid()  # the host is fine


def test_the_live_display_shows_progress_rates_and_violations():
    import io

    from rich.console import Console

    from rumpmp.torture.driver import Counts, Params, Snapshot
    from rumpmp.torture.live import Display

    display = Display(Params(type="mutex", ncpu=2, duration=4.0, seed=9))
    display.update(Snapshot(1.0, Counts(1000, 600, 400, 0), None, [600, 400]))
    display.update(Snapshot(2.0, Counts(3000, 1600, 1400, 2), None, [1600, 1400]))
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    console.print(display._render(Snapshot(3.0, Counts(5000, 2600, 2400, 2), None, [2600, 2400])))
    shown = console.file.getvalue()
    assert "mutex-torture, seed 9" in shown
    assert "cpu0" in shown and "1,000" in shown  # (2600 - 1600) per second
    assert "violations so far: 2 !!!" in shown


# -- soak (pytest -m soak; the short versions above run by default) --------------------------


@pytest.mark.soak
@pytest.mark.timeout(300)
@pytest.mark.parametrize("type_", [t for t in torture.TYPES if t != "busted"])
def test_soak_every_type_on_eight_cpus_with_every_perturbation(type_, no_leak):
    r = torture.run(
        type_, ncpu=8, duration=30, stutter=3, shuffle=2, freeze=1, lockdebug=True, stat_interval=10
    )
    assert r.success, r.lines()
    assert len(r.intervals) == 2 and r.intervals[-1].writes.total > r.intervals[0].writes.total


# -- no silent failure (issue 24) ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_stalled_run_says_which_lwps_did_not_finish(monkeypatch, no_leak):
    """A CPU frozen for the whole run (SIGSTOP) keeps its torture lwps from finishing:
    after STALL_TIMEOUT without progress the run fails, naming each lwp left, its CPU
    and what it was doing, in the report and the JSON."""
    import signal

    monkeypatch.setattr(driver, "STALL_TIMEOUT", 1.0)
    frozen = []
    real_watch, real_describe = driver._watch, driver._describe_stall

    def watch(k, *args):
        frozen.append(k.cpu_pids()[1])
        os.kill(frozen[0], signal.SIGSTOP)
        return real_watch(k, *args)

    def describe(k, p, t, nobody_can_run):
        try:
            return real_describe(k, p, t, nobody_can_run)
        finally:
            os.kill(frozen[0], signal.SIGCONT)

    monkeypatch.setattr(driver, "_watch", watch)
    monkeypatch.setattr(driver, "_describe_stall", describe)
    r = torture.run("mutex", ncpu=2, duration=0.5, seed=3, perturb=False)
    assert not r.success
    left = r.unfinished
    # Every lwp of the frozen CPU is left.  CPU 0's may be too: the frozen process
    # may hold what they need (the torture lock, seen in CI; or a spin lock of the
    # kernel's own, as a SIGSTOP lands anywhere).
    assert {u["index"] for u in left if u["cpu"] == 1} == {1, 3}, left
    assert {u["role"] for u in left} == {"writer"}
    assert all(u["lwp"] > 0 and u["state"] for u in left)
    text = "\n".join(r.lines())
    assert "did not finish" in text and "replay:" in text
    assert r.to_json()["unfinished"] == left


@pytest.mark.timeout(120)
def test_a_slow_host_only_makes_the_join_longer(monkeypatch):
    """Progress, not the clock, bounds the wait: lwps that keep moving are waited for
    even past STALL_TIMEOUT in all (here 0.3 s, shorter than the drain of a cv run)."""
    monkeypatch.setattr(driver, "STALL_TIMEOUT", 0.3)
    r = torture.run("cv", ncpu=2, duration=1, seed=5)
    assert r.success, r.lines()
    assert r.unfinished == []


def test_a_campaign_table_says_why_each_seed_failed():
    """Seen on a loaded machine: a seed reported FAILURE with nothing listed (a join
    that timed out was a "panic" the table did not show).  Every failing row says why."""
    from rumpmp.torture.cli import campaign_table

    base = {"type": "mutex", "elapsed": 1.0, "writes": {"total": 10}, "reads": None}
    rows = [
        {**base, "seed": 1, "success": False, "panic": "TimeoutError: join"},
        {
            **base,
            "seed": 2,
            "success": False,
            "unfinished": [{"lwp": 12, "cpu": 1, "state": "runnable", "holds": []}],
        },
        {"type": "mutex", "seed": 3, "success": False, "error": "no result within 130 s"},
        {**base, "seed": 4, "success": True, "failures": []},
    ]
    for r in rows:
        r["replay"] = f"python -m rumpmp stress --seed {r['seed']}"
    table = campaign_table(rows)
    assert "panic: TimeoutError: join" in table[1]
    assert "1 lwps did not finish (lwp 12 on cpu1: runnable)" in table[2]
    assert "no result within 130 s" in table[3]
    assert table[4].rstrip().endswith("-")
    assert [line.split()[-1] for line in table[-3:]] == ["1", "2", "3"]


# -- types of your own (issue 24) ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_user_type_runs_as_a_builtin_does(no_leak):
    from rumpmp.torture.examples import RacyCounter
    from tests.torture.user_types import Counter

    good = torture.run(Counter, ncpu=4, duration=1, seed=7)
    assert good.success, good.lines()
    assert good.params.type == "tests.torture.user_types:Counter"
    assert good.writes.total > 0 and len(good.per_cpu) == 4
    bad = torture.run(RacyCounter, ncpu=4, duration=1, seed=7)
    assert not bad.success
    assert [f.what for f in bad.failures] == ["count lost"]
    assert "--type rumpmp.torture.examples:RacyCounter" in bad.replay


@pytest.mark.timeout(60)
def test_an_undeclared_violation_is_reported_as_the_lwp_raising():
    from tests.torture.user_types import Undeclared

    r = torture.run(Undeclared, ncpu=2, duration=0.5, seed=1)
    assert not r.success and {f.what for f in r.failures} == {"torture lwp raised an exception"}


@pytest.mark.timeout(120)
def test_cli_takes_a_type_by_module_path():
    ok = stress("--type", "tests.torture.user_types:Counter", "--ncpu", "2", "--duration", "1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "End of test: SUCCESS" in ok.stdout
    bad = stress("--type", "rumpmp.torture.examples:RacyCounter", "--ncpu", "2", "--duration", "1")
    assert bad.returncode == 1
    assert "count lost" in bad.stdout and "replay: python -m rumpmp stress --type" in bad.stdout
    nope = stress("--type", "tests.torture.user_types:Nope", "--duration", "1")
    assert nope.returncode == 2 and "unknown torture type" in nope.stderr


@pytest.mark.timeout(120)
def test_cli_takes_a_type_by_entry_point(tmp_path):
    info = tmp_path / "counter_types-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: counter-types\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rumpmp.torture_types]\ncounter = tests.torture.user_types:Counter\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    argv = ["--type", "counter", "--ncpu", "2", "--duration", "1"]
    out = subprocess.run(
        [sys.executable, "-m", "rumpmp", "stress", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "End of test: SUCCESS" in out.stdout


PLUGIN_TEST = """
from rumpmp.torture.examples import RacyCounter
from tests.torture.user_types import Counter


def test_correct(rump_torture):
    assert rump_torture(Counter, ncpu=2, duration=0.5, seed=3).success


def test_racy(rump_torture):
    rump_torture(RacyCounter, ncpu=2, duration=0.5, seed=3)
"""


@pytest.mark.timeout(180)
def test_the_pytest_plugin_fails_a_test_with_the_replay_command(tmp_path):
    test_file = tmp_path / "test_user_torture.py"
    test_file.write_text(PLUGIN_TEST)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test_file)],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=ROOT,
    )
    assert "1 failed, 1 passed" in out.stdout, out.stdout[-2000:]
    assert "count lost" in out.stdout
    assert "replay: python -m rumpmp stress --type rumpmp.torture.examples:RacyCounter" in (
        out.stdout
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("RacyCounter", "count lost"),
        ("LostWakeup", "asleep on channel"),
        ("LockOrder", "did not finish"),
    ],
)
def test_the_example_bugs_are_found(monkeypatch, name, found, no_leak):
    """rumpmp.torture.examples: an atomicity violation, a lost wake-up and an AB/BA
    deadlock, each found by a parallel run of 2 s on 4 CPUs (the last two as a stall:
    30 s without progress by default, 2 s here)."""
    from rumpmp.torture import examples

    monkeypatch.setattr(driver, "STALL_TIMEOUT", 2.0)
    r = torture.run(getattr(examples, name), ncpu=4, duration=2, seed=11)
    assert not r.success
    assert found in "\n".join(r.lines())
    assert f"--type rumpmp.torture.examples:{name}" in r.replay
    if name == "LockOrder":
        held = sorted(k for u in r.unfinished for k in u["holds"])
        assert held == [0, 1]  # each lock held by one of the lwps that did not finish
        assert len(r.deadlock) == 2 and all("waits for lock" in line for line in r.deadlock)
        assert r.to_json()["deadlock"] == r.deadlock
