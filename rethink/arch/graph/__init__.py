"""Any torchvision or timm model as a rethink family (``model=torchvision`` / ``model=timm``, ``model.arch=<name>``):
channel groups from Torch-Pruning's dependency graph, the library's own initialisation at pruned widths, FLOPs by
``FlopCounterMode`` (docs/protocol.md#graph-models)."""

from rethink.arch.graph.family import FAMILY, make_spec
from rethink.arch.graph.init import register_init_rule
from rethink.arch.registry import register_family, register_model

__all__ = ["make_spec", "register_init_rule"]

register_family(FAMILY)
for _source in ("torchvision", "timm"):
    register_model(
        _source,
        "any",
        lambda num_classes, _name=_source, **options: make_spec(num_classes, source_name=_name, **options),
        f"any {_source} classification model (model.arch), channel groups by Torch-Pruning",
        input_size=None,
        label=lambda options, _name=_source: f"{_name}.{options.get('arch')}",
    )
