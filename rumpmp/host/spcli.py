"""The sysproxy commands: ``python -m rumpmp server`` (rump_server(1)), and the
tools that talk to a server at $RUMP_SERVER: ``halt`` (rump.halt(1)), ``sysctl``
(rump.sysctl(8)) and ``ps``.

Host side: the server waits for SIGINT/SIGTERM with ``signal``; the tools write to
stdio.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal  # the server halts its kernel on SIGINT/SIGTERM
import sys
import threading
import time  # the tools print the boot time as a date
from typing import Any

from rumpmp import rumpclient
from rumpmp.host import daemon
from rumpmp.host.kernel import Kernel, boot
from rumpmp.rumpkern.base.arena import H_HOWTO
from rumpmp.sys.sysctl import CTL_QUERY, clockinfo
from rumpmp.sys.time import timespec

RB_HALT, RB_NOSYNC, RB_DUMP = 0x8, 0x4, 0x100


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file mode (octal, like 0660)")
    return mode


def add_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "server",
        help="boot a kernel and serve its system calls at URL",
        description="Boot a kernel and serve its system calls to other programs at URL "
        "(unix://PATH, unix:///ABSPATH, tcp://127.0.0.1:PORT, tcp://[::1]:PORT). "
        "It becomes a daemon once it listens, unless -s; SIGINT or SIGTERM halts it.",
    )
    s.add_argument("url", metavar="URL")
    s.add_argument("-c", dest="ncpu", type=int, help="virtual CPUs")
    s.add_argument("-m", dest="modules", action="append", default=[], help="load MODULE")
    s.add_argument("-r", dest="memlimit", help="the kernel's memory (bytes, or k/m/g)")
    s.add_argument("-v", dest="verbose", action="store_true", help="boot verbosely")
    s.add_argument("-s", dest="foreground", action="store_true", help="stay in the foreground")
    s.add_argument("--mode", type=_mode, default=0o600, help="the socket's mode (0600)")
    s.add_argument("--listen-any", action="store_true", help="allow a non-loopback address")
    s.add_argument("--token-file", help="TCP clients must prove they hold this token")
    s.add_argument("--root-clients", action="store_true", help="every client is root (rump's way)")
    s.add_argument(
        "--no-vfs",
        dest="vfs",
        action="store_false",
        default=None,
        help="serve without a file system",
    )
    h = sub.add_parser(
        "halt", help="halt the kernel at $RUMP_SERVER", description="rump.halt", add_help=False
    )
    h.add_argument("--help", action="help", help="show this help message and exit")
    h.add_argument("-d", action="store_true", help="dump (RB_DUMP)")
    h.add_argument("-h", dest="halt", action="store_true", help="halt, do not exit (RB_HALT)")
    h.add_argument("-n", action="store_true", help="do not sync (RB_NOSYNC)")
    c = sub.add_parser("sysctl", help="sysctl at $RUMP_SERVER", description="rump.sysctl")
    c.add_argument("-a", dest="all", action="store_true", help="every node")
    c.add_argument("-w", dest="write", action="store_true", help="set NAME=VALUE")
    c.add_argument("names", nargs="*", metavar="NAME[=VALUE]")
    sub.add_parser("ps", help="the processes of the kernel at $RUMP_SERVER")


# -- the server --------------------------------------------------------------------------------


def server(args: argparse.Namespace) -> int:
    from rumpmp.sp.server import load_token  # noqa: PLC0415 - boot need not load it

    if args.memlimit:
        os.environ["RUMP_MEMLIMIT"] = args.memlimit
    if args.listen_any and not args.token_file:
        return _usage("--listen-any needs --token-file")
    try:
        token = load_token(args.token_file) if args.token_file else None
    except (OSError, ValueError) as e:
        return _usage(str(e))
    if not args.foreground:
        daemon.rump_daemonize_begin()
    try:
        kernel = boot(args.ncpu, verbose=args.verbose or None, vfs=args.vfs)
    except OSError as e:
        return _failed(args, e)
    stop = threading.Event()  # set by SIGINT/SIGTERM: handled before anyone can send them
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for name in args.modules:
            kernel.sys.modctl(1, name)  # MODCTL_LOAD
        kernel.listen(
            args.url,
            mode=args.mode,
            listen_any=args.listen_any,
            token=token,
            root_clients=args.root_clients,
        )
    except (OSError, ValueError) as e:
        kernel.halt()
        return _failed(args, e)
    if args.foreground:
        print(f"rumpmp: serving {kernel.ncpu} CPUs at {args.url}", flush=True)
    else:
        daemon.rump_daemonize_done(0)
    _serve_until(kernel, stop)
    if kernel.panic is not None:  # its clients saw ENOTCONN; the caller sees why
        print(f"rumpmp server: {kernel.panic}", file=sys.stderr)
        return 1
    return 0


def _failed(args: argparse.Namespace, e: BaseException) -> int:
    err = getattr(e, "errno", None) or errno.EINVAL
    if not args.foreground:
        daemon.rump_daemonize_done(err)
    print(f"rumpmp server: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
    return 1


def _serve_until(kernel: Kernel, stop: threading.Event) -> None:
    """Until SIGINT/SIGTERM (``stop``: halt cleanly) or a remote halt (then exit,
    unless it was RB_HALT: rump's server stays, halted, until a signal)."""
    while not stop.wait(0.2):
        if kernel.state != "running" and not kernel._arena.w[H_HOWTO] & RB_HALT:
            break
    kernel.halt()


def _usage(message: str) -> int:
    print(f"rumpmp: {message} (see --help)", file=sys.stderr)
    return 2


# -- the tools ----------------------------------------------------------------------------------


def _client() -> rumpclient.Client:
    return rumpclient.connect()


def halt(args: argparse.Namespace) -> int:
    howto = (
        (RB_DUMP if args.d else 0) | (RB_HALT if args.halt else 0) | (RB_NOSYNC if args.n else 0)
    )
    try:
        client = _client()
        client.sys.reboot(howto, None)
    except OSError as e:
        if e.errno not in (errno.ENOTCONN, errno.ECONNRESET):  # the kernel went: done
            print(f"rumpmp halt: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


def _walk(client: Any, mib: tuple[int, ...], prefix: str) -> list[str]:
    names = []
    for num, name, kind in client.sysctl((*mib, CTL_QUERY)):
        if kind == "node":
            names += _walk(client, (*mib, num), f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def show(name: str, value: object) -> list[str]:
    """``name = value`` line(s) as NetBSD's sysctl(8) prints them: a boot time as a
    date, a clockinfo as its fields, a list (kern.proc2, kern.evcnt, ...) a line per
    entry, a bool as 1 or 0, other structs' bytes in hex."""
    if isinstance(value, list):
        return [f"{name} = {_fields(item)}" for item in value]
    return [f"{name} = {_value(value)}"]


def _value(value: object) -> str:
    if isinstance(value, timespec):
        return time.ctime(value.tv_sec)
    if isinstance(value, clockinfo):  # NetBSD's order
        return ", ".join(f"{f} = {getattr(value, f)}" for f in _CLOCKINFO_ORDER)
    if isinstance(value, bool):
        return str(int(value))
    return value.hex() if isinstance(value, bytes) else str(value)


_CLOCKINFO_ORDER = ("tick", "tickadj", "hz", "profhz", "stathz")


def _fields(item: object) -> str:
    if hasattr(item, "_fields"):  # a named tuple: field=value, as ps -o shows them
        return " ".join(f"{f}={getattr(item, f)}" for f in item._fields)
    return " ".join(map(str, item)) if isinstance(item, tuple) else str(item)


def sysctl(args: argparse.Namespace) -> int:
    try:
        client = _client()
        names = _walk(client, (), "") if args.all else args.names
        if not names:
            return _usage("sysctl: name a node, or -a")
        status = 0
        for item in names:
            name, eq, value = item.partition("=")
            if eq and not args.write:
                return _usage(f"sysctl: {item}: setting a value needs -w")
            try:
                got = client.sysctl(name, _parse(value)) if eq else client.sysctl(name)
            except OSError as e:
                print(f"rumpmp sysctl: {name}: {e.strerror or e}", file=sys.stderr)
                status = 1
                continue
            if eq:
                print(f"{name}: {_value(got)} -> {value}")
            else:
                print("\n".join(show(name, got)))
        return status
    except BrokenPipeError:
        raise  # our reader has gone: the command line stops quietly
    except OSError as e:
        print(f"rumpmp sysctl: {e.strerror or e}", file=sys.stderr)
        return 1


def _parse(text: str) -> object:
    try:
        return int(text, 0)
    except ValueError:
        return text


def ps(args: argparse.Namespace) -> int:
    try:
        rows: Any = _client().sysctl("kern.proc2")
    except OSError as e:
        print(f"rumpmp ps: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"{'PID':>5} {'PPID':>5} {'UID':>6} {'GID':>6} {'TIME':>9}  COMMAND")
    for pid, ppid, uid, gid, name, seconds in rows:
        print(f"{pid:>5} {ppid:>5} {uid:>6} {gid:>6} {seconds:>8.3f}s  {name}")
    return 0
