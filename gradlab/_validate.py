"""Argument checks shared by the package: each error names the bad value
and the valid ones."""

from __future__ import annotations


def check_choice(name: str, value, valid) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``valid``."""
    if value not in valid:
        names = ", ".join(repr(v) for v in valid)
        raise ValueError(f"unknown {name} {value!r}; valid: {names}")


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
