"""``python -m rumpmp stress``: running the torture suite from the command line.

Runs one torture test (or, with ``--campaign N``, N seeds) and reports as Linux's
locktorture does; its options are in ``args``.  As a command-line entry point it
writes to stdio with ``sys``.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys  # the CLI may: it writes the report to stdio
from collections.abc import Callable
from dataclasses import fields
from typing import Any, NoReturn, TextIO

from rumpmp.torture import campaign
from rumpmp.torture.driver import Params, Result, Snapshot, minimize, run, self_check

NOT_CHECKED = (
    "rumpmp stress: warning: the busted self-check has not run in this session, so nothing "
    "shows the checkers can fail; add --self-check"
)


def _params(args: argparse.Namespace, type_: str, seed: int | None) -> Params:
    names = {f.name for f in fields(Params)} - {"type", "seed"}
    return Params(type=type_, seed=seed, **{n: getattr(args, n) for n in names}).resolve()


def main(args: argparse.Namespace, usage: Callable[[str], NoReturn]) -> int:
    """Run ``stress``; ``usage(message)`` reports a usage error (exit status 2)."""
    if args.ray and not args.campaign:
        usage("--ray runs a campaign: give --campaign N")
    if args.campaign is not None and args.campaign < 1:
        usage("--campaign: N must be at least 1")
    if args.minimize and (args.campaign or not (args.deterministic or args.replay_schedule)):
        usage("--minimize shrinks one deterministic run: give --deterministic, not --campaign")
    if args.trace and args.campaign:
        usage("--trace records one run: not with --campaign")
    try:
        runs = _plan(args)
    except (ValueError, TypeError) as e:
        usage(str(e))
    quiet = args.json == "-"
    out = sys.stderr if quiet else sys.stdout
    if args.self_check and not _self_check(args, out):
        return 1
    if not args.self_check and "busted" not in args.type:
        print(NOT_CHECKED, file=sys.stderr)
    if args.campaign:
        return _campaign(args, runs, out)
    result = _single(runs[0], out, live=out.isatty() and not quiet)
    if args.trace:
        print(
            f"{result.params.type}-torture: trace in {args.trace} (ui.perfetto.dev opens it)",
            file=out,
        )
    if args.json:
        _write_json(args.json, result.to_json())
    if args.minimize and not result.success:
        _minimize(result, out)
    return 0 if result.success else 1


MINIMIZED = "minimized-schedule.json"


def _minimize(result: Result, out: TextIO) -> None:
    """Shrink the failing run's schedule; print and save the smallest that fails."""
    t = result.params.type
    before = len(result.extra["schedule"]["overrides"])
    print(f"{t}-torture: minimizing a schedule of {before} preemptions ...", file=out, flush=True)
    kept, smallest, runs = minimize(result)
    smallest.params.replay_schedule = MINIMIZED  # (it ran from a temporary file)
    _write_json(MINIMIZED, smallest.to_json())
    replay = smallest.params.argv()
    print(
        f"{t}-torture: minimized in {runs} runs: {len(kept)} preemptions (from {before}), "
        f"{smallest.params.duration:g} s, still fail: "
        f"{', '.join(f.what for f in smallest.failures) or 'deadlock'}",
        file=out,
    )
    print(f"{t}-torture: preemptions (choice, lwp): {kept}", file=out)
    print(f"{t}-torture: saved to {MINIMIZED}; replay: {shlex.join(replay)}", file=out)


def _plan(args: argparse.Namespace) -> list[Params]:
    """Every run's resolved parameters: one, or one per campaign seed."""
    n = args.campaign or 1
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    return [_params(args, args.type[i % len(args.type)], first + i) for i in range(n)]


def _self_check(args: argparse.Namespace, out: TextIO) -> bool:
    result = self_check(args.ncpu)
    fails = result.writes.fail
    if result.success:
        print(
            "rumpmp stress: self-check FAILED: the broken lock ran without a violation "
            "being seen, so the checkers cannot be trusted",
            file=sys.stderr,
        )
        return False
    print(
        f"self-check: the busted lock failed as it must ({fails} violations seen in {result.elapsed:.1f} s)",
        file=out,
    )
    return True


def _single(p: Params, out: TextIO, live: bool) -> Result:
    print(f"{p.type}-torture:--- Start of test: {p.line()}", file=out, flush=True)

    def interval(snap: Snapshot) -> None:
        print(f"{p.type}-torture: after {snap.elapsed:.0f} s:", file=out)
        print(snap.writes.line(p.type, "Writes"), file=out)
        if snap.reads is not None:
            print(snap.reads.line(p.type, "Reads "), file=out)
        out.flush()

    if live:
        from rumpmp.torture import live as live_display  # noqa: PLC0415 - only for a terminal

        with live_display.Display(p) as display:  # instead of the scrolling lines
            result = run(p.type, on_tick=display.update, **_run_kwargs(p))
    else:
        result = run(p.type, on_interval=interval, **_run_kwargs(p))
    for line in result.lines():
        print(line, file=out)
    out.flush()
    return result


def _run_kwargs(p: Params) -> dict[str, Any]:
    return {f.name: getattr(p, f.name) for f in fields(Params) if f.name != "type"}


def _campaign(args: argparse.Namespace, runs: list[Params], out: TextIO) -> int:
    where = f"Ray at {args.ray}" if args.ray else "parallel on this host"
    print(f"campaign: {len(runs)} runs of {args.duration:g} s, {where}", file=out, flush=True)
    try:
        results = campaign.run_campaign(runs, args.ray)
    except OSError as e:
        print(f"rumpmp stress: {e.strerror or e}", file=sys.stderr)
        return 2
    for line in campaign_table(results):
        print(line, file=out)
    if args.json:
        _write_json(args.json, {"version": 1, "campaign": results})
    return 0 if all(r["success"] for r in results) else 1


def campaign_table(results: list[dict[str, Any]]) -> list[str]:
    """The table of a campaign's runs, then the replay line of each failing one."""
    lines = [f"{'seed':>10}  {'type':<8} {'result':<8} {'writes/s':>10} {'reads/s':>10}  failures"]
    for r in results:
        verdict = "SUCCESS" if r["success"] else "FAILURE"
        elapsed = r.get("elapsed") or 1.0
        writes = r.get("writes") or {}
        reads = r.get("reads") or {}
        wps = f"{writes.get('total', 0) / elapsed:,.0f}" if writes else "-"
        rps = f"{reads.get('total', 0) / elapsed:,.0f}" if reads else "-"
        lines.append(
            f"{r['seed']:>10}  {r['type']:<8} {verdict:<8} {wps:>10} {rps:>10}  {_found(r)}"
        )
    failing = [r for r in results if not r["success"]]
    if failing:
        lines.append("replay the failing seeds with:")
        lines += [f"  {r['replay']}" for r in failing]
    return lines


def _found(r: dict[str, Any]) -> str:
    """What a run found, in a line: its violations, a panic, the lwps that did not
    finish, or why it gave no result; "-" for none.  A failing run always says why."""
    kinds: dict[str, int] = {}
    for f in r.get("failures", []):
        kinds[f["what"]] = kinds.get(f["what"], 0) + f["count"]
    found = [f"{what} ({n}x)" for what, n in kinds.items()]
    if r.get("panic"):
        found.append(f"panic: {r['panic']}")
    if left := r.get("unfinished"):
        found.append(
            f"{len(left)} lwps did not finish ("
            + ", ".join(f"lwp {u['lwp']} on cpu{u['cpu']}: {u['state']}" for u in left)
            + ")"
        )
    if r.get("deadlock"):
        found.append("deadlock: " + "; ".join(r["deadlock"]))
    if r.get("error"):
        found.append(r["error"])
    if not found and not r["success"]:
        found.append("failed without saying why (a bug in rumpmp stress: please report it)")
    return "; ".join(found) or "-"


def _write_json(dest: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2)
    if dest == "-":
        print(text)
    else:
        with open(dest, "w") as f:
            f.write(text + "\n")
