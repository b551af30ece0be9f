"""Modules and components (issue 13), from a real distribution installed as entry
points on the host's path: NetBSD's t_modcmd.c and t_modlinkset.c, as they map."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

MODULE_SOURCE = """
import errno

from rumpmp.kern import (
    CTLTYPE_INT, MODULE_CLASS_MISC, MODULE_CMD_FINI, MODULE_CMD_INIT, RUMP_COMPONENT_KERN,
    modinfo_t, rump_component, sysctl_createv, sysctl_destroyv,
)


def example_cmd(cmd, arg):
    if cmd == MODULE_CMD_INIT:
        sysctl_createv("", "example", CTLTYPE_INT, 0, 42)
        return 0
    if cmd == MODULE_CMD_FINI:
        sysctl_destroyv("example")
        return 0
    return errno.ENOTTY


def no_init(cmd, arg):
    return errno.ENXIO if cmd == MODULE_CMD_INIT else 0


example = modinfo_t("example", MODULE_CLASS_MISC, example_cmd)
needy = modinfo_t("needy", MODULE_CLASS_MISC, lambda cmd, arg: 0, required=("example",))
broken = modinfo_t("broken", MODULE_CLASS_MISC, no_init)


def add_node():
    sysctl_createv("", "fromcomponent", CTLTYPE_INT, 0, 7)


component = rump_component(RUMP_COMPONENT_KERN, add_node, "exampleco")
"""

ENTRY_POINTS = """
[rumpmp.modules]
example = rumptest_mod:example
needy = rumptest_mod:needy
broken = rumptest_mod:broken

[rumpmp.components]
exampleco = rumptest_mod:component
"""

SCRIPT = """
import errno
import rumpmp
from rumpmp.kern import (
    MODCTL_LOAD, MODCTL_STAT, MODCTL_UNLOAD, RUMP_COMPONENT_KERN, rump_component_count, rump_sys_modctl,
)

def modctl(cmd, arg=None):
    try:
        return rump_sys_modctl(cmd, arg)
    except OSError as e:
        return errno.errorcode[e.errno]

with rumpmp.boot(2) as k:
    print("component", k.sysctl("fromcomponent"), k.run(rump_component_count, RUMP_COMPONENT_KERN))
    print("stat", sorted(k.run(modctl, MODCTL_STAT)))
    print("example", k.sysctl("example"))
    print("dmesg", [l for l in k.dmesg().splitlines() if "broken" in l])
    print("reload", k.run(modctl, MODCTL_LOAD, "example"))
    print("busy", k.run(modctl, MODCTL_UNLOAD, "example"))
    print("unload", k.run(modctl, MODCTL_UNLOAD, "needy"), k.run(modctl, MODCTL_UNLOAD, "example"))
    print("gone", "example" in k.sysctl_all())
    print("unknown", k.run(modctl, MODCTL_LOAD, "nosuch"), k.run(modctl, MODCTL_UNLOAD, "nosuch"))
    print("broken", k.run(modctl, MODCTL_LOAD, "broken"), "broken" in str(k.run(modctl, MODCTL_STAT)))
    print("needs", k.run(modctl, MODCTL_LOAD, "needy"), sorted(k.run(modctl, MODCTL_STAT)))
    with k.process() as p:
        p.sys.setuid(1000)
        try:
            p.sys.modctl(MODCTL_UNLOAD, "needy")
        except PermissionError:
            print("user EPERM")
"""


@pytest.fixture
def site(tmp_path):
    """A distribution with modules and a component, on a path of its own."""
    pkg = tmp_path / "rumptest_mod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(MODULE_SOURCE)
    info = tmp_path / "rumptest_mod-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rumptest-mod\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return tmp_path


@pytest.mark.timeout(60)
def test_modules_and_components_of_an_installed_distribution(site, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50, env=env
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["component"] == "7 1"  # ran at boot, counted
    assert lines["stat"] == "[('example', 1, 1), ('needy', 1, 0)]"  # broken's init said no
    assert lines["example"] == "42"
    assert "not loaded" in lines["dmesg"]
    assert lines["reload"] == "EEXIST"
    assert lines["busy"] == "EBUSY"  # needy requires it
    assert lines["unload"] == "None None"
    assert lines["gone"] == "False"  # its FINI removed its node
    assert lines["unknown"] == "ENOENT ENOENT"
    assert lines["broken"] == "ENXIO False"  # the init error, and not half loaded
    assert lines["needs"] == "None [('example', 1, 1), ('needy', 1, 0)]"  # loaded its requirement
    assert lines["user"] == "EPERM"


def test_a_component_that_raises_fails_the_boot_by_name_and_leaves_nothing(rump_boot):
    import rumpmp
    from hypercalls import shm
    from rumpmp.kern import RUMP_COMPONENT_SYSCALL, rump_component

    def explode():
        raise RuntimeError("no")

    before = set(shm.list_prefix("rmp-"))
    with pytest.raises(OSError, match="component exploder failed: RuntimeError: no"):
        rumpmp.boot(1, components=[rump_component(RUMP_COMPONENT_SYSCALL, explode, "exploder")])
    assert set(shm.list_prefix("rmp-")) - before == set()
    with pytest.raises(TypeError, match="rump_component"):
        rumpmp.boot(1, components=[explode])


def test_a_bad_modinfo_is_a_type_error_at_construction():
    from rumpmp.kern import MODULE_CLASS_MISC, modinfo_t

    with pytest.raises(TypeError, match="required"):
        modinfo_t("m", MODULE_CLASS_MISC, lambda cmd, arg: 0, required=None)
    with pytest.raises(TypeError, match="modcmd"):
        modinfo_t("m", MODULE_CLASS_MISC, None)
