"""pretrain.weights=torchvision | timm for graph models: the library's own weights from its local cache, imported
strictly, never downloaded; a missing file or a model they cannot fit is one message before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from conftest import compose_settings
from safetensors.torch import save_file

from rethink.errors import UserError
from rethink.pipeline.plan import build_plan
from rethink.pipeline.result import run_cell

TINY = (
    "dataset=synthetic",
    "dataset.num_classes=1000",
    "dataset.num_train=8",
    "dataset.num_test=8",
    "dataset.test_batch_size=8",
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
)


def _imported(result: dict) -> dict[str, torch.Tensor]:
    [stage] = result["stages"]
    assert stage["status"] == "imported"
    return torch.load(Path(stage["path"]) / "weights.pt", weights_only=True)


def test_torchvision_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cell = (*TINY, "model=torchvision", "model.arch=mobilenet_v3_small", "pretrain.weights=torchvision")
    with pytest.raises(UserError) as error:
        build_plan(compose_settings(*cell))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    assert str(expected) in str(error.value) and "rethink never downloads" in str(error.value)
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v3_small(num_classes=1000).state_dict()
    expected.parent.mkdir(parents=True)
    torch.save(reference, expected)
    stored = _imported(run_cell(compose_settings(*cell, f"paths.artifact_dir={tmp_path / 'art'}"), tmp_path / "run"))
    assert all(torch.equal(stored[k], t) for k, t in reference.items())


def test_timm_weights_come_from_the_hugging_face_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    cell = (*TINY, "model=timm", "model.arch=convnext_atto", "pretrain.weights=timm")
    with pytest.raises(UserError, match=r"timm/convnext_atto\.d2_in1k/model\.safetensors.*Hugging Face hub cache"):
        build_plan(compose_settings(*cell))
    snapshot = tmp_path / "hf" / "models--timm--convnext_atto.d2_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "hf" / "models--timm--convnext_atto.d2_in1k" / "refs").mkdir()
    (tmp_path / "hf" / "models--timm--convnext_atto.d2_in1k" / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(0)
    reference = {k: v.contiguous() for k, v in timm.create_model("convnext_atto").state_dict().items()}
    save_file(reference, str(snapshot / "model.safetensors"))
    stored = _imported(run_cell(compose_settings(*cell, f"paths.artifact_dir={tmp_path / 'art'}"), tmp_path / "run"))
    assert all(torch.equal(stored[k], t) for k, t in reference.items())


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (("model=torchvision", "pretrain.weights=timm"), "a torchvision model (model=torchvision), not a timm one"),
        (("model=torchvision", "model.cifar_stem=true", "pretrain.weights=torchvision"), "model.cifar_stem=true"),
        (("model=timm", "model.arch=seresnet18", "pretrain.weights=timm"), "no pretrained weights of seresnet18"),
    ],
)
def test_library_weights_that_cannot_fit_are_refused(overrides: tuple[str, ...], needle: str) -> None:
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        build_plan(compose_settings(*TINY, *overrides))
