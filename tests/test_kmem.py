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
from rumpmp import kmem


def alloc_and_fill(size: int, byte: int):
    from rumpmp.kern import kmem_alloc

    buf = kmem_alloc(size)
    buf[:] = bytes([byte]) * size
    return buf


def read_back(buf) -> bytes:
    return bytes(buf)


@pytest.mark.timeout(30)
def test_buffer_is_shared_between_cpus_and_host(kernel):
    buf = kernel.run(alloc_and_fill, 100, 0xAB, cpu=0)
    assert len(buf) == 100
    assert kernel.run(read_back, buf, cpu=3) == b"\xab" * 100
    assert bytes(buf) == b"\xab" * 100
    struct.pack_into("<q", buf, 8, -42)  # the host writes through the buffer protocol
    assert kernel.run(lambda b: struct.unpack_from("<q", b, 8)[0], buf, cpu=2) == -42
    view = memoryview(buf)
    assert view.nbytes == 100 and not view.readonly


@pytest.mark.timeout(30)
def test_zalloc_zeroes_and_free_returns_memory(kernel):
    def cycle():
        from rumpmp.kern import kmem_alloc, kmem_free, kmem_zalloc

        dirty = kmem_alloc(4000)
        dirty[:] = b"\xff" * 4000
        kmem_free(dirty, 4000)
        clean = kmem_zalloc(4000)
        zero = bytes(clean) == bytes(4000)
        kmem_free(clean, 4000)
        return zero

    before = kernel.kmem_stats()[0]
    assert kernel.run(cycle) is True
    assert kernel.kmem_stats()[0] == before


@pytest.mark.timeout(30)
def test_nosleep_exhaustion_returns_none(boot, monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "64k")

    def exhaust():
        from rumpmp.kern import KM_NOSLEEP, kmem_alloc, kmem_free

        bufs = []
        while (buf := kmem_alloc(1000, KM_NOSLEEP)) is not None:
            bufs.append(buf)
        for buf in bufs:
            kmem_free(buf, 1000)
        return len(bufs)

    k = boot(1)
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
def test_misuse_panics(boot, misuse, message):
    def go():
        from rumpmp.kern import kmem_alloc, kmem_free

        misuse(kmem_alloc, kmem_free)

    k = boot(2)
    with pytest.raises(rumpmp.RumpPanic, match=message):
        k.run(go, cpu=1)


@pytest.mark.timeout(30)
def test_bad_arguments_are_einval(kernel):
    def bad(size, flags):
        from rumpmp.kern import kmem_alloc

        kmem_alloc(size, flags)

    for size, flags in [(0, kmem.KM_SLEEP), (-5, kmem.KM_SLEEP), (8, 0x40)]:
        with pytest.raises(OSError) as info:
            kernel.run(bad, size, flags)
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
