"""Command line: ``python -m rethink.main model=resnet56 dataset=cifar10 schedule=baseline [dry_run=true]``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig

import rethink.detection  # noqa: F401  (registers task=detection before Hydra's callbacks plan any cell)
from rethink import plugins
from rethink.errors import UserError
from rethink.interruption import Interrupted, interruptible, requeue_under_submitit
from rethink.launch import check_pinning, launcher_problem, pinned_job
from rethink.pipeline import status
from rethink.settings.schema import RESERVED_TRAINER_ARGS, reserved_trainer_arg


def report(result: dict, run_dir: Path) -> str:
    """A short human-readable summary of a finished cell."""
    from rethink.arch.cost import counted_flops

    cell = result["cell"]
    if "detection" in result:  # task=detection
        detection, backbone = result["detection"], result["backbone"]
        return "\n".join(
            [
                f"cell      detection ({detection['data']}, {detection['head']}) / {cell['model']} / "
                f"pruner={cell['pruner']} / transfer={detection['transfer']} / seed={cell['seed']}",
                f"backbone  {backbone['params']:,} params    FLOPs {counted_flops(backbone['flops']) / 1e9:.2f}G at "
                f"{backbone['input']}x{backbone['input']}    wall time {result['wall_time_s']:.1f} s",
                f"VOC07 mAP@0.5: final {detection['final'].get('voc07_map_50', float('nan')):.2f}%   "
                f"best {detection['best'].get('voc07_map_50', float('nan')):.2f}%",
                f"result:   {run_dir / 'result.json'}",
            ]
        )
    acc = result["accuracy"]
    lines = [
        f"cell      {cell['dataset']} / {cell['model']} / pruner={cell['pruner']} / schedule={cell['schedule']}"
        f" / seed={cell['seed']}",
        f"params    {result['params']:,}    FLOPs {counted_flops(result['flops']) / 1e6:.2f}M "
        f"({result['flops'].get('convention', 'paper')} convention)",
        f"epochs    {result['epochs']}    wall time {result['wall_time_s']:.1f} s",
        f"test top-1 accuracy: final {acc.get('top1_final', float('nan')):.2f}%"
        f"   best {acc.get('top1_best', float('nan')):.2f}%",
        f"result:   {run_dir / 'result.json'}",
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> str | None:
    """Hydra entry point: plan (and with ``dry_run=true`` only print) or run one cell; returns the cell's state.

    A user error is one paragraph without a stack trace. In a multirun a failed cell is recorded (``status.json``,
    and ``error.log`` for an unexpected error) and the sweep goes on with its other cells; its tally lists the
    failures and exits 1. A single run exits 2 on a user error and re-raises anything else."""
    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    from rethink.distributed import is_distributed_follower
    from rethink.pipeline.config import load_settings
    from rethink.pipeline.tasks import cell_plan

    if cfg.get("dry_run") or not sweep:  # planned first: a dry run or bad input leaves no run folder behind
        try:
            settings = load_settings(cfg)
            check_pinning(settings, sweep)
            plan = cell_plan(settings)
        except UserError as exc:
            if sweep:  # a dry run of a sweeper whose cells are only known as they run: the other cells go on
                print(f"rethink: error: {exc}", file=sys.stderr)
                return None
            discard_run_dir(run_dir, hydra_cfg.job.name)
            print(f"rethink: error: {exc}", file=sys.stderr)
            sys.exit(2)
        if cfg.get("dry_run"):
            if not sweep:
                discard_run_dir(run_dir, hydra_cfg.job.name)
            print(json.dumps(plan.to_dict(), indent=2))
            return None
    leader = not is_distributed_follower()  # DDP: rank 0 keeps the status and prints
    if leader:
        status.mark_running(run_dir, hydra_cfg.job.get("num"), list(hydra_cfg.overrides.task))
    try:
        from rethink.pipeline.result import run_cell

        settings = load_settings(cfg)
        sweep_dir = Path(hydra_cfg.sweep.dir) if sweep else None
        with interruptible(), contextlib.redirect_stdout(sys.stderr), pinned_job(settings, sweep_dir):
            result = run_cell(settings, run_dir)  # stdout: results only
    except Interrupted as exc:  # nothing of the stage it was in is committed: the same command resumes it
        if leader:
            where = status.mark_interrupted(run_dir, exc.signal_name)
            print(
                f"rethink: {exc.signal_name}: interrupted {where}; run the same command again to resume",
                file=sys.stderr,
            )
        requeue_under_submitit(exc.signum)  # submitit requeues the job and exits
        sys.exit(exc.exit_code)
    except UserError as exc:
        if leader:
            status.mark_failed(run_dir, str(exc))
        if not sweep:  # within a sweep, its line for the cell shows the message
            print(f"rethink: error: {exc}", file=sys.stderr)
            sys.exit(2)
        return "failed"
    except Exception as exc:
        if not leader:
            raise
        status.mark_failed(run_dir, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        if not sweep:
            raise
        return "failed"  # the sweep's line for the cell names the error and error.log
    if leader:
        status.mark_finished(run_dir, result)
        print(report(result, run_dir))
    return (status.read_status(run_dir) or {}).get("state")


def discard_run_dir(run_dir: Path, job_name: str) -> None:
    """Remove the folder Hydra made for a run that wrote nothing (a dry run, a plan error): its ``.hydra/`` and job
    log, the folder, and its parents below the working directory that are then empty (``outputs/<date>/``,
    ``outputs/``). A folder holding anything else, or the working directory itself, is kept as it is."""
    own = {".hydra", f"{job_name}.log"}
    run_dir, cwd = run_dir.resolve(), Path.cwd().resolve()
    if run_dir == cwd or not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= own:
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (run_dir / f"{job_name}.log").unlink(missing_ok=True)
    try:
        run_dir.rmdir()
        for parent in run_dir.parents:
            if cwd not in parent.parents:
                break
            parent.rmdir()
    except OSError:  # not empty
        pass


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def unknown_experiment(overrides: list[str]) -> str | None:
    """A message for an ``experiment=NAME`` (or ``+experiment/paper/row=NAME``) override naming no config, listing the
    ones there are (Hydra itself lists only the top level of a nested group); None when every name exists."""
    for override in overrides:
        key, equals, value = override.partition("=")
        group = key.lstrip("+~")
        if not equals or group.split("/")[0] != "experiment":
            continue
        root = CONF_DIR / group
        for name in value.split(","):
            if name in ("null", "") or (root / f"{name}.yaml").is_file():
                continue
            available = sorted(
                p.relative_to(root).with_suffix("").as_posix()
                for p in root.rglob("*.yaml")
                if group != "experiment" or not {"row", "method"} & set(p.relative_to(root).parts)
            )
            return f"{key}={name}: no such experiment (no file {root / name}.yaml). Available: {', '.join(available)}."
    return None


def config_error(exc: CompactHydraException) -> str:
    """One paragraph for an error of Hydra's config composition: an option no config group has, a key no config
    has, a malformed override."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return f"{group}={name}: no such {group} option; the options are: {', '.join(exc.options)}."
    text = str(exc).split("Config search path:")[0]
    override = re.search(r"Could not override '([^']+)'.*use \+(\S+)", text, re.DOTALL)
    if override:
        key, line = override.groups()
        group, _, name = key.partition(".")
        if group == "trainer" and name in RESERVED_TRAINER_ARGS:
            return reserved_trainer_arg(name)
        parent = getattr(exc.__cause__, "parent_node", None)  # the config node the key is missing from
        listing = ""
        if isinstance(parent, DictConfig):
            where = f"of {key.rpartition('.')[0]} " if "." in key else ""
            listing = f"; the settings {where}are: {', '.join(sorted(k for k in parent if k != 'hydra'))}"
        hint = f" (another argument of Lightning's Trainer is added with +{line})" if group == "trainer" else ""
        return f"{key}: no such setting, so {line} sets nothing{listing}. Check the spelling{hint}."
    if isinstance(exc, OverrideParseException):
        text = f"{exc.override}: {text}"
    if exc.__cause__ is not None:  # an OmegaConf error behind Hydra's message
        text += f" {exc.__cause__}"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def cli() -> None:
    """``python -m rethink.main``: every user error — a bad override, an unknown config option, a value the settings
    refuse — is one message on stderr and exit status 2; ``HYDRA_FULL_ERROR=1`` shows Hydra's own traceback."""
    problem = unknown_experiment(sys.argv[1:]) or launcher_problem(sys.argv[1:])
    if problem:
        print(f"rethink: error: {problem}", file=sys.stderr)
        sys.exit(2)
    try:  # the user's plugins, and their conf/ on Hydra's search path, before Hydra composes anything
        folders = plugins.load(plugins.requested(sys.argv[1:]))
    except UserError as exc:
        print(f"rethink: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = plugins.with_search_path(sys.argv[1:], folders)
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its composition errors here instead of exiting 1
    try:
        main()
    except CompactHydraException as exc:
        print(f"rethink: error: {config_error(exc)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
