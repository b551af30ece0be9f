"""Remote clients served inside the CPUs (issue 21): the host process only accepts
and hands over; the calls run in CPU processes; a CPU killed under remote load is
a clean panic; a client that reaches something else gets a clear error."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from hypercalls import shm
from rumpmp import rumpclient
from tests.helpers import assert_no_leak, wait_for
from tests.sp.test_sp import _server

pytestmark = pytest.mark.timeout(120)


def _children(pid: int) -> list[int]:
    return [
        int(c) for t in Path(f"/proc/{pid}/task").glob("*/children") for c in t.read_text().split()
    ]


def _cpus(server_pid: int) -> list[int]:
    """The server's CPU processes: the children of its one child, the fork server."""
    (forkserver,) = _children(server_pid)
    return _children(forkserver)


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _serving(tmp_path: Path, ncpu: int):
    url = f"unix://{tmp_path}/sock"
    p = _server("-s", "-c", str(ncpu), url)
    try:
        assert "serving" in p.stdout.readline()
    except BaseException:
        p.kill()
        raise
    return p, url


def test_calls_run_in_several_cpu_processes_not_the_host(tmp_path):
    """Eight clients calling at once: more than one CPU process does the work, and
    the host process (which only accepts and hands over) hardly any."""
    p, url = _serving(tmp_path, 4)
    try:
        cpus = _cpus(p.pid)
        assert len(cpus) == 4
        clients = [rumpclient.connect(url) for _ in range(8)]
        before = {pid: _cpu_ticks(pid) for pid in [p.pid, *cpus]}

        def work(c: rumpclient.Client) -> None:
            for _ in range(3000):
                assert c.sys.getpid() == c.pid

        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        used = {pid: _cpu_ticks(pid) - before[pid] for pid in before}
        served = sorted((used[pid] for pid in cpus), reverse=True)
        assert served[1] >= 5, f"one CPU did all the work: {served} ticks"
        assert used[p.pid] * 5 < sum(served), f"the host worked: {used[p.pid]} vs {served} ticks"
        for c in clients:
            c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)


def test_a_cpu_killed_under_remote_load_is_a_clean_panic(tmp_path):
    """SIGKILL one CPU while clients call on every CPU: each client's next call
    fails with ENOTCONN (none hangs), the server exits, nothing is left behind."""
    p, url = _serving(tmp_path, 2)
    try:
        prefix = next(
            name.rsplit(".", 1)[0] + "." for name in shm.list_prefix("rmp-")
            if f"rmp-{p.pid}-" in name
        )  # fmt: skip
        clients = [rumpclient.connect(url) for _ in range(4)]
        calls = [0] * len(clients)
        ended: list[int | None] = [None] * len(clients)

        def work(i: int) -> None:
            try:
                while True:
                    clients[i].sys.getpid()
                    calls[i] += 1
            except OSError as e:
                ended[i] = e.errno

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: min(calls) >= 50, 30, "every client to be calling")
        os.kill(_cpus(p.pid)[1], signal.SIGKILL)
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a client hangs"
        assert ended == [errno.ENOTCONN] * 4
        assert p.wait(60) != 0
        assert "panic" in p.stderr.read() + p.stdout.read()
        wait_for(lambda: shm.list_prefix(prefix) == [], 30, "the kernel's objects to go")
        assert_no_leak(prefix)
        assert not (tmp_path / "sock").exists()
    finally:
        p.kill()


@pytest.mark.parametrize(
    "says",
    [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n", b"x" * (64 << 10)],
    ids=["nothing", "garbage", "a long line"],
)
def test_a_client_of_something_else_gets_a_clear_oserror(tmp_path, says):
    """Not a rumpmp server (it hangs up, speaks HTTP, or sends 64 KiB without a
    newline): an OSError naming the URL and what came, not a ValueError."""
    path = tmp_path / "other"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def answer() -> None:
        conn, _ = srv.accept()
        conn.sendall(says)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    url = f"unix://{path}"
    with pytest.raises(OSError) as info:
        rumpclient.connect(url)
    assert url in str(info.value)
    assert info.value.errno in (errno.EPROTO, errno.ECONNRESET)
    if says:
        assert repr(says[:20])[2:-1] in str(info.value)
    srv.close()
