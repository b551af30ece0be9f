"""rump_daemonize_begin/done (issue 13): the parent returns only once the child is
up, with the child's status; begin after a boot is EALREADY."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

import rumpmp
from tests.helpers import wait_for

SCRIPT = """
import sys, time, rumpmp
rumpmp.rump_daemonize_begin()
k = rumpmp.boot(1)
open(sys.argv[1], "w").write(k.hostname)
rumpmp.rump_daemonize_done(int(sys.argv[2]))
time.sleep(0.5)
k.halt()
open(sys.argv[1] + ".done", "w").write("ok")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status", [0, errno.ENOENT])
def test_the_parent_exits_with_the_childs_word_once_it_is_up(tmp_path, status):
    script, out = tmp_path / "d.py", tmp_path / "out"
    script.write_text(textwrap.dedent(SCRIPT))
    parent = subprocess.run([sys.executable, str(script), str(out), str(status)], timeout=50)
    assert parent.returncode == status
    assert out.read_text().startswith("rump-")  # the kernel was up before the parent left
    wait_for(lambda: (tmp_path / "out.done").exists(), 30, "the daemon to finish")


def test_begin_after_a_boot_is_ealready(rump_kernel):
    with pytest.raises(OSError) as info:
        rumpmp.rump_daemonize_begin()
    assert info.value.errno == errno.EALREADY
    with pytest.raises(OSError) as info:
        rumpmp.rump_daemonize_done(0)
    assert info.value.errno == errno.EINVAL
