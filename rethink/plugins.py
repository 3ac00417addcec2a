"""Plugins from the user's own package: ``plugins=[mypkg.rethink]`` on the command line (or
``RETHINK_PLUGINS=mypkg.rethink,other``) names modules imported before Hydra composes the config, so that what they
register on import exists for every option; the ``conf/`` folder beside each such module joins Hydra's config search
path, so ``pruner=<their option>`` composes on the plain command line, with no ``--config-path`` or
``hydra.searchpath``. A cell imports them again before it plans (a joblib or SLURM worker is a fresh process).

A plugin is found as any Python module is: its folder on ``PYTHONPATH``, or installed (``pip install -e``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from rethink.errors import UserError

ENV = "RETHINK_PLUGINS"
KEY = "plugins"


def requested(argv: Sequence[str]) -> list[str]:
    """The plugin modules named by ``RETHINK_PLUGINS`` (comma-separated) and a ``plugins=...`` override
    (``plugins=[a,b]``, ``plugins=a``, also ``+plugins=``), in that order, each once."""
    names = [n.strip() for n in os.environ.get(ENV, "").split(",")]
    for override in argv:
        key, equals, value = override.partition("=")
        if equals and key.lstrip("+") == KEY:
            names += [n.strip().strip("'\"") for n in value.strip().strip("[]").split(",")]
    return list(dict.fromkeys(n for n in names if n))


def load(modules: Iterable[str]) -> list[Path]:
    """Import each plugin module; return the ``conf/`` folders beside them (in a package's folder — a namespace
    package's too —, beside a plain module's file) that exist."""
    folders = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UserError(
                f"plugins: cannot import '{name}' ({type(exc).__name__}: {exc}). A plugin is a module Python can "
                "import: put the folder holding its package on PYTHONPATH or install it with pip install -e."
            ) from None
        if hasattr(module, "__path__"):  # a package
            where = [Path(folder) for folder in module.__path__]
        else:
            where = [Path(module.__file__).parent] if module.__file__ else []
        folders += [(folder / "conf").resolve() for folder in where if (folder / "conf").is_dir()]
    return folders


def with_search_path(argv: list[str], folders: Sequence[Path]) -> list[str]:
    """``argv`` with the plugins' ``conf/`` folders appended to Hydra's config search path (after any
    ``hydra.searchpath`` the command gives itself)."""
    if not folders:
        return argv
    entries = [f"file://{folder}" for folder in folders]
    given = [a for a in argv if a.partition("=")[0] == "hydra.searchpath"]
    if given:
        own = given[-1].partition("=")[2].strip().strip("[]")
        entries = [e for e in own.split(",") if e] + entries
    return [a for a in argv if a not in given] + [f"hydra.searchpath=[{','.join(entries)}]"]
