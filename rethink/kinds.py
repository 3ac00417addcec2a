"""Registered kinds: every option of the ``dataset``, ``schedule``, ``pruner`` and ``task`` groups is a class,
registered under its name, that a config option selects by ``name`` or imports by ``_target_`` (a class path, as
lightning-hydra-template names its modules). A kind from the user's own package is selectable as soon as its module
is imported (``plugins=[mypkg]``, or the option's ``_target_``); nothing under ``rethink/`` lists the options.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Mapping, TypeVar

from rethink.errors import UserError

T = TypeVar("T", bound=type)


class Kinds(Generic[T]):
    """The registered classes of one config group (subclasses of ``base``), by option name."""

    def __init__(self, group: str, base: type, name_of: Callable[[type], Any], public: str) -> None:
        """``name_of``: a class's option name; ``public``: where users import ``base`` from (for messages)."""
        self.group, self.base, self.name_of, self.public = group, base, name_of, public
        self.classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Make ``cls`` the option ``name_of(cls)`` of the group."""
        name = self.name_of(cls) if isinstance(cls, type) and issubclass(cls, self.base) else None
        if not isinstance(name, str):
            raise TypeError(f"{self.group}: register a {self.base.__name__} subclass with a string name, got {cls!r}")
        self.classes[name] = cls
        return cls

    def get(self, name: object) -> T | None:
        """The registered class ``name``, or None."""
        return self.classes.get(name) if isinstance(name, str) else None

    def accepted(self) -> str:
        return ", ".join(self.classes)

    def select(self, node: Mapping[str, Any], accepted: str | None = None) -> T:
        """The class a config node selects: by ``name``, else by ``_target_`` (imported, which registers it); a
        :class:`UserError` naming the bad value and the accepted options otherwise."""
        name, target = node.get("name"), node.get("_target_")
        cls = self.get(name)
        if cls is None and isinstance(target, str):
            cls = self._imported(target)
            if name is not None and name != self.name_of(cls):
                cls = None
            else:
                self.classes.setdefault(self.name_of(cls), cls)
        if cls is None:
            raise UserError(
                f"{self.group}.name={name!r} ({type(name).__name__}) is not known; accepted: "
                f"{accepted or self.accepted()}."
            )
        return cls

    def _imported(self, target: str) -> T:
        cls = import_target(target, self.group, f"a {self.base.__name__} class path")
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise UserError(f"{self.group}._target_={target!r} is not a {self.base.__name__} subclass ({self.public}).")
        return cls  # type: ignore[return-value]


def import_target(target: str, group: str, what: str) -> Any:
    """The object a ``_target_`` path names (a class, function or module), imported; a :class:`UserError` naming the
    path and ``what`` to give instead when it cannot be imported."""
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception as exc:  # Hydra wraps import errors of every kind
        raise UserError(f"{group}._target_={target!r} cannot be imported ({exc}); give {what}.") from None


def field_default(cls: type, field: str = "name") -> Any:
    """The default of a dataclass field (a settings class names its option by its ``name`` field's default)."""
    found = getattr(cls, "__dataclass_fields__", {}).get(field)
    return None if found is None else found.default


def node_without_target(node: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A group's node as its settings schema parses it: the class's ``name``, without ``_target_``."""
    return {"name": name, **{k: v for k, v in node.items() if k not in ("name", "_target_")}}
