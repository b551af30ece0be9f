"""atomic_ops(3), atomic_loadstore(9), membar_ops(3) across CPU processes (issue 23).

The semantics follow NetBSD's tests/lib/libc/atomic (t_atomic_add, t_atomic_and,
t_atomic_or, t_atomic_swap, t_atomic_cas, t_atomic_inc, t_atomic_dec): each checks
the value returned and the value left, for 32 and 64 bits, including wrap-around.
"""

from __future__ import annotations

import errno

import pytest


def semantics():
    from rumpmp.kern import (
        atomic_add_32,
        atomic_add_32_nv,
        atomic_add_64_nv,
        atomic_and_32_nv,
        atomic_and_64,
        atomic_cas_32,
        atomic_cas_64,
        atomic_dec_32_nv,
        atomic_dec_64,
        atomic_inc_64_nv,
        atomic_inc_uint,
        atomic_load_acquire,
        atomic_load_relaxed,
        atomic_or_64_nv,
        atomic_or_uint,
        atomic_store_release,
        atomic_swap_32,
        atomic_swap_ulong,
        kmem_zalloc,
        membar_producer,
        membar_sync,
    )

    buf = kmem_zalloc(16)
    w32, w64 = (buf, 8), buf  # a 32-bit word at offset 8, a 64-bit word at 0
    got = {}
    got["add_32"] = atomic_add_32(w32, 5), atomic_load_relaxed(w32, bits=32)
    got["add_32 wraps"] = atomic_add_32_nv(w32, -6)
    got["dec_32 wraps back"] = atomic_dec_32_nv(w32), atomic_add_32_nv(w32, 2)
    got["inc_uint"] = atomic_inc_uint(w32), atomic_load_acquire(w32, bits=32)
    got["or_uint"] = atomic_or_uint(w32, 0xF0), atomic_load_relaxed(w32, bits=32)
    got["and_32_nv"] = atomic_and_32_nv(w32, 0x30)
    got["swap_32"] = atomic_swap_32(w32, 7), atomic_load_relaxed(w32, bits=32)
    got["cas_32 hit"] = atomic_cas_32(w32, 7, 9), atomic_load_relaxed(w32, bits=32)
    got["cas_32 miss"] = atomic_cas_32(w32, 7, 11), atomic_load_relaxed(w32, bits=32)
    got["add_64_nv"] = atomic_add_64_nv(w64, 1 << 40)
    got["inc_64_nv"] = atomic_inc_64_nv(w64)
    got["dec_64"] = atomic_dec_64(w64), atomic_load_relaxed(w64)
    got["or_64_nv"] = atomic_or_64_nv(w64, 0xFF)
    got["and_64"] = atomic_and_64(w64, 0x0F), atomic_load_relaxed(w64)
    got["swap_ulong"] = atomic_swap_ulong(w64, 2**64 - 1), atomic_inc_64_nv(w64)
    got["cas_64"] = atomic_cas_64(w64, 0, 1 << 63), atomic_load_relaxed(w64)
    atomic_store_release(w64, 42)
    membar_producer()
    membar_sync()
    got["store_release"] = atomic_load_relaxed(w64)
    got["neighbour untouched"] = atomic_load_relaxed(w32, bits=32)
    return got


@pytest.mark.timeout(60)
def test_each_operation_returns_and_leaves_what_atomic_ops_says(rump_kernel):
    got = rump_kernel.run(semantics)
    assert got == {
        "add_32": (None, 5),
        "add_32 wraps": 2**32 - 1,
        "dec_32 wraps back": (2**32 - 2, 0),
        "inc_uint": (None, 1),
        "or_uint": (None, 0xF1),
        "and_32_nv": 0x30,
        "swap_32": (0x30, 7),
        "cas_32 hit": (7, 9),
        "cas_32 miss": (9, 9),
        "add_64_nv": 1 << 40,
        "inc_64_nv": (1 << 40) + 1,
        "dec_64": (None, 1 << 40),
        "or_64_nv": (1 << 40) | 0xFF,
        "and_64": (None, 0x0F),
        "swap_ulong": (0x0F, 0),
        "cas_64": (0, 1 << 63),
        "store_release": 42,
        "neighbour untouched": 9,
    }


def hammer(arg):
    from rumpmp.kern import atomic_add_32, atomic_cas_64, atomic_inc_64, atomic_load_relaxed

    buf, rounds = arg
    for _ in range(rounds):
        atomic_inc_64(buf)
        atomic_add_32((buf, 8), -1)
        while True:  # a CAS loop: the textbook lock-free increment
            old = atomic_load_relaxed((buf, 16))
            if atomic_cas_64((buf, 16), old, old + 1) == old:
                break


def hammer_from_every_cpu(ncpu, rounds):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        atomic_load_relaxed,
        kmem_zalloc,
        kthread_create,
        kthread_join,
    )

    buf = kmem_zalloc(64)  # one cache line: every word under the same stripe
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, hammer, (buf, rounds), "h")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    return (
        atomic_load_relaxed(buf),
        atomic_load_relaxed((buf, 8), bits=32),
        atomic_load_relaxed((buf, 16)),
    )


@pytest.mark.timeout(120)
def test_eight_cpus_hammering_one_word_count_exactly(rump_boot):
    k = rump_boot(8)
    rounds = 2000
    inc, dec, cas = k.run(hammer_from_every_cpu, 8, rounds)
    total = 16 * rounds
    assert (inc, dec, cas) == (total, 2**32 - total, total)


def store_vs_add(arg, _):
    from rumpmp.kern import atomic_add_64, atomic_store_relaxed, cpu_index

    buf, rounds = arg
    for i in range(rounds):
        if cpu_index() == 0 and i % 2:
            atomic_store_relaxed(buf, 1 << 32)  # the high half marks a store
        else:
            atomic_add_64(buf, 1)


def stores_never_land_inside_an_update(ncpu, rounds):
    from rumpmp.kern import atomic_load_relaxed, kmem_zalloc, xc_broadcast, xc_wait

    buf = kmem_zalloc(8)
    xc_wait(xc_broadcast(0, store_vs_add, (buf, rounds), None))
    return atomic_load_relaxed(buf)


@pytest.mark.timeout(120)
def test_a_store_is_atomic_with_respect_to_concurrent_adds(rump_boot):
    k = rump_boot(4)
    final = k.run(stores_never_land_inside_an_update, 4, 3000)
    # After cpu0's last store, only adds follow: the high half survives intact and
    # the low half counts at most every add made (never a torn mix of two words).
    assert final >> 32 == 1
    assert 0 <= final & 0xFFFFFFFF <= 3 * 3000 + 1500


def misuse():
    from rumpmp.kern import (
        atomic_add_64,
        atomic_inc_64,
        atomic_load_relaxed,
        atomic_store_relaxed,
        kmem_zalloc,
    )

    buf = kmem_zalloc(16)
    out = []
    for call in (
        lambda: atomic_inc_64(b"12345678"),
        lambda: atomic_add_64(buf, "1"),
        lambda: atomic_inc_64((buf, 4)),
        lambda: atomic_inc_64((buf, 16)),
        lambda: atomic_inc_64(buf, 5),
        lambda: atomic_load_relaxed(buf, bits=16),
        lambda: atomic_store_relaxed(buf, 1, bits=8),
    ):
        try:
            call()
            out.append(None)
        except TypeError as e:
            out.append(("TypeError", str(e).split(" ")[0].removesuffix("()")))
        except OSError as e:
            out.append(e.errno)
    return out, atomic_load_relaxed(buf)


@pytest.mark.timeout(60)
def test_bad_pointers_and_values_are_clear_errors(rump_kernel):
    out, value = rump_kernel.run(misuse)
    assert out == [
        ("TypeError", "ptr"),
        ("TypeError", "delta"),
        errno.EINVAL,  # misaligned
        errno.EFAULT,  # past the end of the buffer
        ("TypeError", "atomic_inc_64"),
        errno.EINVAL,
        errno.EINVAL,
    ]
    assert value == 0  # nothing was changed by a rejected call
