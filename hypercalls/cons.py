"""The console (rumpuser_dprintf, rumpuser_putchar)."""

from __future__ import annotations

import sys


def dprintf(text: str) -> None:
    """Write debug output to the host's standard error."""
    sys.stderr.write(text)
    sys.stderr.flush()


def putchar(ch: str) -> None:
    """Write one character of console output to the host's standard output."""
    sys.stdout.write(ch)
