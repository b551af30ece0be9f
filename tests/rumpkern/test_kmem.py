"""kmem(9): the shared kernel heap."""

from __future__ import annotations

import errno
import itertools
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rumpmp
from rumpmp.rumpkern.mem import kmem


def alloc_and_fill(size: int, byte: int):
    from rumpmp.kern import kmem_alloc

    buf = kmem_alloc(size)
    buf[:] = bytes([byte]) * size
    return buf


def read_back(buf) -> bytes:
    return bytes(buf)


@pytest.mark.timeout(30)
def test_buffer_is_shared_between_cpus_and_host(rump_kernel):
    buf = rump_kernel.run(alloc_and_fill, 100, 0xAB, cpu=0)
    assert len(buf) == 100
    assert rump_kernel.run(read_back, buf, cpu=3) == b"\xab" * 100
    assert bytes(buf) == b"\xab" * 100
    struct.pack_into("<q", buf, 8, -42)  # the host writes through the buffer protocol
    assert rump_kernel.run(lambda b: struct.unpack_from("<q", b, 8)[0], buf, cpu=2) == -42
    view = memoryview(buf)
    assert view.nbytes == 100 and not view.readonly


@pytest.mark.timeout(30)
def test_zalloc_zeroes_and_free_returns_memory(rump_kernel):
    def cycle():
        from rumpmp.kern import kmem_alloc, kmem_free, kmem_zalloc

        dirty = kmem_alloc(4000)
        dirty[:] = b"\xff" * 4000
        kmem_free(dirty, 4000)
        clean = kmem_zalloc(4000)
        zero = bytes(clean) == bytes(4000)
        kmem_free(clean, 4000)
        return zero

    before = rump_kernel.kmem_stats()[0]
    assert rump_kernel.run(cycle) is True
    assert rump_kernel.kmem_stats()[0] == before


@pytest.mark.timeout(30)
def test_nosleep_exhaustion_returns_none(rump_boot, monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "64k")

    def exhaust():
        from rumpmp.kern import KM_NOSLEEP, kmem_alloc, kmem_free

        bufs = []
        while (buf := kmem_alloc(1000, KM_NOSLEEP)) is not None:
            bufs.append(buf)
        for buf in bufs:
            kmem_free(buf, 1000)
        return len(bufs)

    k = rump_boot(1)
    n = k.run(exhaust)
    assert 30 <= n <= 64


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "misuse, message",
    [
        (lambda kmem_alloc, kmem_free: kmem_free(kmem_alloc(64), 65), "size mismatch"),
        (lambda kmem_alloc, kmem_free: [kmem_free(b, 64) for b in [kmem_alloc(64)] * 2], "twice"),
    ],
)
def test_misuse_panics(rump_boot, misuse, message):
    def go():
        from rumpmp.kern import kmem_alloc, kmem_free

        misuse(kmem_alloc, kmem_free)

    k = rump_boot(2)
    with pytest.raises(rumpmp.RumpPanic, match=message):
        k.run(go, cpu=1)


@pytest.mark.timeout(30)
def test_bad_arguments_are_einval(rump_kernel):
    def bad(size, flags):
        from rumpmp.kern import kmem_alloc

        kmem_alloc(size, flags)

    for size, flags in [(0, kmem.KM_SLEEP), (-5, kmem.KM_SLEEP), (8, 0x40)]:
        with pytest.raises(OSError) as info:
            rump_kernel.run(bad, size, flags)
        assert info.value.errno == errno.EINVAL


@pytest.fixture(scope="module")
def heap_kernel():
    k = rumpmp.boot(1)
    yield k
    k.halt()


@pytest.mark.timeout(120)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5000), st.integers(0, 99)), max_size=60))
def test_live_allocations_never_overlap(heap_kernel, ops):
    arena = heap_kernel._arena  # the host uses the heap directly: same lock, same memory
    baseline = heap_kernel.kmem_stats()[0]  # what the kernel itself holds (proc0's cred)
    live: list[tuple[object, int]] = []
    for is_alloc, size, pick in ops:
        if is_alloc or not live:
            buf = kmem.kmem_alloc_in(arena, size, kmem.KM_NOSLEEP)
            assert buf is not None
            buf[:] = bytes([len(live) % 256]) * size
            live.append((buf, len(live) % 256))
        else:
            buf, _ = live.pop(pick % len(live))
            kmem.kmem_free_in(arena, buf, len(buf))
        spans = sorted((b.offset, b.offset + len(b)) for b, _ in live)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    for buf, fill in live:
        assert bytes(buf) == bytes([fill]) * len(buf)  # nobody else wrote into it
        kmem.kmem_free_in(arena, buf, len(buf))
    assert heap_kernel.kmem_stats()[0] == baseline


def test_kmem_outside_a_kernel_is_enxio():
    with pytest.raises(OSError) as info:
        kmem.kmem_alloc(8)
    assert info.value.errno == errno.ENXIO
    assert os.getpid()  # the host is unharmed


# -- per-CPU caches (issue 4) -------------------------------------------------------


def hold_random_blocks(arg):
    """Allocate and free small blocks at random, keep 50 live; record them."""
    import random

    from rumpmp.kern import cpu_index, kmem_alloc, kmem_free

    out, slot = arg
    rng = random.Random(slot)
    live = []
    for _ in range(400):
        if live and rng.random() < 0.4:
            buf = live.pop(rng.randrange(len(live)))
            kmem_free(buf, len(buf))
        else:
            live.append(kmem_alloc(rng.randint(1, 1000)))
    for i, buf in enumerate(live[:50]):
        struct.pack_into("<qqq", out, (slot * 50 + i) * 24, buf.offset, len(buf), cpu_index())
    return live[:50]


def blocks_on_every_cpu(ncpu):
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kmem_zalloc, kthread_create, kthread_join

    out = kmem_zalloc(ncpu * 50 * 24)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, hold_random_blocks, (out, cpu), "k")
        for cpu in range(ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    return [struct.unpack_from("<qqq", out, i * 24) for i in range(ncpu * 50)]


@pytest.mark.timeout(120)
def test_per_cpu_caches_never_hand_out_overlapping_or_foreign_memory(rump_boot):
    k = rump_boot(8)
    blocks = k.run(blocks_on_every_cpu, 8)
    arena = k._arena
    off, size = arena.region("kmem")
    base, end = off + kmem._HDR_BYTES, off + size
    spans = sorted((o, o + n) for o, n, _ in blocks)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    for o, n, _ in blocks:
        tag, req = arena.w[(o - kmem._BLK_HDR) // 8], arena.w[(o - kmem._BLK_HDR) // 8 + 1]
        assert base <= o and o + n <= end  # inside the heap's block space
        assert (tag >> 8) & 0xFF == kmem.ST_ALLOC and req == n
    assert sorted({cpu for *_, cpu in blocks}) == list(range(8))
    assert all(hits > 0 for hits in kmem.kmem_cache_hits(arena))


def dirty_block():
    from rumpmp.kern import kmem_alloc

    buf = kmem_alloc(200)
    buf[:] = b"\xff" * 200
    return buf


def free_then_zalloc(buf):
    from rumpmp.kern import kmem_free, kmem_zalloc

    kmem_free(buf, 200)  # into this CPU's cache
    again = kmem_zalloc(200)
    return again.offset == buf.offset, bytes(again) == bytes(200)


@pytest.mark.timeout(60)
def test_a_block_freed_on_one_cpu_is_reused_zeroed_on_another(rump_kernel):
    buf = rump_kernel.run(dirty_block, cpu=0)
    assert rump_kernel.run(free_then_zalloc, buf, cpu=1) == (True, True)


def double_free_cached():
    from rumpmp.kern import kmem_alloc, kmem_free

    buf = kmem_alloc(64)
    kmem_free(buf, 64)
    kmem_free(buf, 64)


@pytest.mark.timeout(60)
def test_double_free_of_a_cached_block_panics(rump_boot):
    k = rump_boot(1)
    with pytest.raises(rumpmp.RumpPanic, match="not allocated"):
        k.run(double_free_cached)


def exhaust_small():
    from rumpmp.kern import KM_NOSLEEP, kmem_alloc, kmem_free

    held = []
    while (buf := kmem_alloc(500, KM_NOSLEEP)) is not None:
        held.append(buf)
    for buf in held:
        kmem_free(buf, 500)
    again = [kmem_alloc(500, KM_NOSLEEP) for _ in range(len(held))]
    return len(held), sum(b is not None for b in again)


@pytest.mark.timeout(60)
def test_nosleep_exhaustion_with_caches_gives_none_and_recovers(rump_boot, monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "256k")
    k = rump_boot(2)
    held, again = k.run(exhaust_small, cpu=1)
    assert held > 100 and again == held  # the cache gave every block back


def pairs_without_the_heap_lock(n):
    from rumpmp.kern import kmem_alloc, kmem_free
    from rumpmp.rumpkern.base.arena import current

    arena = current()
    kmem_free(kmem_alloc(64), 64)  # warm: the class holds blocks now
    hits, locks = kmem.kmem_cache_hits(arena)[0], kmem.kmem_heap_locks(arena)
    for _ in range(n):
        kmem_free(kmem_alloc(64), 64)
    return kmem.kmem_cache_hits(arena)[0] - hits, kmem.kmem_heap_locks(arena) - locks


@pytest.mark.timeout(60)
def test_the_fast_path_takes_no_heap_lock_and_the_host_always_does(rump_boot):
    k = rump_boot(1)
    arena = k._arena
    hits, locks = k.run(pairs_without_the_heap_lock, 200, cpu=0)
    assert hits == 200 and locks == 0
    before = kmem.kmem_cache_hits(arena), kmem.kmem_heap_locks(arena)
    kmem.kmem_free_in(arena, kmem.kmem_alloc_in(arena, 64), 64)  # the host holds no CPU
    assert kmem.kmem_cache_hits(arena) == before[0]
    assert kmem.kmem_heap_locks(arena) >= before[1] + 2


def cached_1k_blocks(arena, cpu):
    """Blocks in the 1 KiB class of a CPU's cache (where fill_cache's blocks go)."""
    return arena.w[kmem._class(kmem._cache(arena, cpu), 10)]


def fill_cache(n):
    from rumpmp.kern import kmem_alloc, kmem_free

    bufs = [kmem_alloc(500) for _ in range(n)]
    for buf in bufs:
        kmem_free(buf, 500)


def count_nosleep(size):
    from rumpmp.kern import KM_NOSLEEP, kmem_alloc, kmem_free

    held = []
    while (buf := kmem_alloc(size, KM_NOSLEEP)) is not None:
        held.append(buf)
    for buf in held:
        kmem_free(buf, size)
    return len(held)


def poke():
    from rumpmp.kern import kmem_alloc, kmem_free

    kmem_free(kmem_alloc(40), 40)


@pytest.mark.timeout(60)
def test_exhaustion_makes_other_cpus_give_their_caches_back(rump_boot, monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "256k")
    k = rump_boot(2)
    arena = k._arena
    k.run(fill_cache, 40, cpu=1)
    stranded = cached_1k_blocks(arena, 1)
    assert stranded >= kmem.MAG // 2
    before = k.run(count_nosleep, 500, cpu=0)  # runs dry: asks every CPU to drain
    assert cached_1k_blocks(arena, 1) == stranded  # CPU 1 has not run kmem since
    k.run(poke, cpu=1)  # its first kmem call gives the whole cache back
    assert cached_1k_blocks(arena, 1) == 0
    assert k.run(count_nosleep, 500, cpu=0) >= before + stranded // 2


def stale_handle_after_reuse():
    from rumpmp.kern import kmem_alloc, kmem_free

    old = kmem_alloc(64)
    kmem_free(old, 64)
    new = kmem_alloc(64)  # the same block, from the cache, under a new generation
    assert new.offset == old.offset and new.gen != old.gen
    kmem_free(old, 64)


@pytest.mark.timeout(60)
def test_a_stale_handle_to_a_reused_cached_block_panics(rump_boot):
    k = rump_boot(2)
    with pytest.raises(rumpmp.RumpPanic, match="not allocated"):
        k.run(stale_handle_after_reuse, cpu=1)


def wrong_size_cached():
    from rumpmp.kern import kmem_alloc, kmem_free

    kmem_free(kmem_alloc(64), 64)  # the class is cached now
    kmem_free(kmem_alloc(64), 60)


@pytest.mark.timeout(60)
def test_wrong_size_free_of_a_cacheable_block_panics(rump_boot):
    k = rump_boot(1)
    with pytest.raises(rumpmp.RumpPanic, match="size mismatch"):
        k.run(wrong_size_cached)


def alloc_small(size):
    from rumpmp.kern import kmem_alloc

    return kmem_alloc(size)


def free_small(buf):
    from rumpmp.kern import kmem_free

    kmem_free(buf, len(buf))


@pytest.mark.timeout(60)
def test_blocks_cross_between_cpu_caches_and_the_host(rump_kernel):
    arena = rump_kernel._arena
    baseline = rump_kernel.kmem_stats()[0]
    from_cpu = [rump_kernel.run(alloc_small, 100, cpu=2) for _ in range(3)]
    from_host = [kmem.kmem_alloc_in(arena, 100) for _ in range(3)]
    assert rump_kernel.kmem_stats()[0] == baseline + 6
    for buf in from_cpu:
        kmem.kmem_free_in(arena, buf, 100)  # a cache's block, freed into the heap
    for buf in from_host:
        rump_kernel.run(free_small, buf, cpu=3)  # a heap block, freed into CPU 3's cache
        assert not kmem.is_live(arena, buf)
    assert rump_kernel.kmem_stats()[0] == baseline
