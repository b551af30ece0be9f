"""Client programs for the sysproxy tests, ports of NetBSD's
tests/rump/rumpkern/h_client: ``python -m tests.sp.clients NAME [ARGS]`` with
RUMP_SERVER set.  Each exits 0 when all went as the test expects."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import stat
import sys
import threading
import time

from rumpmp import rumpclient
from rumpmp.kern import O_CREAT, O_RDWR

HOSTNAME_BASE = "rumpclient"


def simple() -> None:
    """h_simplecli: connect, a few calls."""
    c = rumpclient.connect()
    assert c.sys.getpid() == c.pid > 1
    assert c.sysctl("kern.ostype") == "NetBSD"
    print(c.pid, c.uid, c.gid, flush=True)


def _stress_client(quit_flag: list[bool]) -> None:
    c = rumpclient.connect()
    mypid = c.sys.getpid()
    c.sysctl("kern.hostname", f"{HOSTNAME_BASE}{mypid}")

    def client() -> None:
        while not quit_flag[0]:
            name = c.sysctl("kern.hostname")
            assert isinstance(name, str) and name.startswith(HOSTNAME_BASE), name
            assert c.sys.getpid() == mypid

    threads = [threading.Thread(target=client) for _ in range(7)]
    for t in threads:
        t.start()
    client()
    for t in threads:
        t.join()


def _stress_child() -> None:
    quit_flag = [False]
    signal.signal(signal.SIGUSR1, lambda *_: quit_flag.__setitem__(0, True))
    try:
        _stress_client(quit_flag)
    except BaseException as e:  # noqa: BLE001 - the child reports and fails
        print(f"client {os.getpid()}: {e!r}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def stress(rounds: str, how: str = "usr1") -> None:
    """h_stresscli: 32 clients of 8 threads each; every 100 ms one is sent SIGUSR1
    (it quits cleanly) or SIGKILL, and a new one takes its place."""
    nclients = 32
    thesig = signal.SIGKILL if how == "kill" else signal.SIGUSR1
    clients: list[int] = []
    for _ in range(int(rounds) * 10):
        while len(clients) < nclients:
            pid = os.fork()
            if pid == 0:
                _stress_child()
            clients.append(pid)
        time.sleep(0.1)  # the interval between kills, as h_stresscli's usleep
        victim = clients.pop(0)
        os.kill(victim, thesig)
        _, status = os.waitpid(victim, 0)
        if thesig == signal.SIGUSR1:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"status {status:#x}"
        else:
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == thesig
    for pid in clients:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _wait_child(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status:#x}"


def fork_simple() -> None:
    """h_forkcli simple: the child's process has the parent's descriptors."""
    c = rumpclient.connect()
    pid1 = c.sys.getpid()
    fd = c.sys.open("/forkfile", O_CREAT | O_RDWR, 0o600)
    assert c.sys.write(fd, b"1234") == 4
    pid, child = c.fork()
    if pid == 0:
        try:
            pid2 = child.sys.getpid()
            assert pid2 > 1 and pid2 != pid1
            assert child.sys.write(fd, b"5678") == 4
            child.sys.close(fd)
        except BaseException as e:  # noqa: BLE001
            print(f"child: {e!r}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    assert c.sys.write(fd, b"abcd") == 4
    _wait_child(pid)
    assert c.sys.write(fd, b"efgh") == 4
    assert c.sys.fstat(fd).st_size == 16  # one file, one offset for both processes


TESTSTR = b"i am your fatherrrrrrr"


def fork_pipecomm() -> None:
    """h_forkcli pipecomm: a pipe made before the fork joins parent and child."""
    c = rumpclient.connect()
    r, w = c.sys.pipe()
    pid, child = c.fork()
    if pid == 0:
        try:
            assert child.sys.read(r, len(TESTSTR)) == TESTSTR
        except BaseException as e:  # noqa: BLE001
            print(f"child: {e!r}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    assert c.sys.write(w, TESTSTR) == len(TESTSTR)
    _wait_child(pid)


def fork_fakeauth() -> None:
    """h_forkcli fakeauth: a forged cookie is refused (ESRCH), and so is a real one
    the second time."""
    c = rumpclient.connect()
    handle = c.prefork()
    forged = rumpclient.ForkHandle(
        handle.url, bytes([handle.cookie[0] ^ 1]) + handle.cookie[1:], None
    )
    try:
        rumpclient.fork_init(forged)
    except OSError as e:
        assert e.errno == errno.ESRCH, e
    else:
        raise AssertionError("a forged cookie was accepted")
    rumpclient.fork_init(handle).close()
    for used in (handle, _cancelled(c)):
        try:
            rumpclient.fork_init(used)
        except OSError as e:
            assert e.errno == errno.ESRCH
        else:
            raise AssertionError("a used or cancelled cookie was accepted")


def _cancelled(c: rumpclient.Client) -> rumpclient.ForkHandle:
    handle = c.prefork()
    c.fork_cancel(handle)
    return handle


def sigsafe() -> None:
    """h_sigcli: a SIGALRM every 10 ms whose handler makes a call while the main
    program is in the middle of its own, 2,000 times over."""
    c = rumpclient.connect()
    hostname = c.sysctl("kern.hostname")
    handled = [0]

    def handler(*_: object) -> None:
        assert c.sysctl("kern.hostname") == hostname
        handled[0] += 1

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
    for _ in range(2000):
        assert c.sysctl("kern.hostname") == hostname
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    assert handled[0] > 0
    print(handled[0], flush=True)


def signal_raise() -> None:
    """t_sp signal: a signal the kernel sends the client's process (kill(2) on its
    own pid) is raised in the client (RUMP_SIGMODEL_RAISE)."""
    c = rumpclient.connect()
    got = threading.Event()
    signal.signal(signal.SIGUSR2, lambda *_: got.set())
    c.sys.kill(c.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not got.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)  # the handler runs between these: a bounded wait for it
    assert got.is_set(), "the signal never came"


def exec_child(keep_fd: str, gone_fd: str) -> None:
    """After ``exec``: the same rump process, its FD_CLOEXEC descriptor closed."""
    c = rumpclient.connect()
    keep, gone = int(keep_fd), int(gone_fd)
    assert c.sys.fstat(keep).st_size == 4
    try:
        c.sys.fstat(gone)
    except OSError as e:
        assert e.errno == errno.EBADF
    else:
        raise AssertionError("an FD_CLOEXEC descriptor survived exec")
    print(c.sys.getpid(), flush=True)


def exec_parent() -> None:
    from rumpmp.kern import F_SETFD, FD_CLOEXEC

    c = rumpclient.connect()
    keep = c.sys.open("/execfile", O_CREAT | O_RDWR, 0o600)
    c.sys.write(keep, b"kept")
    gone = c.sys.dup(keep)
    c.sys.fcntl(gone, F_SETFD, FD_CLOEXEC)
    print(c.sys.getpid(), flush=True)
    argv = [sys.executable, "-m", "tests.sp.clients", "exec_child", str(keep), str(gone)]
    c.exec(sys.executable, argv)


def _disintegrate() -> None:
    """h_reconcli's "wide-angle disintegration beam" (closefrom(3)), made safe for
    Python: every socket of this process is shut down both ways, which breaks the
    client's connection wherever its threads are, without closing a descriptor a
    socket object still owns."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own fd is gone by now)
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                sock = socket.socket(fileno=os.dup(int(name)))
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def reconnect(seconds: str) -> None:
    """h_reconcli: four threads call getpid and read kern.hostname while another
    breaks the connection at random moments; under RETRYCONN_INFTIME no call may
    fail (each reconnects and is sent again).  Prints how many rump processes the
    calls were served by (a new one per reconnection)."""
    c = rumpclient.connect()
    c.setconnretry(rumpclient.RETRYCONN_INFTIME)
    good = c.sysctl("kern.hostname")
    quit_at = time.monotonic() + float(seconds)
    done = threading.Event()
    called = threading.Condition()
    pids: set[int] = set()
    failures: list[BaseException] = []

    def closer() -> None:
        while not done.is_set():
            with called:  # "riseandwhine": break the connection after a call
                called.wait(1.0)
            time.sleep(random.random() * 0.02)  # a random slot, as upstream's usleep
            _disintegrate()

    def worker() -> None:
        try:
            while time.monotonic() < quit_at:
                pids.add(c.sys.getpid())
                if c.sysctl("kern.hostname") != good:
                    raise AssertionError("a wrong hostname")
                with called:
                    called.notify()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    breaker = threading.Thread(target=closer)
    breaker.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    breaker.join()
    if failures:
        raise failures[0]
    print(len(pids), flush=True)


def proc1() -> None:
    """kqueue/t_proc1.c's child: once told (a line on stdin), fork (the child exits)
    and exec a program that exits, so the watcher sees NOTE_FORK, NOTE_EXEC and
    NOTE_EXIT of this rump process."""
    c = rumpclient.connect()
    print(c.pid, flush=True)
    sys.stdin.readline()
    pid, child = c.fork()
    if pid == 0:
        child.close()
        os._exit(0)
    _wait_child(pid)
    c.exec(sys.executable, [sys.executable, "-m", "tests.sp.clients", "exec_quit"])


def exec_quit() -> None:
    """After ``exec``: take the connection over, then end (the process exits)."""
    rumpclient.connect().close()


def block_in_read() -> None:
    """Sleep in the kernel, in a read of an empty pipe, until killed."""
    c = rumpclient.connect()
    r, _ = c.sys.pipe()
    print(c.pid, flush=True)
    c.sys.read(r, 1)


def wait_forever() -> None:
    """Connect, say so, then call until the server goes (ENOTCONN)."""
    c = rumpclient.connect()
    print("connected", flush=True)
    while True:
        try:
            c.sys.getpid()
        except OSError as e:
            print(f"errno {e.errno}", flush=True)
            return
        time.sleep(0.02)  # a polling client, not a synchronisation


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
