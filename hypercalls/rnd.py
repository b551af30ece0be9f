"""Randomness (rumpuser_getrandom)."""

from __future__ import annotations

import os


def getrandom(nbytes: int) -> bytes:
    """``nbytes`` bytes from the host's entropy source."""
    return os.urandom(nbytes)
