"""pool(9) and pool_cache(9): objects, hard limits, per-CPU caches, constructors run
once per object, invalidate and destroy across CPUs (issue 23)."""

from __future__ import annotations

import pytest


def pool_basics():
    from rumpmp.kern import (
        PR_NOWAIT,
        PR_WAITOK,
        PR_ZERO,
        pool_destroy,
        pool_get,
        pool_init,
        pool_put,
        pool_sethardlimit,
    )

    pp = pool_init(48, 8, 0, 0, "testpl")
    a = pool_get(pp, PR_WAITOK | PR_ZERO)
    zeroed = bytes(a) == bytes(48)
    pool_sethardlimit(pp, 2)
    b = pool_get(pp, PR_WAITOK)
    over = pool_get(pp, PR_NOWAIT)  # a third object is over the limit
    pool_put(pp, a)
    c = pool_get(pp, PR_NOWAIT)
    pool_put(pp, b)
    pool_put(pp, c)
    pool_destroy(pp)
    return zeroed, len(b), over, c is not None


@pytest.mark.timeout(60)
def test_pool_get_put_zero_and_hard_limit(rump_kernel):
    assert rump_kernel.run(pool_basics) == (True, 48, None, True)


def taker(arg):
    from rumpmp.kern import PR_WAITOK, pool_get, pool_put

    pp, rounds = arg
    for _ in range(rounds):
        pool_put(pp, pool_get(pp, PR_WAITOK))


def waitok_waits_for_a_put(ncpu):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        pool_destroy,
        pool_init,
        pool_nout,
        pool_sethardlimit,
    )

    pp = pool_init(32)
    pool_sethardlimit(pp, 2)  # 2 objects for 2 * ncpu lwps on every CPU
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, taker, (pp, 200), "t")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    left = pool_nout(pp)
    pool_destroy(pp)
    return left


@pytest.mark.timeout(120)
def test_pr_waitok_waits_at_the_hard_limit_across_cpus(rump_boot):
    k = rump_boot(8)
    assert k.run(waitok_waits_for_a_put, 8) == 0


def ctor(arg, obj, flags):
    from rumpmp.kern import atomic_inc_64

    atomic_inc_64(arg)
    obj[0] = 0xC5  # constructed: a mark the user sees on every get
    return 0


def dtor(arg, obj):
    from rumpmp.kern import atomic_inc_64

    assert obj[0] == 0xC5
    atomic_inc_64((arg, 8))


def churn(arg):
    from rumpmp.kern import PR_WAITOK, pool_cache_get, pool_cache_put

    pc, rounds = arg
    held = []
    for i in range(rounds):
        obj = pool_cache_get(pc, PR_WAITOK)
        assert obj[0] == 0xC5, "an object handed out unconstructed"
        held.append(obj)
        if len(held) > 40 or i == rounds - 1:  # more than a magazine: batches move
            for o in held:
                pool_cache_put(pc, o)
            held.clear()


def cache_on_every_cpu(ncpu, rounds):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        atomic_load_relaxed,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        pool_cache_destroy,
        pool_cache_init,
        pool_cache_stats,
    )

    counts = kmem_zalloc(16)  # constructor calls, destructor calls
    pc = pool_cache_init(64, 0, 0, 0, "testpc", None, 0, ctor, dtor, counts)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, churn, (pc, rounds), "c")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    stats = pool_cache_stats(pc)
    pool_cache_destroy(pc)
    return stats, atomic_load_relaxed(counts), atomic_load_relaxed((counts, 8))


@pytest.mark.timeout(120)
def test_constructors_run_once_per_object_and_destructors_at_destroy(rump_boot):
    k = rump_boot(8)
    stats, ctors, dtors = k.run(cache_on_every_cpu, 8, 300)
    # Objects are reused: far fewer constructions than the 16 * 300 gets, and every
    # object constructed is destructed exactly once when the cache is destroyed.
    assert 41 <= ctors < 16 * 300 / 4
    assert stats["ctor"] == ctors and stats["nout"] == ctors
    assert dtors == ctors


def failing_ctor(arg, obj, flags):
    return 12  # ENOMEM-like: no object


def ctor_failure():
    from rumpmp.kern import PR_NOWAIT, pool_cache_destroy, pool_cache_get, pool_cache_init

    pc = pool_cache_init(16, 0, 0, 0, "fail", None, 0, failing_ctor, None, None)
    got = pool_cache_get(pc, PR_NOWAIT)
    pool_cache_destroy(pc)  # nothing is out: the failed object went back to the pool
    return got


@pytest.mark.timeout(60)
def test_a_failing_constructor_gives_no_object(rump_kernel):
    assert rump_kernel.run(ctor_failure) is None


def leak_then_destroy():
    from rumpmp.kern import pool_destroy, pool_get, pool_init

    pp = pool_init(16)
    pool_get(pp)
    pool_destroy(pp)


@pytest.mark.timeout(60)
def test_destroying_a_pool_with_objects_out_panics(rump_boot):
    from rumpmp import RumpPanic

    k = rump_boot(2)
    with pytest.raises(RumpPanic, match="busy: still out: 1"):
        k.run(leak_then_destroy)


def bad_args():
    from rumpmp.kern import pool_cache_init, pool_init

    out = []
    for call in (
        lambda: pool_init("16"),
        lambda: pool_init(16, 64),
        lambda: pool_cache_init(16, 0, 0, 0, "x", None, 0, "not callable"),
    ):
        try:
            call()
        except TypeError as e:
            out.append(str(e).split(":")[1].split()[0])
        except OSError as e:
            out.append(e.errno)
    return out


@pytest.mark.timeout(60)
def test_bad_arguments_are_clear_errors(rump_kernel):
    assert rump_kernel.run(bad_args) == ["size", 22, "ctor"]


def raising_ctor(arg, obj, flags):
    raise ValueError("cannot build")


def ctor_raises():
    from rumpmp.kern import pool_cache_destroy, pool_cache_get, pool_cache_init

    pc = pool_cache_init(16, 0, 0, 0, "raise", None, 0, raising_ctor, None, None)
    try:
        pool_cache_get(pc)
    except ValueError as e:
        raised = str(e)
    pool_cache_destroy(pc)  # would panic "busy" had the object been kept
    return raised


@pytest.mark.timeout(60)
def test_a_constructor_that_raises_gives_the_object_back(rump_kernel):
    assert rump_kernel.run(ctor_raises) == "cannot build"
