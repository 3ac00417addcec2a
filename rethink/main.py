"""Command line: ``python -m rethink.main model=resnet56 dataset=cifar10 schedule=baseline [dry_run=true]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rethink.errors import UserError


def report(result: dict, run_dir: Path) -> str:
    """A short human-readable summary of a finished cell."""
    acc = result["accuracy"]
    cell = result["cell"]
    lines = [
        f"cell      {cell['dataset']} / {cell['model']} / pruner={cell['pruner']} / schedule={cell['schedule']}"
        f" / seed={cell['seed']}",
        f"params    {result['params']:,}    FLOPs {result['flops']['paper'] / 1e6:.2f}M (paper convention)",
        f"epochs    {result['epochs']}    wall time {result['wall_time_s']:.1f} s",
        f"test top-1 accuracy: final {acc.get('top1_final', float('nan')):.2f}%"
        f"   best {acc.get('top1_best', float('nan')):.2f}%",
        f"result:   {run_dir / 'result.json'}",
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: plan (and with ``dry_run=true`` only print) or run one cell."""
    try:
        if cfg.dry_run:
            from rethink.plan import build_plan

            print(json.dumps(build_plan(cfg).to_dict(), indent=2))
            return
        from rethink.run import run_cell
        from rethink.store import is_distributed_follower

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        result = run_cell(cfg, run_dir)
        if not is_distributed_follower():
            print(report(result, run_dir))
    except UserError as exc:
        print(f"rethink: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
