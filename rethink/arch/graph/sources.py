"""Where a graph model comes from: ``torchvision`` (``torchvision.models.get_model``) or ``timm``
(``timm.create_model``), each with its list of architectures, its version, its classifier head and its locally
cached pretrained weights. The libraries are imported only when a graph model is used."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Callable, Mapping

from torch import nn


@dataclass(frozen=True)
class Source:
    """A model library: ``create(arch, num_classes, kwargs)`` a fresh model, ``archs()`` its classification
    architectures, ``package`` the distribution whose version a spec records."""

    name: str
    package: str
    create: Callable[[str, int, Mapping[str, Any]], nn.Module]
    archs: Callable[[], list[str]]

    def version(self) -> str:
        return version(self.package)


def _torchvision_create(arch: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def _torchvision_archs() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _timm_create(arch: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)


def _timm_archs() -> list[str]:
    import timm

    return list(timm.list_models())


SOURCES = {
    "torchvision": Source("torchvision", "torchvision", _torchvision_create, _torchvision_archs),
    "timm": Source("timm", "timm", _timm_create, _timm_archs),
}


def source(name: str) -> Source:
    """The model library ``name``, or ValueError listing them."""
    if name not in SOURCES:
        raise ValueError(f"unknown model source {name!r}; accepted: {', '.join(SOURCES)}")
    return SOURCES[name]


def check_arch(library: Source, arch: str) -> None:
    """ValueError for an architecture ``library`` does not have, with the close matches."""
    archs = library.archs()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=5, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else f"{len(archs)} are listed by the library"
        raise ValueError(f"unknown {library.name} architecture model.arch={arch!r} ({hint})")


def classifier(model: nn.Module) -> nn.Module:
    """The classifier layer whose outputs are the classes (never pruned): timm's ``get_classifier()``, else the
    last Linear."""
    get = getattr(model, "get_classifier", None)
    if callable(get) and isinstance(get(), nn.Module) and not isinstance(get(), nn.Identity):
        return get()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear classifier to keep at the class count")
    return linears[-1]


def cifar_stem(model: nn.Module) -> None:
    """Adapt the stem to 32x32 inputs, in place, as CIFAR variants of these models are built: the first conv becomes
    3x3 stride 1 padding 1 (same channels and bias), and a max-pool before the second conv is removed."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d stem to adapt (model.cifar_stem=true)")
    first_name, first = convs[0]
    second = convs[1][0] if len(convs) > 1 else None
    stem = nn.Conv2d(first.in_channels, first.out_channels, 3, 1, 1, bias=first.bias is not None)
    _replace(model, first_name, stem)
    for name, module in list(model.named_modules()):
        if name == second:
            break
        if isinstance(module, nn.MaxPool2d):
            _replace(model, name, nn.Identity())


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
