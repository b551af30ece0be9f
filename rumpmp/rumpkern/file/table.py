"""Fixed tables in shared memory (pipes, kqueues, descriptor tables, and the file
system's mounts): a record is free while its first word is 0."""

from __future__ import annotations

from rumpmp.rumpkern.base.arena import Arena


def claim(
    arena: Arena,
    lock_word: int,
    base: int,
    words: int,
    count: int,
    first: int = 0,
    zero: bool = True,
) -> int:
    """The number of a free record among ``count`` records of ``words`` words at word
    ``base`` (from ``first``), marked taken (its first word 1; the rest zeroed if
    ``zero``) under the spin lock whose slot is at ``lock_word``; -1 if all are taken."""
    w = arena.w
    lock = arena.spin_lock(lock_word)
    lock.enter_nowrap()
    try:
        for i in range(first, count):
            r = base + i * words
            if not w[r]:
                if zero:
                    w[r : r + words] = memoryview(bytes(words * 8)).cast("q")
                w[r] = 1
                return i
        return -1
    finally:
        lock.exit()
