"""sysctl(9)/sysctl(3) (issue 13): one tree in shared memory, the same from every CPU
and the host; the boot nodes; NetBSD's error values; t_sp's hostname identity case."""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rumpmp import kern


def test_the_boot_nodes(rump_kernel):
    k = rump_kernel
    values = k.sysctl_all()
    assert values["kern.ostype"] == "NetBSD"
    assert values["kern.hostname"] == k.hostname
    assert values["hw.ncpu"] == values["hw.ncpuonline"] == 4
    assert values["hw.physmem64"] == k.params.memlimit
    rate = values["kern.clockrate"]  # struct nodes read as NetBSD's structs (issue 26)
    assert type(rate).__name__ == "clockinfo" and rate.hz == rate.stathz == k.hz
    assert rate.tick == 1_000_000 // k.hz and rate == (k.hz, rate.tick, 0, k.hz, k.hz)
    boot = values["kern.boottime"]
    assert type(boot).__name__ == "timespec" and boot.tv_sec > 1_700_000_000
    assert 0 <= boot.tv_nsec < 1_000_000_000
    first = values["kern.proc2"][0]
    assert type(first).__name__ == "kinfo_proc2" and isinstance(first.comm, str)
    assert k.sysctl((1, 10)) == k.hostname  # by MIB: CTL_KERN, KERN_HOSTNAME


def test_the_schedulers_counters_are_nodes_read_when_asked(rump_kernel):
    k = rump_kernel
    before = k.sysctl("kern.sched.cpu2.started")
    k.run(lambda: None, cpu=2)
    assert k.sysctl("kern.sched.cpu2.started") == before + 1 == k.sched_stats()[2]["started"]
    with pytest.raises(PermissionError):
        k.sysctl("kern.sched.cpu2.started", 0)


def read_hostname(_, __):
    return kern.rump_sys___sysctl("kern.hostname")


def set_hostname(name, _):
    return kern.rump_sys___sysctl("kern.hostname", name)


def test_one_cpu_sets_the_hostname_every_other_cpu_and_the_host_read_it(rump_kernel):
    """t_sp.sh's sysctl case, across CPUs: the tree is shared, not copied."""
    k = rump_kernel
    boot_name = k.hostname
    assert k.xc_unicast(0, set_hostname, "shared.example", None, 2) == boot_name
    assert k.xc_broadcast(0, read_hostname) == ["shared.example"] * 4
    assert k.hostname == k.sysctl("kern.hostname") == "shared.example"


def test_error_values_as_netbsd_returns_them(rump_kernel):
    k = rump_kernel
    cases = {
        "kern.nosuchnode": errno.ENOENT,
        "kern.ostype.below": errno.ENOTDIR,
        "kern": errno.EISDIR,
        "": errno.EINVAL,
    }
    for name, want in cases.items():
        with pytest.raises(OSError) as info:
            k.sysctl(name)
        assert info.value.errno == want, name
    for name, value, want in [
        ("kern.ostype", "Linux", errno.EPERM),  # read-only
        ("kern.hostname", "x" * 256, errno.EINVAL),  # MAXHOSTNAMELEN counts the NUL
        ("kern.hostname", 5, errno.EINVAL),
    ]:
        with pytest.raises(OSError) as info:
            k.sysctl(name, value)
        assert info.value.errno == want, name
    assert k.sysctl("kern.hostname", "x" * 255)  # the longest that fits
    with pytest.raises(TypeError, match="dotted name or a tuple of ints"):
        k.sysctl(3.5)


def as_user(uid, _):
    from rumpmp.kern import (
        RUMP_RFCFDG,
        rump_lwproc_releaselwp,
        rump_lwproc_rfork,
        rump_sys___sysctl,
        rump_sys_setuid,
    )

    rump_lwproc_rfork(RUMP_RFCFDG)
    try:
        rump_sys_setuid(uid)
        try:
            rump_sys___sysctl("kern.hostname", "mine")
        except OSError as e:
            return e.errno
        return 0
    finally:
        rump_lwproc_releaselwp()


def test_only_root_sets_the_hostname(rump_kernel):
    assert rump_kernel.xc_unicast(0, as_user, 1000, None, 1) == errno.EPERM
    assert rump_kernel.xc_unicast(0, as_user, 0, None, 1) == 0
    assert rump_kernel.hostname == "mine"


def make_nodes(_, __):
    from rumpmp.kern import (
        CTLFLAG_ANYWRITE,
        CTLFLAG_READWRITE,
        CTLTYPE_BOOL,
        CTLTYPE_NODE,
        CTLTYPE_QUAD,
        CTLTYPE_STRING,
        CTLTYPE_STRUCT,
        sysctl_createv,
    )

    top = sysctl_createv("", "test", CTLTYPE_NODE)
    rw = CTLFLAG_READWRITE | CTLFLAG_ANYWRITE
    return [
        top,
        sysctl_createv("test", "flag", CTLTYPE_BOOL, rw, True),
        sysctl_createv("test", "big", CTLTYPE_QUAD, rw, 2**40),
        sysctl_createv("test", "text", CTLTYPE_STRING, rw, "hi", size=16),
        sysctl_createv(top, "blob", CTLTYPE_STRUCT, rw, b"\0" * 8),
    ]


def test_nodes_made_on_one_cpu_are_used_from_another_and_the_host(rump_kernel):
    k = rump_kernel
    top, *leaves = k.xc_unicast(0, make_nodes, None, None, 3)
    assert [mib[:-1] for mib in leaves] == [top] * 4
    assert k.sysctl("test.flag") is True and k.sysctl("test.big") == 2**40
    assert k.sysctl("test.text", "hello") == "hi"
    assert k.xc_unicast(0, lambda *_: kern.rump_sys___sysctl("test.text"), None, None, 0) == "hello"
    assert k.sysctl("test.blob", b"12345678") == b"\0" * 8
    assert k.sysctl(leaves[3]) == b"12345678"
    for name, bad in [
        ("test.flag", 2),
        ("test.big", 2**63),
        ("test.blob", b"short"),
        ("test.text", "x" * 16),
    ]:
        with pytest.raises(OSError) as info:
            k.sysctl(name, bad)
        assert info.value.errno == errno.EINVAL
    assert [name for _, name, _ in k.run(kern.sysctl_query, "test")] == [
        "flag",
        "big",
        "text",
        "blob",
    ]


def destroy(name, _):
    kern.sysctl_destroyv(name)


def test_destroy_rules(rump_kernel):
    k = rump_kernel
    k.xc_unicast(0, make_nodes, None, None, 0)
    with pytest.raises(OSError) as info:
        k.xc_unicast(0, destroy, "test", None, 0)
    assert info.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as info:
        k.xc_unicast(0, destroy, "kern.ostype", None, 0)
    assert info.value.errno == errno.EPERM  # permanent
    before = k.kmem_stats()[0]
    for leaf in ("flag", "big", "text", "blob"):
        k.xc_unicast(0, destroy, f"test.{leaf}", None, 1)
    k.xc_unicast(0, destroy, "test", None, 2)
    assert "test.flag" not in k.sysctl_all()
    assert k.kmem_stats()[0] == before - 2  # the string's and the struct's buffers
    with pytest.raises(FileExistsError):
        k.run(lambda: [kern.sysctl_createv("", "kern", kern.CTLTYPE_NODE)])


def tree_op(op, _):
    """Kernel side of the hypothesis test: create or destroy a node under "h"."""
    from rumpmp.kern import CTLTYPE_INT, CTLTYPE_NODE, sysctl_createv, sysctl_destroyv

    kind, name = op
    try:
        if kind == "create":
            sysctl_createv("h", name, CTLTYPE_INT, 0, len(name))
        elif kind == "destroy":
            sysctl_destroyv(f"h.{name}")
        elif kind == "node":
            sysctl_createv("", "h", CTLTYPE_NODE)
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.timeout(120)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["create", "destroy"]),
            st.sampled_from(["a", "b", "c", "dd"]),
            st.integers(0, 3),
        ),
        max_size=25,
    )
)
def test_create_destroy_sequences_from_several_cpus_match_a_model(rump_kernel_session, ops):
    k = rump_kernel_session
    if "h" not in [name for _, name, _ in k.run(kern.sysctl_query, "")]:
        k.xc_unicast(0, tree_op, ("node", ""), None, 0)
    for leaf in [name for _, name, _ in k.run(kern.sysctl_query, "h")]:
        k.xc_unicast(0, tree_op, ("destroy", leaf), None, 0)
    model: set[str] = set()
    for kind, name, cpu in ops:
        rc = k.xc_unicast(0, tree_op, (kind, name), None, cpu)
        if kind == "create":
            assert rc == (errno.EEXIST if name in model else 0)
            model.add(name)
        else:
            assert rc == (0 if name in model else errno.ENOENT)
            model.discard(name)
    assert {n: v for n, v in k.sysctl_all().items() if n.startswith("h.")} == {
        f"h.{name}": len(name) for name in model
    }
