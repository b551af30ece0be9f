"""stress --deterministic (issue 24): one torture lwp at a time, in an order the seed
decides (PCT), on virtual time.  The same seed gives the same schedule and result;
a saved schedule replays exactly; the example bugs are found and their schedules
minimized; a deadlock is reported at once with its cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rumpmp import torture
from rumpmp.torture import driver, examples
from tests.torture.test_torture import ROOT, stress
from tests.torture.user_types import Counter


def outcome(r):
    return (
        r.success,
        r.extra["schedule"]["digest"],
        r.writes.total,
        sorted((f.index, f.what, f.seen, f.expected, f.count) for f in r.failures),
        r.deadlock,
    )


@pytest.mark.timeout(120)
def test_a_seed_gives_the_same_schedule_and_failure_ten_times_of_ten():
    runs = [
        torture.run(examples.RacyCounter, ncpu=4, duration=1, seed=1, deterministic=True)
        for _ in range(10)
    ]
    assert not runs[0].success and [f.what for f in runs[0].failures] == ["count lost"]
    assert {outcome(r) == outcome(runs[0]) for r in runs} == {True}
    other = torture.run(examples.RacyCounter, ncpu=4, duration=1, seed=2, deterministic=True)
    assert other.extra["schedule"]["digest"] != runs[0].extra["schedule"]["digest"]


@pytest.mark.timeout(180)
def test_separate_processes_replay_a_seed_and_a_saved_schedule_exactly(tmp_path):
    args = ["--type", "rumpmp.torture.examples:RacyCounter", "--ncpu", "4"]
    args += ["--duration", "1", "--seed", "3", "--deterministic"]
    first = stress(*args, "--json", str(tmp_path / "first.json"))
    second = stress(*args, "--json", str(tmp_path / "second.json"))
    assert first.returncode == second.returncode == 1, first.stdout + first.stderr
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    assert a["extra"]["schedule"] == b["extra"]["schedule"]
    assert a["failures"] == b["failures"] and a["writes"] == b["writes"]
    replayed = stress(
        "--type",
        "rumpmp.torture.examples:RacyCounter",
        "--ncpu",
        "4",
        "--duration",
        "1",
        "--seed",
        "99",  # (the seed does not matter to a replay)
        "--replay-schedule",
        str(tmp_path / "first.json"),
        "--json",
        "-",
    )
    c = json.loads(replayed.stdout)
    assert c["extra"]["schedule"]["digest"] == a["extra"]["schedule"]["digest"]
    assert c["failures"] == a["failures"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("name", "found"),
    [("RacyCounter", "count lost"), ("LostWakeup", "asleep on channel"), ("LockOrder", "deadlock")],
)
def test_the_example_bugs_are_found_by_a_deterministic_campaign(name, found):
    kind = getattr(examples, name)
    for seed in range(1, 51):
        r = torture.run(kind, ncpu=4, duration=1, seed=seed, deterministic=True)
        if not r.success:
            break
    assert not r.success, f"{name} not found in 50 seeds"
    assert found in "\n".join(r.lines())
    again = torture.run(kind, ncpu=4, duration=1, seed=seed, deterministic=True)
    assert outcome(again) == outcome(r)


@pytest.mark.timeout(60)
def test_a_deadlock_is_reported_at_once_with_its_cycle(monkeypatch):
    monkeypatch.setattr(driver, "STALL_TIMEOUT", 60.0)  # (not the stall bound: the flag)
    r = torture.run(examples.LockOrder, ncpu=4, duration=1, seed=1, deterministic=True)
    assert not r.success and r.elapsed < 30
    assert len(r.deadlock) == 2 and r.extra["schedule"]["deadlock"] is True
    assert "--deterministic" in r.replay


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", [Counter, "mutex", "rw", "cv", "kmem", "sleepq"], ids=str)
def test_correct_types_never_fail_deterministically(kind):
    for seed in range(1, 9):  # (bench/deterministic.py runs 1,000 seeds of two of them)
        r = torture.run(kind, ncpu=4, duration=0.5, seed=seed, deterministic=True)
        assert r.success, r.lines()


@pytest.mark.timeout(240)
def test_minimize_keeps_a_failing_schedule_with_fewer_preemptions():
    r = torture.run(examples.RacyCounter, ncpu=4, duration=1, seed=1, deterministic=True)
    before = r.extra["schedule"]["overrides"]
    kept, smallest, runs = driver.minimize(r)
    assert not smallest.success and [f.what for f in smallest.failures] == ["count lost"]
    assert len(kept) < len(before) and runs >= 1
    assert smallest.extra["schedule"]["overrides"] == kept
    deadlock = torture.run(examples.LockOrder, ncpu=4, duration=1, seed=1, deterministic=True)
    kept, smallest, _ = driver.minimize(deadlock)
    assert kept == [] and smallest.deadlock  # the plain schedule deadlocks already


@pytest.mark.timeout(120)
def test_cli_minimize_prints_and_saves_the_smallest_schedule(tmp_path):
    args = ["--type", "rumpmp.torture.examples:LockOrder", "--ncpu", "4", "--duration", "1"]
    args += ["--seed", "1", "--deterministic", "--minimize"]
    out = subprocess.run(
        [sys.executable, "-m", "rumpmp", "stress", *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,  # (where the minimized schedule is written)
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 1
    assert "minimized in" in out.stdout and "0 preemptions" in out.stdout
    saved = json.loads((tmp_path / "minimized-schedule.json").read_text())
    assert saved["params"]["replay_schedule"] == "minimized-schedule.json"
    assert "--replay-schedule minimized-schedule.json" in out.stdout


def test_types_that_cannot_be_scheduled_deterministically_are_refused():
    with pytest.raises(ValueError, match="deterministic: the xcall type"):
        torture.run("xcall", deterministic=True)
    with pytest.raises(ValueError, match="wall time"):
        torture.run("mutex", deterministic=True, stutter=1.0)
