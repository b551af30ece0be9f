"""The checks the test command enforces besides the tests: ruff's lint rules and
formatting, and the type checker over hypercalls/ and rumpmp/ (settings in
pyproject.toml)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=280
    )


@pytest.mark.timeout(300)
def test_ruff_lint_finds_nothing():
    out = run("ruff", "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.timeout(300)
def test_the_code_is_ruff_formatted():
    out = run("ruff", "format", "--check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.timeout(300)
def test_the_type_checker_finds_nothing():
    out = run("mypy")
    assert out.returncode == 0, out.stdout + out.stderr
