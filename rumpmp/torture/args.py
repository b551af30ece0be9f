"""The options of ``python -m rumpmp stress`` (parsed without loading the suite, so
the rest of the command line starts no slower for it)."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Any

from rumpmp.torture.layout import TYPES


def add_parser(sub: Any) -> None:
    """The ``stress`` subcommand of ``python -m rumpmp``."""
    s = sub.add_parser(
        "stress",
        help="lock torture: hammer a lock or service from every CPU and check it",
        description="Torture one kind of kernel lock or service from writer and reader lwps "
        "on every CPU, check every acquisition, and report as Linux's locktorture does. "
        "Exit status 0 on SUCCESS, 1 on FAILURE, 2 on bad usage.",
    )
    s.add_argument(
        "--type",
        default="mutex",
        type=_types,
        help=f"torture type: {', '.join(TYPES)}, an entry point of rumpmp.torture_types, "
        "or package.module:Class (a comma list takes turns in a campaign)",
    )
    s.add_argument("--ncpu", type=int, default=4, help="virtual CPUs (default 4)")
    s.add_argument("--nwriters", type=int, help="writer lwps (default 2 per CPU; rw, cv: 1)")
    s.add_argument("--nreaders", type=int, help="reader lwps (rw, cv; default 1 per CPU)")
    s.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    s.add_argument("--stat-interval", type=float, default=0.0, help="seconds between stats lines")
    s.add_argument("--long-hold", type=int, default=100, help="ms of an occasional long hold")
    s.add_argument("--nested", type=int, default=0, help="extra locks taken in order inside")
    s.add_argument("--lockdebug", action="store_true", help="boot with LOCKDEBUG")
    s.add_argument(
        "--lockstat", action="store_true", help="count lock contention and print lockstat's table"
    )
    s.add_argument(
        "--trace",
        metavar="PATH",
        help="record what each CPU does and write it to PATH (Perfetto opens it)",
    )
    s.add_argument(
        "--deterministic",
        action="store_true",
        help="one torture lwp runs at a time, in an order the seed decides (PCT), on "
        "virtual time: a seed gives the same schedule and result every time",
    )
    s.add_argument(
        "--replay-schedule",
        metavar="FILE",
        help="replay the schedule a deterministic run's --json result holds (implies "
        "--deterministic)",
    )
    s.add_argument(
        "--minimize",
        action="store_true",
        help="if the deterministic run fails, shrink its schedule to the fewest "
        "preemptions that still fail, and write it to minimized-schedule.json",
    )
    s.add_argument("--seed", type=int, help="perturbation seed (default: random, printed)")
    s.add_argument(
        "--stutter", type=float, default=0.0, help="stop all torture lwps S of every 2S seconds"
    )
    s.add_argument(
        "--shuffle",
        type=float,
        default=0.0,
        help="move the CPU processes between host cores every S seconds",
    )
    s.add_argument(
        "--freeze",
        type=float,
        default=0.0,
        help="SIGSTOP a random CPU for a few ticks every S seconds",
    )
    s.add_argument(
        "--no-perturb", dest="perturb", action="store_false", help="no seeded perturbation"
    )
    s.add_argument("--json", metavar="FILE", help="write the result as JSON ('-': stdout only)")
    s.add_argument(
        "--self-check", action="store_true", help="first prove the checkers fail a broken lock"
    )
    s.add_argument("--campaign", type=int, metavar="N", help="run N seeds, each on a fresh kernel")
    s.add_argument(
        "--ray", metavar="ADDRESS", help="campaign runs as Ray tasks ('local' starts one)"
    )


def _types(text: str) -> list[str]:
    """Built-in names, names of the entry point group ``rumpmp.torture_types``, and
    ``package.module:Class`` (imported when the run starts)."""
    names = [t.strip() for t in text.split(",")]
    known = [*TYPES, *(ep.name for ep in entry_points(group="rumpmp.torture_types"))]
    bad = [t for t in names if t not in known and ":" not in t]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown type {bad[0] if bad else text!r} "
            f"(one of {', '.join(known)}, or package.module:Class)"
        )
    return names
