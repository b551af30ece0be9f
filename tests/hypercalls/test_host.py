"""The rest of the host layer on its own: segments, threads, clocks, the hold on
Ctrl-C."""

from __future__ import annotations

import os
import signal

import pytest

from hypercalls import clock, intr, shm, thread


@pytest.fixture
def prefix():
    name = f"rmp-test{os.getpid()}-host."
    yield name
    shm.unlink_prefix(name)
    assert shm.list_prefix(name) == []


def test_segments_are_created_shared_and_unmapped(prefix):
    seg = shm.Segment.create(prefix + "a", 8192)
    seg.buf[:5] = b"hello"
    assert bytes(shm.Segment.attach(prefix + "a").buf[:5]) == b"hello"
    with pytest.raises(FileExistsError):
        shm.Segment.create(prefix + "a", 8192)
    seg.close()
    assert shm.list_prefix(prefix) == [prefix + "a"]  # unmapped, still named
    assert shm.read_segment(prefix + "a", 5) == b"hello"
    shm.unlink(prefix + "a")
    with pytest.raises(FileNotFoundError):
        shm.read_segment(prefix + "a", 5)


def test_a_segment_the_host_cannot_hold_is_enomem_and_leaves_nothing(prefix):
    with pytest.raises(OSError) as info:
        shm.new_segment(prefix + "huge", shm.capacity() * 4)
    assert info.value.errno == 12  # ENOMEM
    assert shm.list_prefix(prefix) == []


def test_a_view_still_in_use_keeps_its_segment_mapped(prefix):
    seg = shm.Segment.create(prefix + "b", 4096)
    view = seg.buf.cast("q")
    view[0] = 42
    seg.close()  # the view is alive: the mapping must stay
    assert view[0] == 42


def test_threads_have_their_own_curlwp_and_owner_tokens():
    seen = {}

    def body(n):
        thread.set_curlwp(n)
        seen[n] = (thread.curlwp(), thread.owner_token())

    for t in [thread.thread_create(body, n, f"t{n}") for n in (5, 6)]:
        assert thread.thread_join(t, 10)
    assert seen == {5: (5, 5), 6: (6, 6)}
    assert thread.curlwp() == 0 and thread.owner_token() < 0  # the host thread has none


def test_an_absolute_sleep_ends_at_its_deadline_without_drift():
    start = clock.monotonic_ns()
    for tick in range(1, 6):
        deadline = start + tick * 10_000_000
        clock.clock_sleep(clock.CLOCK_ABSMONO, *divmod(deadline, 1_000_000_000))
        assert clock.monotonic_ns() >= deadline
    assert clock.monotonic_ns() - start < 5 * 10_000_000 + 500_000_000


def test_hold_interrupts_delays_sigint_to_the_end_of_the_hold():
    seen = []
    with pytest.raises(KeyboardInterrupt), intr.hold_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # give the handler every chance to run in here
            seen.append(1)
        seen.append("end of hold")
    assert seen[-1] == "end of hold"


def test_hold_check_delivers_a_held_sigint():
    with intr.hold_interrupts() as hold:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            for _ in range(1000):
                hold.check()


def test_spin_until_sees_a_condition_set_by_another_thread_and_gives_up_in_time():
    flag = []
    t = thread.thread_create(lambda _: flag.append(1), None, "setter")
    assert thread.spin_until(lambda: bool(flag), 2_000_000_000)
    t.join()
    start = clock.monotonic_ns()
    assert not thread.spin_until(lambda: False, 5_000_000)
    assert clock.monotonic_ns() - start < 1_000_000_000  # bounded by its budget
