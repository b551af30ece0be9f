"""The command line: ``python -m rumpmp boot``, ``stress``, ``cleanup``, the
sysproxy server and tools (``server``, ``halt``, ``sysctl``, ``ps``: ``spcli``) and
the observers of a server's kernel (``lockstat``, ``top``).

As the CLI entry point this module may touch the host directly: it waits for
SIGINT/SIGTERM with ``signal`` for ``boot --wait``, and points its output at
/dev/null (``os``) when the reader has gone.  ``rumpmp`` (the console script) and
``python -m rumpmp`` are the same command.
"""

from __future__ import annotations

import argparse
import os  # the CLI may: output to /dev/null once its reader has gone
import signal  # the CLI may: --wait sleeps until SIGINT or SIGTERM
import sys
from typing import Any

from rumpmp.host import lockstat, spcli, top
from rumpmp.host.kernel import Kernel, boot, cleanup
from rumpmp.rumpkern import init
from rumpmp.rumpkern.base.prf import RumpPanic
from rumpmp.torture import args as torture_args


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One clear line and exit status 2, not a usage dump."""
        sys.stderr.write(f"rumpmp: {message} (see --help)\n")
        sys.exit(2)


class _Version(argparse.Action):
    """``--version``: the installed distribution's version (looked up only when asked:
    importlib.metadata costs every other command 25 ms)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import version  # noqa: PLC0415 - only when asked

        print(f"rumpmp {version('rumpmp')}")
        parser.exit()


#: What each command's --help ends with.
EXAMPLES = {
    "": "rumpmp boot --ncpu 8\n"
    "rumpmp stress --type rw --ncpu 4 --duration 10\n"
    "rumpmp server -c 4 unix:///tmp/kern.sock\n"
    "RUMP_SERVER=unix:///tmp/kern.sock rumpmp sysctl -a",
    "boot": "rumpmp boot --ncpu 8\n"
    "rumpmp boot --ncpu 4 --timings --evcnt\n"
    "rumpmp boot --ncpu 4 --lockstat --trace boot.json\n"
    "rumpmp boot --ncpu 2 --wait",
    "stress": "rumpmp stress --type mutex --ncpu 4 --duration 10 --lockstat\n"
    "rumpmp stress --type mutex,spin,rw --campaign 20 --duration 2\n"
    "rumpmp stress --type mypkg.locks:MyLock --deterministic --seed 7 --minimize\n"
    "rumpmp stress --type cv --ncpu 4 --duration 1 --trace cv.json",
    "cleanup": "rumpmp cleanup",
    "server": "rumpmp server -c 4 unix:///tmp/kern.sock\n"
    "RUMP_LOCKSTAT=1 rumpmp server -s -c 8 tcp://127.0.0.1:7000",
    "halt": "RUMP_SERVER=unix:///tmp/kern.sock rumpmp halt",
    "sysctl": "RUMP_SERVER=unix:///tmp/kern.sock rumpmp sysctl -a\n"
    "RUMP_SERVER=unix:///tmp/kern.sock rumpmp sysctl kern.boottime kern.clockrate\n"
    "RUMP_SERVER=unix:///tmp/kern.sock rumpmp sysctl -w kern.maxfiles=2048",
    "ps": "RUMP_SERVER=unix:///tmp/kern.sock rumpmp ps",
    "lockstat": "RUMP_SERVER=unix:///tmp/kern.sock rumpmp lockstat -n 10",
    "top": "RUMP_SERVER=unix:///tmp/kern.sock rumpmp top\n"
    "RUMP_SERVER=unix:///tmp/kern.sock rumpmp top --once",
}


def _with_examples(parser: argparse.ArgumentParser, command: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    lines = EXAMPLES[command].splitlines()
    parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _ncpu(text: str) -> int:
    try:
        return init.parse_ncpu(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(e.strerror) from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rumpmp", description="rumpmp: an SMP rump kernel for Python.")
    p.add_argument("--version", action=_Version, help="print rumpmp's version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser(
        "boot",
        help="boot a kernel, print its messages, halt",
        description="Boot a kernel with one OS process per virtual CPU, print the message "
        "buffer and a summary, and halt (or, with --wait, stay up until SIGINT/SIGTERM). "
        "RUMP_NCPU, RUMP_VERBOSE, RUMP_THREADS and RUMP_MEMLIMIT are honoured.",
    )
    b.add_argument("--ncpu", type=_ncpu, help="virtual CPUs (default: RUMP_NCPU, else host CPUs)")
    b.add_argument("--verbose", action="store_true", default=None, help="print the banner too")
    b.add_argument("--hostname", help="kern.hostname (default: rump-<pid>.<host>)")
    b.add_argument("--wait", action="store_true", help="stay up until SIGINT or SIGTERM")
    b.add_argument("--timings", action="store_true", help="print each boot phase's duration")
    b.add_argument("--evcnt", action="store_true", help="print the event counters before halting")
    b.add_argument(
        "--lockstat", action="store_true", help="count lock contention, print it before halting"
    )
    b.add_argument(
        "--trace",
        metavar="PATH",
        help="record what each CPU does; written to PATH at the halt (Perfetto opens it)",
    )
    b.add_argument(
        "--no-vfs",
        dest="vfs",
        action="store_false",
        default=None,
        help="boot without a file system",
    )
    torture_args.add_parser(sub)
    sub.add_parser(
        "cleanup",
        help="unlink objects left by dead kernels",
        description="Unlink the shared memory and semaphores of kernels whose host died.",
    )
    spcli.add_parsers(sub)
    lockstat.add_parser(sub)
    top.add_parser(sub)
    _with_examples(p, "")
    for command, parser in sub.choices.items():
        _with_examples(parser, command)
    return p


def _boot(args: argparse.Namespace) -> int:
    try:  # a bad RUMP_* variable is a usage error, like a bad option
        init.boot_params(args.ncpu, args.verbose, None, args.hostname, vfs=args.vfs)
    except OSError as e:
        print(f"rumpmp: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        kernel = boot(
            args.ncpu,
            verbose=args.verbose,
            hostname=args.hostname,
            vfs=args.vfs,
            lockstat=args.lockstat or None,
            trace=args.trace,
        )
    except OSError as e:
        print(f"rumpmp: {e.strerror or e}", file=sys.stderr)
        return 1
    total = sum(kernel.timings.values())
    shown = kernel.dmesg()
    sys.stdout.write(shown)
    print(f"rumpmp: {kernel.ncpu} CPUs up in {total:.1f} ms, hostname {kernel.hostname}")
    if args.timings:
        for phase, ms in kernel.timings.items():
            print(f"  {phase:<12} {ms:8.1f} ms")
    sys.stdout.flush()
    try:
        if args.wait:
            _wait_for_signal()
        if args.evcnt:
            _print_evcnts(kernel)
        if args.lockstat:
            print("\n".join(lockstat.lockstat_table(kernel.lockstat())), flush=True)
        kernel.halt()
    except RumpPanic as e:
        print(f"rumpmp: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(kernel.dmesg()[len(shown) :])
    return 0


def _print_evcnts(kernel: Kernel) -> None:
    """The event counters as rump_printevcnts shows them, aligned."""
    rows = [(f"{group} / {name}", count) for group, name, count in kernel.evcnts()]
    width = max(len(label) for label, _ in rows)
    for label, count in rows:
        print(f"  {label:<{width}}  {count:>10}")
    sys.stdout.flush()


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM; further ones are ignored so the halt completes."""
    try:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        print("rumpmp: up; SIGINT or SIGTERM halts", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _cleanup() -> int:
    removed = cleanup()
    print(f"rumpmp: removed {len(removed)} objects of dead kernels")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """Our output's reader has gone (``rumpmp sysctl -a | head``): stop quietly, as
    NetBSD's tools do (they die of SIGPIPE, which the shell reports as 141)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())  # (so that the exit's flush has nowhere to fail)
    os.close(null)
    return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "boot":
        return _boot(args)
    if args.command == "stress":
        from rumpmp.torture import cli as torture_cli  # noqa: PLC0415 - loaded only to stress

        return torture_cli.main(args, parser.error)
    if args.command in ("server", "halt", "sysctl", "ps"):
        return getattr(spcli, args.command)(args)
    if args.command in ("lockstat", "top"):
        return {"lockstat": lockstat, "top": top}[args.command].main(args)
    return _cleanup()


if __name__ == "__main__":
    sys.exit(main())
