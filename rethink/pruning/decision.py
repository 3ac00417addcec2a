"""A pruning decision: what a pruner keeps of a model, as data that is stored (the prune stage's artifact), broadcast
to DDP ranks and reloaded — never a pickled module.

Files of a decision directory: ``spec.json`` (the pruned architecture), ``weights.pt`` (the pruned model's weights,
what fine-tuning inherits), ``keep.json`` (kept channel indices per group, or per-stage kept-block flags), and for
unstructured pruning ``masks.pt`` (bool keep-masks per conv) with ``sparsity.json``; ``decision.json`` holds the
pruner's own notes (thresholds, calibration facts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rethink.arch.spec import ArchSpec
from rethink.io import save_tensors_atomic, write_json_atomic, write_text_atomic
from rethink.pruning.masks import MaskKeeper, load_masks, save_masks, sparse_he_init_, sparsity_report

if TYPE_CHECKING:
    from pytorch_lightning import Callback

Masks = dict[str, Tensor]  # conv module path -> bool mask of kept weights (unstructured pruning)


@dataclass
class Decision:
    """The pruned spec and weights, and what was kept (channels per group, or weight masks)."""

    spec: ArchSpec
    state: dict[str, Tensor]
    keep: dict[str, list[int]] = field(default_factory=dict)
    masks: Masks | None = None  # unstructured pruning: the spec stays the large one, the masks zero the weights
    notes: dict[str, Any] = field(default_factory=dict)

    def keepers(self) -> list["Callback"]:
        """Callbacks a training of this decision's model needs: weight masks kept at zero (none for channels)."""
        return [] if self.masks is None else [MaskKeeper(self.masks)]

    def fresh_state(self, spec: ArchSpec, seed: int) -> dict[str, Tensor] | None:
        """A fresh initialisation of the decided model ``spec``: with masks, the sparsity-aware He init
        (docs/protocol.md#magnitude); None for channels (the builder's own init, seeded by the stage)."""
        if self.masks is None:
            return None
        from rethink.arch import build

        torch.manual_seed(seed)
        model = build(spec)
        sparse_he_init_(model, self.masks, torch.Generator().manual_seed(seed))
        return model.state_dict()

    def save(self, directory: Path) -> list[str]:
        """Write the decision's files into ``directory`` (atomically, each); returns their names."""
        save_tensors_atomic(directory / "weights.pt", self.state)
        write_text_atomic(directory / "spec.json", self.spec.to_json() + "\n")
        write_json_atomic(directory / "keep.json", self.keep)
        write_json_atomic(directory / "decision.json", self.notes)
        files = ["weights.pt", "spec.json", "keep.json", "decision.json"]
        if self.masks is not None:
            save_masks(directory / "masks.pt", self.masks)
            write_json_atomic(directory / "sparsity.json", sparsity_report(self.masks))
            files += ["masks.pt", "sparsity.json"]
        return files

    @classmethod
    def load(cls, directory: Path) -> "Decision":
        """A decision written by :meth:`save`."""
        masks = load_masks(directory / "masks.pt") if (directory / "masks.pt").exists() else None
        notes = directory / "decision.json"
        return cls(
            spec=ArchSpec.from_json((directory / "spec.json").read_text()),
            state=torch.load(directory / "weights.pt", map_location="cpu", weights_only=True),
            keep=json.loads((directory / "keep.json").read_text()),
            masks=masks,
            notes=json.loads(notes.read_text()) if notes.exists() else {},
        )


def state_digest(state: dict[str, Tensor]) -> str:
    """sha256 of a state dict's names and values (to show that DDP ranks hold the same weights)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode() + state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
