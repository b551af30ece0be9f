"""Remote clients: ``python -m bench.sp``.

The server is ``python -m rumpmp server -s`` in a process of its own, as users run
it; the peers are plain Python socket servers in processes of their own.  Each is
placed as the placement says (the server with its CPUs, or the peer, on the other
side from this process on two cores; everything on one core on one core).

- ``getpid`` over a unix socket, beside an echo of the same frame sizes;
- 64 clients x 1,000 ``getpid``s on a kernel of 8 CPUs, beside the same on 1 CPU;
- ``read`` of 1 MiB from a memory-fs file, beside 1 MiB of a host file sent over a
  Python unix socket.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import placement as pl
from bench.roundtrip import per_call
from rumpmp import rumpclient
from rumpmp.kern import O_CREAT, O_RDONLY, O_WRONLY

REPEAT = 3
MIB = 1 << 20
CLIENTS, CALLS = 64, 1000
REQUEST, REPLY = 29, 33  # a getpid frame and its answer, in bytes


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server and its CPUs)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return out


@contextlib.contextmanager
def rump_server(ncpu: int, placement: str) -> Iterator[tuple[str, int]]:
    """A ``python -m rumpmp server`` at a fresh unix socket, placed; its URL and its
    host process."""
    where = tempfile.mkdtemp(prefix="rumpsp-bench-")
    url = f"unix://{where}/sock"
    p = subprocess.Popen(
        [sys.executable, "-m", "rumpmp", "server", "-s", "-c", str(ncpu), url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None and "serving" in p.stdout.readline()
        pl.place(placement, _tree(p.pid))
        yield url, p.pid
    finally:
        p.terminate()
        p.wait(60)
        with contextlib.suppress(OSError):
            os.rmdir(where)


def _echo_serve(listener: socket.socket, size: int) -> None:
    conn, _ = listener.accept()
    while data := conn.recv(size):
        conn.sendall(b"r" * REPLY if size == REQUEST else data)


def _file_serve(listener: socket.socket, path: str) -> None:
    conn, _ = listener.accept()
    while conn.recv(64):
        with open(path, "rb") as f:
            conn.sendall(f.read())


@contextlib.contextmanager
def peer(target, placement: str, *args: object) -> Iterator[socket.socket]:
    """A connection to a Python socket server in a process of its own, placed."""
    where = tempfile.mkdtemp(prefix="rumpsp-peer-")
    path = f"{where}/sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    p = multiprocessing.get_context("fork").Process(target=target, args=(listener, *args))
    p.start()
    pl.place(placement, [p.pid])
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(path)
    try:
        yield conn
    finally:
        conn.close()
        p.join(10)
        listener.close()
        os.unlink(path)
        os.rmdir(where)


_buffer = bytearray(MIB)  # the peers' client reads into it: no megabyte made per call


def _recv_exact(conn: socket.socket, n: int) -> None:
    view = memoryview(_buffer)[:n]
    got = 0
    while got < n:
        got += conn.recv_into(view[got:])


def getpid_vs_echo(placement: str) -> tuple[float, float]:
    with pl.host_placed(placement):
        with rump_server(2, placement) as (url, _):
            c = rumpclient.connect(url)
            ours = per_call(c.sys.getpid, 500)
            c.close()
        with peer(_echo_serve, placement, REQUEST) as conn:
            request = b"q" * REQUEST

            def echo() -> None:
                conn.sendall(request)
                _recv_exact(conn, REPLY)

            floor = per_call(echo, 500)
    return ours, floor


def read_vs_host(placement: str) -> tuple[float, float]:
    data = os.urandom(MIB)
    with pl.host_placed(placement):
        with rump_server(2, placement) as (url, _):
            c = rumpclient.connect(url)
            fd = c.sys.open("/big", O_CREAT | O_WRONLY, 0o644)
            c.sys.write(fd, data)
            c.sys.close(fd)
            fd = c.sys.open("/big", O_RDONLY)
            ours = per_call(lambda: c.sys.pread(fd, MIB, 0), 50)
            c.close()
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            with peer(_file_serve, placement, f.name) as conn:

                def fetch() -> None:
                    conn.sendall(b"g")
                    _recv_exact(conn, MIB)

                host = per_call(fetch, 50)
    return ours, host


def _client_proc(url: str, conns: int, calls: int, start: float) -> None:
    import threading

    clients = [rumpclient.connect(url) for _ in range(conns)]
    while time.time() < start:
        time.sleep(0.001)  # all client processes start together

    def work(c: rumpclient.Client) -> None:
        for _ in range(calls):
            c.sys.getpid()

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _busy_ticks() -> int:
    """Clock ticks the machine's cores have spent on anything but idling."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


def many_clients(ncpu: int) -> tuple[float, float]:
    """Calls per second of CLIENTS connections (8 processes of 8) doing CALLS each,
    and the server's host process's share of all CPU time used meanwhile."""
    with rump_server(ncpu, pl.UNPINNED) as (url, host):
        ctx = multiprocessing.get_context("fork")
        start = time.time() + 2.0
        procs = [ctx.Process(target=_client_proc, args=(url, 8, CALLS, start)) for _ in range(8)]
        for p in procs:
            p.start()
        while time.time() < start:
            time.sleep(0.001)
        host0, busy0 = _ticks(host), _busy_ticks()
        for p in procs:
            p.join()
        elapsed = time.time() - start
        share = (_ticks(host) - host0) / max(1, _busy_ticks() - busy0)
    return CLIENTS * CALLS / elapsed, share


def rows() -> list[tuple[str, str, str, str]]:
    out = []
    for placement in (pl.ONE_CORE, pl.TWO_CORES, pl.UNPLACED):
        ours, floor = getpid_vs_echo(placement)
        out.append(
            (
                f"remote getpid, unix socket, {placement} (target <= 3x)",
                f"{ours:.1f} us",
                f"{floor:.1f} us (Python unix-socket echo, same sizes)",
                f"{ours / floor:.2f}x",
            )
        )
        ours, host = read_vs_host(placement)
        out.append(
            (
                f"remote read of 1 MiB from memfs, {placement} (target <= 2x)",
                f"{ours:.0f} us",
                f"{host:.0f} us (host file over a Python socket)",
                f"{ours / host:.2f}x",
            )
        )
    eight_runs = [many_clients(8) for _ in range(REPEAT)]
    eight = statistics.median(rate for rate, _ in eight_runs)
    one = statistics.median(many_clients(1)[0] for _ in range(REPEAT))
    out.append(
        (
            "64 clients x 1,000 getpid, 8 CPUs vs 1, unpinned (target >= 1.6x)",
            f"{eight:,.0f} calls/s",
            f"{one:,.0f} calls/s (1 CPU)",
            f"{eight / one:.2f}x",
        )
    )
    share = statistics.median(share for _, share in eight_runs)
    out.append(
        (
            "the same load on 8 CPUs: the server's host process's share of all CPU time"
            " used (target <= 10%)",
            f"{share:.1%}",
            "",
            "",
        )
    )
    return out


if __name__ == "__main__":
    from bench.__main__ import main

    main(["sp"])
