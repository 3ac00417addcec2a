"""The source library's own pretrained weights of a graph model, found in the local caches (never downloaded):
torchvision's in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), timm's in the Hugging Face hub cache
(``$HF_HOME/hub``). They fit only the model as the library builds it for its 1000 ImageNet classes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch

from rethink.arch.spec import ArchSpec

TIMM_FILE = "model.safetensors"
LIBRARY_WEIGHTS = ("torchvision", "timm")  # the values of pretrain.weights naming a graph model's library


def _fit_problem(spec: ArchSpec, library: str) -> str | None:
    """Why ``library``'s ImageNet weights cannot fit ``spec`` (None when they can)."""
    config = spec.config
    if config["source"] != library:
        return f"the model is a {config['source']} model (model={config['source']}), not a {library} one"
    changes = [f"{spec.num_classes} classes"] if spec.num_classes != 1000 else []
    changes += ["model.cifar_stem=true"] if config["cifar_stem"] else []
    if changes:
        return f"{library} builds {config['arch']} for 1000 ImageNet classes with its own stem, but this cell has " + (
            " and ".join(changes)
        )
    return None


def weights_file(spec: ArchSpec, library: str) -> tuple[Path, str]:
    """(the cached file of ``library``'s pretrained weights of ``spec``'s architecture, or where it is expected; a
    sentence saying where and how to put it there); ValueError when those weights cannot fit ``spec``."""
    problem = _fit_problem(spec, library)
    if problem:
        raise ValueError(f"pretrain.weights={library}: {problem}. Train the large model here (pretrain.weights=null)")
    arch = spec.config["arch"]
    if library == "torchvision":
        from torchvision.models import get_model_weights

        url = get_model_weights(arch).DEFAULT.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        how = (
            f"torchvision's ImageNet weights of {arch} are expected at {path} (the torch hub cache; rethink never "
            f'downloads). On a machine with internet run python -c "import torchvision; '
            f"torchvision.models.get_model('{arch}', weights='DEFAULT')\" and copy {path.name} there, or set "
            "TORCH_HOME to a folder holding hub/checkpoints/" + path.name
        )
        return path, how
    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    repo = getattr(get_pretrained_cfg(arch), "hf_hub_id", None)
    if not repo:
        raise ValueError(f"pretrain.weights=timm: timm has no pretrained weights of {arch} on the Hugging Face hub")
    found = try_to_load_from_cache(repo, TIMM_FILE)
    how = (
        f"timm's weights of {arch} ({repo}/{TIMM_FILE}) are expected in the Hugging Face hub cache "
        f'{constants.HF_HUB_CACHE} (rethink never downloads). On a machine with internet run python -c "import timm; '
        f"timm.create_model('{arch}', pretrained=True)\" and copy its models--{repo.replace('/', '--')} folder "
        "there, or set HF_HOME to a folder holding hub/ with it"
    )
    expected = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / "*" / TIMM_FILE
    return (Path(found) if isinstance(found, str) else expected), how
