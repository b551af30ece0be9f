"""An earlier revision of rumpmp, side by side with this one: its files unpacked from
git into a temporary directory, and a script run against either tree in a program
of its own (the same script; only the import path differs)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def tree(revision: str) -> Iterator[pathlib.Path]:
    """``revision``'s files, unpacked in a temporary directory."""
    with tempfile.TemporaryDirectory() as d:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
        yield pathlib.Path(d)


def run_in(where: pathlib.Path, script: str, *args: str) -> Any:
    """Run ``script`` (which prints one JSON value) with ``where``'s rumpmp; its value.
    The script gets ``where`` as sys.argv[1], then ``args``."""
    out = subprocess.run(
        [sys.executable, "-c", script, str(where), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(where), "RUMP_LOCKDEBUG": "0"},
        cwd=where,  # (a -c program imports from its working directory first)
        timeout=300,
    ).stdout
    return json.loads(out.splitlines()[-1])
