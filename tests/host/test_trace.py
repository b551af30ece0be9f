"""The kernel trace (issue 25): per-CPU rings written out as Chrome trace-event JSON,
with one track per CPU and a flow arrow from each wake-up to the run it caused."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import json

import pytest

from hypercalls import shm

PINGS = 20


def _setup():
    from rumpmp.kern import KM_SLEEP, cv_init, kmem_zalloc, mutex_init

    return mutex_init(name="pingpong"), cv_init("pingpong"), kmem_zalloc(8, KM_SLEEP)


def _pingpong(lock, cv, word, me: int, n: int) -> None:
    """Two lwps take turns: each waits on ``cv`` for its turn and signals the other's,
    so every turn is a wake-up from one CPU to the other."""
    from rumpmp.kern import (
        atomic_load_relaxed,
        atomic_store_relaxed,
        cv_broadcast,
        cv_timedwait,
        mutex_enter,
        mutex_exit,
    )

    mutex_enter(lock)
    try:
        for i in range(n):
            while atomic_load_relaxed(word) % 2 != me:
                if cv_timedwait(cv, lock, 1000):  # a bound: 10 s
                    raise AssertionError(f"no turn {i}")
            atomic_store_relaxed(word, atomic_load_relaxed(word) + 1)
            cv_broadcast(cv)
    finally:
        mutex_exit(lock)


def _trace_of(k, tmp_path, ncpu: int):
    lock, cv, word = k.run(_setup)
    with cf.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(k.run, _pingpong, lock, cv, word, i, PINGS, cpu=1 + i) for i in (0, 1)]
        for f in runs:
            f.result(timeout=60)
    path = tmp_path / "trace.json"
    summary = k.trace_dump(path)
    assert summary.path == str(path) and summary.events > 0 and len(summary.dropped) == ncpu
    return json.loads(path.read_text())


@pytest.mark.timeout(120)
def test_one_track_per_cpu_and_valid_events(rump_boot, tmp_path):
    k = rump_boot(4, trace=tmp_path / "at-halt.json")
    doc = _trace_of(k, tmp_path, 4)
    events = doc["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names == {c: f"cpu{c}" for c in range(4)}
    for e in events:
        assert e["ph"] in ("M", "X", "i", "s", "f") and e["pid"] == 1
        if e["ph"] != "M":
            assert e["tid"] in range(4) and isinstance(e["ts"], float) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
    runs = [e for e in events if e["ph"] == "X" and e["cat"] == "run"]
    assert {e["tid"] for e in runs} >= {1, 2}  # the ping-pong's CPUs
    for cpu in range(4):  # a CPU runs one lwp at a time: its run slices do not overlap
        mine = sorted((e["ts"], e["ts"] + e["dur"]) for e in runs if e["tid"] == cpu)
        assert all(a[1] <= b[0] + 1e-3 for a, b in itertools.pairwise(mine))
    assert doc["otherData"]["ncpu"] == 4 and doc["otherData"]["dropped"] == [0] * 4
    k.halt()
    at_halt = json.loads((tmp_path / "at-halt.json").read_text())  # boot(trace=PATH)
    assert len(at_halt["traceEvents"]) >= len(events)
    assert "trace: " in k.dmesg()


@pytest.mark.timeout(120)
def test_every_wakeup_flows_from_the_wakers_cpu_to_the_woken_lwps_run(rump_boot, tmp_path):
    k = rump_boot(4, trace=tmp_path / "t.json")
    events = _trace_of(k, tmp_path, 4)["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"] == "run"]
    cpu_of = {}
    for e in runs:  # an lwp lives on one CPU: all its runs are on one track
        assert cpu_of.setdefault(e["args"]["lwp"], e["tid"]) == e["tid"]
    starts = {(e["args"]["lwp"], e["ts"]) for e in runs}
    flows: dict[int, dict[str, dict]] = {}
    for e in events:
        if e["ph"] in ("s", "f"):
            flows.setdefault(e["id"], {})[e["ph"]] = e
    assert flows
    between = set()
    for pair in flows.values():
        s, f = pair["s"], pair["f"]  # each arrow has both ends
        waker, woken = s["args"]["waker"], s["args"]["woken"]
        assert s["tid"] == cpu_of[waker]  # from the waker's CPU ...
        assert any(r["tid"] == s["tid"] and r["ts"] <= s["ts"] <= r["ts"] + r["dur"] + 1e-3
                   for r in runs if r["args"]["lwp"] == waker)  # ... inside its run  # fmt: skip
        assert f["tid"] == cpu_of[woken] and (woken, f["ts"]) in starts  # to a run of the woken
        assert f["ts"] >= s["ts"] and f["bp"] == "e"
        between.add((s["tid"], f["tid"]))
    assert {(1, 2), (2, 1)} <= between  # the ping-pong woke across CPUs both ways


def _emit_marks(n: int) -> None:
    from rumpmp.rumpkern.base import kernhist
    from rumpmp.sys.kernhist import EV_XC_SEND

    for i in range(n):
        kernhist.emit(EV_XC_SEND, -7, i, 0)


@pytest.mark.timeout(60)
def test_a_full_ring_drops_the_oldest_events_and_says_how_many(rump_boot, tmp_path, monkeypatch):
    from rumpmp.rumpkern.base import kernhist
    from rumpmp.sys import kernhist as K

    monkeypatch.setenv("RUMP_TRACE_EVENTS", "16")
    k = rump_boot(1, trace=tmp_path / "t.json")
    k.run(_emit_marks, 100, cpu=0)
    got, dropped = kernhist.events(k._arena, 0)
    seqs = [e[K.V_SEQ] for e in got]
    assert len(got) == 16 and seqs == list(range(seqs[0], seqs[0] + 16))
    assert dropped == seqs[0] - 1 >= 100 - 16
    marks = [e[K.V_A] for e in got if e[K.V_LWP] == -7]
    assert marks and marks == list(range(marks[0], 100))  # only the newest are kept
    summary = k.trace_dump(tmp_path / "now.json")
    assert summary.dropped[0] >= dropped
    assert json.loads((tmp_path / "now.json").read_text())["otherData"]["dropped"][0] > 0


def test_a_panic_writes_the_trace_too(rump_boot, tmp_path):
    from rumpmp.rumpkern.base.prf import RumpPanic

    path = tmp_path / "panic.json"
    k = rump_boot(2, trace=path)
    with pytest.raises(RumpPanic):
        k.run(lambda: __import__("rumpmp.kern", fromlist=["panic"]).panic("on purpose"))
    k.halt()
    assert json.loads(path.read_text())["otherData"]["ncpu"] == 2
    assert shm.list_prefix(k.prefix) == []


def test_bad_input(rump_boot):
    import errno

    from tests.helpers import errno_of

    with pytest.raises(TypeError, match="trace must be a path"):
        rump_boot(1, trace=3)
    k = rump_boot(1)
    assert errno_of(k.trace_dump, "/tmp/never-written.json") == errno.EINVAL
