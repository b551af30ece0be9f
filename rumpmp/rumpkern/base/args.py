"""Checking what kernel functions are given: a wrong type is a TypeError that names
the function and the parameter (a bad value is the function's own errno)."""

from __future__ import annotations


def int_arg(value: object, what: str, func: str) -> int:
    """``value`` if it is an int (a bool is not); TypeError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{func}: {what} must be an int, not {type(value).__name__}")
    return value
