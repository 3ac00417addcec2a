"""A typed layer over the composed config: every group option has a frozen dataclass schema, and :func:`parse` turns
a plain dict into it, refusing an unknown key, a wrong type or a value out of range with one message naming the key.

Ranges and choices live in the type annotations (``Annotated[int, AtLeast(1)]``, ``Literal["global", "layer"]``), so a
schema reads as its own documentation. After parsing, a schema may check relations between its fields in
``validate(prefix)``, raising :class:`UserError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union

from rethink.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class AtLeast:
    """A number ``>= low`` (``> low`` when ``strict``)."""

    low: float
    strict: bool = False

    def holds(self, value: float) -> bool:
        return value > self.low if self.strict else value >= self.low

    def describe(self, integer: bool) -> str:
        return f"{'an integer' if integer else 'a number'} {'>' if self.strict else '>='} {self.low}"


@dataclass(frozen=True)
class Fraction:
    """A number in ``[0, 1)`` (or ``[0, 1]`` with ``closed``)."""

    closed: bool = False

    def holds(self, value: float) -> bool:
        return 0 <= value <= 1 if self.closed else 0 <= value < 1

    def describe(self, integer: bool) -> str:
        return f"a number in [0, 1{']' if self.closed else ')'}"


PositiveInt = Annotated[int, AtLeast(1)]
NonNegativeInt = Annotated[int, AtLeast(0)]
PositiveFloat = Annotated[float, AtLeast(0.0, strict=True)]
NonNegativeFloat = Annotated[float, AtLeast(0.0)]
Ratio = Annotated[float, Fraction()]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _strip_optional(kind: Any) -> tuple[Any, bool]:
    """``X`` of ``X | None`` and whether None is allowed."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) < len(typing.get_args(kind)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return kind, False


def _expectation(kind: Any) -> str:
    """What a value of ``kind`` must be, in words (``an integer >= 1``)."""
    kind, optional = _strip_optional(kind)
    extra = " or null" if optional else ""
    if typing.get_origin(kind) is Annotated:
        base, *meta = typing.get_args(kind)
        return meta[0].describe(base is int) + extra
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind))) + extra
    if typing.get_origin(kind) in (list, tuple):
        return f"a list of {_items(typing.get_args(kind)[0])}" + extra
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(kind, getattr(kind, "__name__", str(kind))) + extra


def _items(kind: Any) -> str:
    """Values of ``kind`` in the plural (``non-negative integers``)."""
    if typing.get_origin(kind) is Annotated:
        base, constraint = typing.get_args(kind)[:2]
        if base is int and isinstance(constraint, AtLeast) and constraint.low == 0 and not constraint.strict:
            return "non-negative integers"
    plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    return plural.get(kind, f"values ({_expectation(kind)})")


def _fail(key: str, value: Any, kind: Any) -> UserError:
    example = ""
    plain, _ = _strip_optional(kind)
    if typing.get_origin(plain) is Annotated and typing.get_args(plain)[0] is int:
        example = f", e.g. {key}={max(1, int(typing.get_args(plain)[1].low)) * 10}"
    elif typing.get_origin(plain) in (list, tuple):
        example = f", e.g. {key}=[80,120]"
    return UserError(f"{key}={_describe(value)}: expected {_expectation(kind)}{example}.")


def coerce(value: Any, kind: Any, key: str) -> Any:
    """``value`` as ``kind`` (ints widen to floats, numbers to strings), or a :class:`UserError` naming ``key``."""
    plain, optional = _strip_optional(kind)
    if value is None:
        if optional or kind is Any:
            return None
        raise _fail(key, value, kind)
    if plain is Any:
        return value
    origin = typing.get_origin(plain)
    if origin is Annotated:
        base, constraint = typing.get_args(plain)[:2]
        try:
            result = coerce(value, base, key)
        except UserError:
            raise _fail(key, value, kind) from None
        if not constraint.holds(result):
            raise _fail(key, value, kind)
        return result
    if origin is Literal:
        if value not in typing.get_args(plain):
            accepted = ", ".join(map(str, typing.get_args(plain)))
            raise UserError(f"{key}={_describe(value)} is not known; accepted: {accepted}.")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(key, value, kind)
        try:
            return [coerce(item, typing.get_args(plain)[0], f"{key}[{i}]") for i, item in enumerate(value)]
        except UserError:
            raise _fail(key, value, kind) from None
    if origin in (dict, Mapping) or plain is dict:
        if not isinstance(value, Mapping):
            raise _fail(key, value, kind)
        item_kind = typing.get_args(plain)[1] if typing.get_args(plain) else Any
        return {str(k): coerce(v, item_kind, f"{key}.{k}") for k, v in value.items()}
    if origin in (Union, types.UnionType):
        for option in typing.get_args(plain):
            try:
                return coerce(value, option, key)
            except UserError:
                continue
        raise UserError(
            f"{key}={_describe(value)}: expected one of {', '.join(map(_expectation, typing.get_args(plain)))}."
        )
    if dataclasses.is_dataclass(plain):
        if not isinstance(value, Mapping):
            raise UserError(f"{key}={_describe(value)}: expected a group of settings ({plain.__name__}).")
        return parse(plain, value, key)
    if plain is bool:
        if isinstance(value, bool):
            return value
    elif plain is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif plain is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif plain is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise _fail(key, value, kind)


def parse(schema: type[T], data: Mapping[str, Any], prefix: str, what: str | None = None) -> T:
    """``data`` as an instance of the dataclass ``schema``: unknown keys, missing required keys, wrong types and values
    out of range are :class:`UserError`s naming ``prefix.key``; ``what`` names the option in the message
    (``pruner=l1``). Then the schema's own ``validate(prefix)``, if it has one."""
    hints = typing.get_type_hints(schema, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    where = f" of {what}" if what else ""
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean {prefix}.{close[0]}?" if close else ""
            raise UserError(
                f"{prefix}.{key}: no such setting{where}; its settings are: {', '.join(fields) or '(none)'}.{hint}"
            )
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            values[name] = coerce(data[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UserError(f"{key}: missing setting{where}; give {key}=<{_expectation(hints[name])}>.")
    result = schema(**values)
    validate = getattr(result, "validate", None)
    if validate is not None:
        validate(prefix)
    return result


def as_dict(settings: Any) -> dict[str, Any]:
    """A schema instance as a plain, JSON-ready dict (nested schemas too)."""
    return dataclasses.asdict(settings)
