"""Integer rounding as the reference code does it: ``int(x)`` of a non-negative float, forgiving floating error."""

from __future__ import annotations

import math

_EPS = 1e-9


def floor(value: float) -> int:
    """``int(value)`` for non-negative values, robust to floating error just below an integer (``90 * 1.4`` -> 126)."""
    return math.floor(value + _EPS)
