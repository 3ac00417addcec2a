"""Type and range checks of config values, each failing with a message that names the key, the value and the fix."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rethink.errors import UserError


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def get(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` for a dotted key; a missing key or an unresolvable interpolation is a user error."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as exc:  # omegaconf raises several error types for bad interpolations
        raise UserError(f"config value '{key}' cannot be resolved: {exc}") from None
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def positive_int(cfg: DictConfig, key: str, allow_none: bool = False, allow_zero: bool = False) -> int | None:
    """An integer > 0 (or >= 0, or None when allowed)."""
    value = get(cfg, key)
    if value is None and allow_none:
        return None
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or null" if allow_none else ""
        raise UserError(
            f"{key}={_describe(value)}: expected an integer >= {low}{extra}, e.g. {key}={max(low, 1) * 10}."
        )
    return value


def number(
    cfg: DictConfig, key: str, low: float = 0.0, high: float | None = None, low_inclusive: bool = False
) -> float:
    """A real number in (low, high] (or [low, high] with ``low_inclusive``)."""
    value = get(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise UserError(f"{key}={_describe(value)}: expected a number {bound}.")
    return float(value)


def int_list(cfg: DictConfig, key: str, allow_none: bool = True) -> list[int] | None:
    """A list of non-negative integers (or None when allowed)."""
    value = get(cfg, key)
    if value is None and allow_none:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise UserError(f"{key}={_describe(value)}: expected a list of non-negative integers, e.g. {key}=[80,120].")
    return value


def choice(cfg: DictConfig, key: str, accepted: list[str] | tuple[str, ...]) -> str:
    """One of ``accepted`` names."""
    value = get(cfg, key)
    if value not in accepted:
        raise UserError(f"{key}={_describe(value)} is not known; accepted: {', '.join(accepted)}.")
    return value
