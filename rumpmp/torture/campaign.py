"""Campaigns: many seeds, each a fresh kernel in a process of its own.

Each run is ``python -m rumpmp stress ... --seed S --json -`` in a child process, so a
kernel that hangs or crashes costs one run and nothing else.  Locally the runs go in
parallel up to the host's cores; with Ray they are tasks on a Ray cluster.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os  # the campaign runs in the host: it counts the host's cores
import shlex
import subprocess  # each run is a child process
import sys  # the children run the same interpreter
from typing import Any

from rumpmp.torture.driver import JOIN_LIMIT, Params

#: A child run is given up this long after its duration and the longest wait for its
#: lwps (boot and halt included): a last resort, since a run that stalls reports what
#: did not finish itself, and one that is only slow must not be cut off.
SLACK = 120.0


def child_argv(params: Params) -> list[str]:
    """The command that runs one seed and prints its JSON result."""
    return [sys.executable, "-m", "rumpmp", "stress", "--json", "-", *params.argv()[4:]]


def run_child(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run one seed; its JSON result, or a failed result saying what went wrong."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"success": False, "error": f"no result within {timeout:.0f} s"}
    try:
        result: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"success": False, "error": f"exit status {out.returncode}: {tail}"}
    return result


def _run_local(argvs: list[list[str]], timeout: float) -> list[dict[str, Any]]:
    workers = max(1, min(len(argvs), len(os.sched_getaffinity(0))))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda argv: run_child(argv, timeout), argvs))


def _run_ray(argvs: list[list[str]], timeout: float, address: str) -> list[dict[str, Any]]:
    try:
        import ray  # noqa: PLC0415 - optional: the [cluster] extra
    except ImportError:
        raise OSError(2, "--ray needs Ray: pip install 'rumpmp[cluster]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            logging_level=logging.ERROR,
        )
    try:
        task = ray.remote(run_child)
        return list(ray.get([task.remote(argv, timeout) for argv in argvs]))
    finally:
        if started:
            ray.shutdown()


def run_campaign(runs: list[Params], ray_address: str | None = None) -> list[dict[str, Any]]:
    """Run each (seeded) parameter set in a child process; each run's JSON result.
    A run that produced none gets ``success`` false, an ``error`` and its replay."""
    timeout = max(p.duration for p in runs) + JOIN_LIMIT + SLACK
    argvs = [child_argv(p) for p in runs]
    results = _run_ray(argvs, timeout, ray_address) if ray_address else _run_local(argvs, timeout)
    for p, result in zip(runs, results, strict=True):
        result.setdefault("type", p.type)
        result.setdefault("seed", p.seed)
        result.setdefault("replay", shlex.join(p.argv()))
    return results
