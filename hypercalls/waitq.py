"""Linked lists in shared memory: the one place where queueing is done.

Every list that lives in shared words (waiters on a lock, run queues, sleep queues,
pending softints, callouts, work items, free blocks) is one of these, addressed the
same way:

- ``w`` is the array of 8-byte words (a memoryview cast to "q");
- a list is two words, its head at ``q`` and its tail at ``q + 1``;
- an element is the word index of its record in ``w`` (0 means none, so no record
  may start at word 0), and its link to the next element is the word ``e + link``;
- a doubly linked list also keeps the link to the previous element at
  ``e + link + 1``, which makes ``unlink`` O(1).

Whoever calls holds the lock that guards the list: these functions only move words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


def append(w: memoryview, q: int, e: int, link: int) -> None:
    """Add ``e`` at the tail."""
    w[e + link] = 0
    tail = w[q + 1]
    if tail:
        w[tail + link] = e
    else:
        w[q] = e
    w[q + 1] = e


def prepend(w: memoryview, q: int, e: int, link: int) -> None:
    """Add ``e`` at the head."""
    head = w[q]
    w[e + link] = head
    w[q] = e
    if not head:
        w[q + 1] = e


def pop(w: memoryview, q: int, link: int) -> int:
    """Take the head off; 0 if the list is empty."""
    e = w[q]
    if e:
        nxt = w[e + link]
        w[q] = nxt
        if not nxt:
            w[q + 1] = 0
        w[e + link] = 0
    return e


def remove(w: memoryview, q: int, e: int, link: int) -> bool:
    """Take ``e`` out wherever it is (a walk from the head); False if absent."""
    prev, cur = 0, w[q]
    while cur and cur != e:
        prev, cur = cur, w[cur + link]
    if not cur:
        return False
    nxt = w[e + link]
    if prev:
        w[prev + link] = nxt
    else:
        w[q] = nxt
    if w[q + 1] == e:
        w[q + 1] = prev
    w[e + link] = 0
    return True


def insert_sorted(w: memoryview, q: int, e: int, link: int, key: Callable[[int], int]) -> None:
    """Add ``e`` after every element whose ``key`` is not greater than its own, so
    the list stays sorted by key and FIFO among equal keys."""
    k = key(e)
    prev, cur = 0, w[q]
    while cur and key(cur) <= k:
        prev, cur = cur, w[cur + link]
    w[e + link] = cur
    if prev:
        w[prev + link] = e
    else:
        w[q] = e
    if not cur:
        w[q + 1] = e


def items(w: memoryview, q: int, link: int) -> Iterator[int]:
    """The elements from head to tail.  The caller may remove the element it was
    just given (the next one is read before it is yielded)."""
    e = w[q]
    while e:
        nxt = w[e + link]
        yield e
        e = nxt


def take_all(w: memoryview, q: int) -> int:
    """Empty the list and return its first element: the caller walks the detached
    chain with ``chain``."""
    e = w[q]
    w[q] = w[q + 1] = 0
    return e


def chain(w: memoryview, e: int, link: int) -> Iterator[int]:
    """A detached chain from ``e`` on (see ``take_all``), each element read before
    it is yielded so the caller may free it."""
    while e:
        nxt = w[e + link]
        yield e
        e = nxt


# -- doubly linked lists: O(1) unlink -------------------------------------------------


def push(w: memoryview, q: int, e: int, link: int) -> None:
    """Add ``e`` at the head of a doubly linked list."""
    head = w[q]
    w[e + link] = head
    w[e + link + 1] = 0
    if head:
        w[head + link + 1] = e
    else:
        w[q + 1] = e
    w[q] = e


def unlink(w: memoryview, q: int, e: int, link: int) -> None:
    """Take ``e`` out of a doubly linked list it is on."""
    nxt, prev = w[e + link], w[e + link + 1]
    if prev:
        w[prev + link] = nxt
    else:
        w[q] = nxt
    if nxt:
        w[nxt + link + 1] = prev
    else:
        w[q + 1] = prev
    w[e + link] = w[e + link + 1] = 0
