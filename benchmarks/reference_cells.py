"""Five small reference cells (one per retraining kind: fine-tuned, Scratch-B, lottery, weight masks from scratch,
LR rewinding) run end to end, printed as one JSON digest: stage keys, params, FLOPs, budgets, accuracies and a hash
of every stage's weights. Run it on two checkouts to show a restructure changes no number:

    python benchmarks/reference_cells.py OUT_DIR > digest.json   # in each checkout, then diff the digests
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from rethink.pipeline.config import load_settings  # noqa: E402
from rethink.pipeline.result import run_cell  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
TINY = ("dataset=synthetic", "trainer=cpu", "pretrain.epochs=2", "trainer.limit_train_batches=3", "schedule.epochs=1")
QUARTER = "model.width_multiplier=0.25"
CELLS = {
    "l1_finetune": ("model=resnet56", QUARTER, "pruner=l1", "pruner.variant=A", "schedule=finetune"),
    "slimming_scratch_b": ("model=vgg16", QUARTER, "pruner=slimming", "pruner.ratio=0.5",
                           "schedule=scratch_b", "~schedule.epochs"),
    "l1_lottery": ("model=resnet56", QUARTER, "pruner=l1", "pruner.variant=B", "schedule=lottery"),
    "magnitude_scratch_e": ("model=vgg16", QUARTER, "pruner=magnitude", "pruner.ratio=0.5",
                            "schedule=scratch_e"),
    "random_lr_rewind": ("model=resnet56", QUARTER, "pruner=random", "pruner.variant=A",
                         "schedule=lr_rewind"),
}  # fmt: skip


def weights_hash(stage_dir: str | None) -> str | None:
    """sha256 over the stage's weights.pt tensors (names, dtypes, bytes), independent of pickling details."""
    if stage_dir is None or not (Path(stage_dir) / "weights.pt").is_file():
        return None
    state = torch.load(Path(stage_dir) / "weights.pt", map_location="cpu", weights_only=True)
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(f"{name}:{state[name].dtype}:{tuple(state[name].shape)}".encode())
        digest.update(state[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def digest(result: dict) -> dict:
    """The numbers of a result a restructure must not change."""
    return {
        "stages": [
            {"stage": s["stage"], "key": s["key"], "weights": weights_hash(s.get("path"))} for s in result["stages"]
        ],
        "accuracy": result.get("accuracy"),
        "params": result.get("params"),
        "flops": result.get("flops"),
        "budget": result.get("budget"),
        "recipe": result.get("recipe"),
        "settings_key": (result.get("settings") or {}).get("key"),
    }


def main(out: Path) -> None:
    torch.set_num_threads(1)
    found = {}
    for name, overrides in CELLS.items():
        store = out / name
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*TINY, *overrides, f"paths.artifact_dir={store}"])
        found[name] = digest(run_cell(load_settings(cfg), store / "run"))
    print(json.dumps(found, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
