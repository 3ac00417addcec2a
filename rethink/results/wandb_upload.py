"""The report on W&B: its tables as W&B Tables and its plots as images, in one ``job_type="report"`` run
(``python -m rethink.report ... --wandb``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def upload_wandb(written: dict[str, Any], out: Path, problems: list[str]) -> str:
    """Log the tables as W&B Tables and the plots as images in one ``job_type="report"`` run (offline without an API
    key, or as WANDB_MODE says); returns the run's directory. The run is always finished."""
    import wandb

    from rethink.training.loggers import wandb_mode

    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "rethink"),
        job_type="report",
        mode=wandb_mode(None),
        dir=str(out),
        config={"tables": [t["name"] for t in written["tables"]], "problems": problems},
    )
    try:
        for t in written["tables"]:
            rendered = t["rendered"]
            run.log({f"table/{t['name']}": wandb.Table(columns=rendered.header, data=rendered.rows)})
        for title, path in written["plots"]:
            run.log({f"plot/{path.stem}": wandb.Image(str(path), caption=title)})
        run.save(str(out / "report.md"), base_path=str(out), policy="now")
        run_dir = str(Path(run.dir).parent)
    finally:
        run.finish()
    return run_dir
