"""kpreempt(9) and the context predicates cpu_intr_p, cpu_softintr_p, curcpu_stable;
cprng(9) (issue 23)."""

from __future__ import annotations

import pytest


def interleave(arg):
    from rumpmp.kern import atomic_inc_64_nv, kpreempt_disable, kpreempt_enable, preempt

    log, me, protect = arg

    def note():
        log[15 + atomic_inc_64_nv(log)] = me  # after the count and the ready word

    for _ in range(20):
        if protect:
            kpreempt_disable()
        note()
        preempt()
        note()
        if protect:
            kpreempt_enable()
        preempt()


def two_lwps_one_cpu(protect):
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kmem_zalloc, kthread_create, kthread_join

    log = kmem_zalloc(16 + 80)
    # Another lwp of this CPU, not started yet: this lwp's preempt() lets it run.
    lid = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, interleave, (log, 2, False), "i")
    interleave((log, 1, protect))
    kthread_join(lid)
    return bytes(log)[16:]


def torn_pairs(log):
    """How many of lwp 1's note pairs have another lwp's note between them."""
    mine = [i for i, v in enumerate(log) if v == 1]
    return sum(1 for a, b in zip(mine[::2], mine[1::2], strict=True) if b != a + 1)


@pytest.mark.timeout(60)
def test_kpreempt_disable_keeps_the_cpu_across_a_yield(rump_boot):
    k = rump_boot(2)
    # Without it, the two lwps of cpu0 interleave at the preempt() inside each pair.
    assert torn_pairs(k.run(two_lwps_one_cpu, False, cpu=0)) > 0
    assert torn_pairs(k.run(two_lwps_one_cpu, True, cpu=0)) == 0


def context_everywhere():
    from rumpmp.kern import (
        SOFTINT_MPSAFE,
        SOFTINT_NET,
        XC_HIGHPRI,
        cpu_intr_p,
        cpu_softintr_p,
        curcpu_stable,
        kpreempt_disable,
        kpreempt_disabled,
        kpreempt_enable,
        softint_establish,
        softint_schedule,
        xc_broadcast,
        xc_wait,
    )

    def probe(*_):
        return cpu_intr_p(), cpu_softintr_p(), kpreempt_disabled(), curcpu_stable()

    seen = {"lwp": probe()}
    kpreempt_disable()
    kpreempt_disable()
    kpreempt_enable()
    seen["disabled"] = kpreempt_disabled()
    kpreempt_enable()
    seen["enabled"] = kpreempt_disabled()
    from rumpmp.kern import kmem_zalloc

    box = kmem_zalloc(8)

    def in_softint(buf):
        buf[0] = 1 + 2 * probe()[1] + 4 * probe()[2]

    sih = softint_establish(SOFTINT_NET | SOFTINT_MPSAFE, in_softint, box)
    softint_schedule(sih)
    from rumpmp.kern import kpause

    for _ in range(100):
        if box[0]:
            break
        kpause("wait", False, 1)
    seen["softint"] = box[0]
    xc_wait(xc_broadcast(XC_HIGHPRI, lambda a, b: None, None, None))
    return seen


@pytest.mark.timeout(60)
def test_context_predicates(rump_kernel):
    seen = rump_kernel.run(context_everywhere)
    assert seen["lwp"] == (False, False, False, True)
    assert seen["disabled"] is True and seen["enabled"] is False
    assert seen["softint"] == 1 + 2 + 4  # in a softint: softintr, preemption off


def sleep_with_preemption_off():
    from rumpmp.kern import kpause, kpreempt_disable

    kpreempt_disable()
    kpause("nap", False, 1)


@pytest.mark.timeout(60)
def test_sleeping_with_preemption_disabled_panics_under_lockdebug(rump_boot):
    from rumpmp import RumpPanic

    k = rump_boot(2, lockdebug=True)
    with pytest.raises(RumpPanic, match="sleeping with preemption disabled"):
        k.run(sleep_with_preemption_off)


def raise_with_preemption_off():
    from rumpmp.kern import kpreempt_disable

    kpreempt_disable()
    raise ValueError("left with preemption off")


def still_preemptible():
    from rumpmp.kern import kpause, kpreempt_disabled

    kpause("nap", False, 1)
    return kpreempt_disabled()


@pytest.mark.timeout(60)
def test_an_entry_that_raises_with_preemption_off_leaves_its_lwp_clean(rump_boot):
    k = rump_boot(1, lockdebug=True)
    with pytest.raises(ValueError):
        k.run(raise_with_preemption_off)
    assert k.run(still_preemptible) is False


def randoms():
    from rumpmp.kern import (
        arc4random,
        arc4random_buf,
        cprng_fast32,
        cprng_fast64,
        cprng_strong,
        cprng_strong32,
        cprng_strong64,
        kern_cprng,
        kmem_zalloc,
    )

    buf = kmem_zalloc(32)
    n = cprng_strong(kern_cprng, buf, 32, 0)
    small = bytearray(16)
    arc4random_buf(small, 16)
    return (
        n,
        bytes(buf) != bytes(32),
        bytes(small) != bytes(16),
        [cprng_fast32() for _ in range(4)],
        cprng_fast64() < 2**64,
        cprng_strong32() < 2**32,
        cprng_strong64() < 2**64,
        arc4random() < 2**32,
    )


def fast_on_this_cpu(*_):
    from rumpmp.kern import cprng_fast64

    return [cprng_fast64() for _ in range(4)]


@pytest.mark.timeout(60)
def test_cprng_fills_buffers_and_cpus_do_not_repeat_each_other(rump_kernel):
    n, strong_set, fast_set, fast32, *bounds = rump_kernel.run(randoms)
    assert n == 32 and strong_set and fast_set and all(bounds)
    assert len(set(fast32)) == 4 and all(0 <= v < 2**32 for v in fast32)
    streams = rump_kernel.xc_broadcast(0, fast_on_this_cpu)
    assert len({tuple(s) for s in streams}) == len(streams) == 4
