"""hypercalls/waitq.py: the linked lists every shared-memory queue is made of."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercalls import shm, sync, waitq
from tests.helpers import forked

LINK = 1  # records of 4 words: [key, next, prev, spare]
Q = 2  # the list's head and tail words
RECORDS = 8  # records start here


def words(n: int = 64) -> memoryview:
    return memoryview(bytearray(8 * (RECORDS + 4 * n))).cast("q")


def rec(i: int) -> int:
    return RECORDS + 4 * i


def listed(w: memoryview) -> list[int]:
    return [(e - RECORDS) // 4 for e in waitq.items(w, Q, LINK)]


def test_append_pop_is_fifo_and_keeps_the_tail():
    w = words()
    for i in (1, 2, 3):
        waitq.append(w, Q, rec(i), LINK)
    assert listed(w) == [1, 2, 3] and w[Q + 1] == rec(3)
    assert waitq.pop(w, Q, LINK) == rec(1)
    waitq.prepend(w, Q, rec(4), LINK)
    assert listed(w) == [4, 2, 3]
    assert [waitq.pop(w, Q, LINK) for _ in range(4)] == [rec(4), rec(2), rec(3), 0]
    assert w[Q] == w[Q + 1] == 0


def test_remove_anywhere_fixes_head_and_tail():
    w = words()
    for i in (1, 2, 3):
        waitq.append(w, Q, rec(i), LINK)
    assert waitq.remove(w, Q, rec(3), LINK) and w[Q + 1] == rec(2)
    assert not waitq.remove(w, Q, rec(3), LINK)
    assert waitq.remove(w, Q, rec(1), LINK) and w[Q] == rec(2)
    waitq.append(w, Q, rec(5), LINK)
    assert listed(w) == [2, 5]


def test_insert_sorted_is_stable_and_items_survive_removing_the_current():
    w = words()
    for i, key in enumerate([3, 1, 3, 2, 1]):
        w[rec(i)] = key
        waitq.insert_sorted(w, Q, rec(i), LINK, lambda e: w[e])
    assert listed(w) == [1, 4, 3, 0, 2]  # by key, first come first within a key
    for e in waitq.items(w, Q, LINK):
        if w[e] == 3:
            waitq.remove(w, Q, e, LINK)
    assert listed(w) == [1, 4, 3] and w[Q + 1] == rec(3)


def test_take_all_detaches_the_chain():
    w = words()
    for i in (1, 2):
        waitq.append(w, Q, rec(i), LINK)
    first = waitq.take_all(w, Q)
    assert w[Q] == w[Q + 1] == 0
    assert list(waitq.chain(w, first, LINK)) == [rec(1), rec(2)]


def test_doubly_linked_push_and_unlink_in_any_order():
    w = words()
    for i in (1, 2, 3):
        waitq.push(w, Q, rec(i), LINK)
    assert listed(w) == [3, 2, 1]
    waitq.unlink(w, Q, rec(2), LINK)
    assert listed(w) == [3, 1] and w[rec(1) + LINK + 1] == rec(3)
    waitq.unlink(w, Q, rec(1), LINK)
    assert w[Q + 1] == rec(3)
    waitq.unlink(w, Q, rec(3), LINK)
    assert w[Q] == w[Q + 1] == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("apPrs"), st.integers(0, 15)), max_size=60))
def test_every_sequence_of_operations_matches_a_python_list(ops):
    w = words(16)
    for i in range(16):
        w[rec(i)] = i  # each record's key is its number

    def key(e: int) -> int:
        return w[e]

    model: list[int] = []
    for op, i in ops:
        e = rec(i)
        if op in "aPs" and i in model:
            continue
        if op == "a":
            waitq.append(w, Q, e, LINK)
            model.append(i)
        elif op == "p":
            got = waitq.pop(w, Q, LINK)
            assert got == (rec(model.pop(0)) if model else 0)
        elif op == "P":
            waitq.prepend(w, Q, e, LINK)
            model.insert(0, i)
        elif op == "r":
            assert waitq.remove(w, Q, e, LINK) == (i in model)
            if i in model:
                model.remove(i)
        else:  # "s": sorted by index, after equals
            waitq.insert_sorted(w, Q, e, LINK, key)
            pos = next((k for k, m in enumerate(model) if m > i), len(model))
            model.insert(pos, i)
        assert listed(w) == model
        assert w[Q + 1] == (rec(model[-1]) if model else 0)


# -- under contention from several processes -------------------------------------------

PROCS, ROUNDS = 4, 300


def _worker(prefix: str, me: int) -> None:
    seg = shm.Segment.attach(prefix + "list")
    w = seg.buf.cast("q")
    pool = sync.SyncPool.attach(prefix)
    lock = sync.Mutex.attach(pool, w[0])
    for n in range(ROUNDS):  # each process owns records me, me + PROCS, ...
        e = rec(me + PROCS * (n % 8))
        lock.enter()
        if not waitq.remove(w, Q, e, LINK):
            waitq.append(w, Q, e, LINK)
            w[1] += 1  # appends
        else:
            w[1] -= 1
        lock.exit()
    os._exit(0)


@pytest.mark.timeout(60)
def test_one_list_shared_by_four_processes_stays_whole():
    prefix = f"rmp-test{os.getpid()}-waitq."
    try:
        pool = sync.SyncPool.create(prefix, 8)
        seg = shm.Segment.create(prefix + "list", 8 * (RECORDS + 4 * 64))
        w = seg.buf.cast("q")
        w[0] = sync.Mutex(pool).slot
        procs = forked(_worker, [(prefix, i) for i in range(PROCS)])
        for p in procs:
            p.join(50)
            assert p.exitcode == 0
            p.close()
        members = list(waitq.items(w, Q, LINK))
        assert len(members) == len(set(members)) == w[1]
        assert w[Q + 1] == (members[-1] if members else 0)
    finally:
        shm.unlink_prefix(prefix)
