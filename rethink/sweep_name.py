"""The default folder of a sweep, ``multirun_outputs/<experiment or 'sweep'>/<overrides>``: stable, so running the same
command again continues the same sweep in the same folder (``conf/hydra/default.yaml`` names it with the resolver
``${rethink.sweep_name:EXPERIMENT,OVERRIDES}``; ``hydra.sweep.dir=DIR`` gives a sweep another folder).

The resolver is cached: Hydra copies the sweep's resolver cache into every job's config (as for ``${now:...}``), so a
job, whose own overrides are those of its cell, still resolves the sweep's folder.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

from omegaconf import OmegaConf

RESOLVER = "rethink.sweep_name"
NO_OVERRIDES = "default"
READABLE_LENGTH = 60
UNSAFE = re.compile(r"[^A-Za-z0-9=,.+_-]+")  # a '/' of a nested group, brackets, quotes, spaces: '-'


def sweep_name(experiment: str | None, overrides: Sequence[str]) -> str:
    """``<experiment or 'sweep'>/<id>``: the id is the command-line overrides (but ``experiment=`` and ``dry_run=``,
    so that a dry run names the folder the sweep will use), the swept ones first (their order numbers the jobs, so
    it is kept), joined by ``__``, or ``default`` when there are none; made safe for a path and cut to whole
    overrides within 60 characters, with a short hash of them appended whenever that changed them (so different
    overrides never share a folder)."""
    rest = [o for o in overrides if o != f"experiment={experiment}" and o.partition("=")[0] != "dry_run"]
    if not rest:
        return f"{experiment or 'sweep'}/{NO_OVERRIDES}"
    ordered = sorted(rest, key=lambda o: "," not in o)  # stable: each kind keeps its order
    pieces = [UNSAFE.sub("-", o) for o in ordered]
    readable = pieces[0][:READABLE_LENGTH]
    for piece in pieces[1:]:
        if len(readable) + 2 + len(piece) > READABLE_LENGTH:
            break
        readable += "__" + piece
    if readable != "__".join(ordered):
        readable += "-" + hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:8]
    return f"{experiment or 'sweep'}/{readable}"


def _resolve(experiment: str | None, overrides: Sequence[str] | None) -> str:
    return sweep_name(experiment, [str(o) for o in overrides or []])


def register() -> None:
    """Register ``${rethink.sweep_name:...}`` with OmegaConf (once per process)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _resolve, use_cache=True)
