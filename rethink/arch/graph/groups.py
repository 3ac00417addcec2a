"""Channel groups of any model from Torch-Pruning's dependency graph, and the surgery on them.

``tp.DependencyGraph`` traces the model once (a 1x3x32x32 input on the model's device, meta included) and couples
every set of channels that must shrink together: a residual stream (every conv and BN writing into the additions),
a depthwise conv with the conv before it, squeeze-excitation's product, concatenations. Each coupled set is one
rethink channel group, named by its root module (the conv / Linear Torch-Pruning roots it at). A group whose set
passes through a residual addition is a *stream* group; ``groups=inner`` leaves those unpruned (the L1 paper's
choice), ``groups=all`` prunes them too. The classifier's outputs are never a group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    import torch_pruning as tp

TRACE_SIZE = 32  # the side of the traced input: the coupling does not depend on it


@dataclass(frozen=True)
class GraphGroup:
    """A coupled set of ``width`` channels: its root, the convs / Linears producing exactly these channels (their
    output channels one to one), the BatchNorms normalising them, and whether it passes a residual addition."""

    name: str
    width: int
    producers: tuple[str, ...]
    bns: tuple[str, ...]
    stream: bool


def dependency_graph(model: nn.Module) -> "tp.DependencyGraph":
    """The traced dependency graph of ``model`` (eval mode during the trace); ValueError naming the module whose
    forward pass the tracer could not follow."""
    import torch_pruning as tp

    parameter = next(model.parameters())
    example = torch.zeros(1, 3, TRACE_SIZE, TRACE_SIZE, device=parameter.device, dtype=parameter.dtype)
    training = model.training
    try:
        model.eval()
        with warnings.catch_warnings(), torch.enable_grad():  # the tracer follows autograd
            warnings.filterwarnings("ignore", message=".*[Uu]nwrapped parameters.*")
            warnings.filterwarnings("ignore", message=".*last non-singleton dimension.*")
            return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as exc:  # the tracer's own error: name the module it failed in
        raise ValueError(
            f"Torch-Pruning cannot trace {type(model).__name__}: {_failing_module(model, example)} failed "
            f"({type(exc).__name__}: {exc}); the graph family needs a model whose forward pass the dependency "
            "graph can follow"
        ) from None
    finally:
        model.train(training)


def _failing_module(model: nn.Module, example: torch.Tensor) -> str:
    """Where a plain forward pass of ``model`` fails: the innermost module running then."""
    running: list[str] = []
    hooks = [
        hook
        for name, module in model.named_modules()
        for hook in (
            module.register_forward_pre_hook(lambda *_, name=name: running.append(name)),
            module.register_forward_hook(lambda *_: running.pop() and None),
        )
    ]
    try:
        with torch.enable_grad():
            model(example)
    except Exception:
        return f"module '{running[-1]}'" if running and running[-1] else "its top-level forward"
    finally:
        for hook in hooks:
            hook.remove()
    return "the dependency tracer (a plain forward pass runs)"


def _out_handler(module: nn.Module) -> Any:
    import torch_pruning as tp

    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def _handler(dep: Any) -> str:
    return getattr(dep.handler, "__name__", str(dep.handler))


def graph_groups(model: nn.Module, head: nn.Module) -> list[GraphGroup]:
    """Every coupled channel group of ``model`` in module order (a group's channels in its root's order)."""
    graph = dependency_graph(model)
    names = {module: name for name, module in model.named_modules()}
    order = {name: i for i, name in enumerate(names.values())}
    groups = []
    for group in graph.get_all_groups(ignored_layers=[head], root_module_types=[nn.Conv2d, nn.Linear]):
        root_dep, root_idxs = group[0]
        root = names[root_dep.target.module]
        producers, bns, stream = [], [], False
        for dep, idxs in group:
            module = dep.target.module
            stream = stream or "AddBackward" in str(dep.target.name)
            if module not in names or list(idxs) != list(root_idxs) or _handler(dep) != "prune_out_channels":
                continue
            if isinstance(module, (nn.Conv2d, nn.Linear)) and getattr(module, "groups", 1) == 1:
                producers.append(names[module])
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                bns.append(names[module])
        producers = [root] + sorted(set(producers) - {root}, key=order.__getitem__)
        bns = sorted(set(bns), key=order.__getitem__)
        groups.append(GraphGroup(root, len(root_idxs), tuple(producers), tuple(bns), stream))
    return sorted(groups, key=lambda g: order[g.name])


def prune_channels(model: nn.Module, drop: Mapping[str, Sequence[int]]) -> None:
    """Remove the channels ``drop[group]`` (indices into the group's current channels) from ``model``, in place."""
    graph, modules = dependency_graph(model), dict(model.named_modules())
    for name, idxs in drop.items():
        if len(idxs):
            root = modules[name]
            graph.get_pruning_group(root, _out_handler(root), idxs=list(idxs)).prune()


def zero_channels(model: nn.Module, drop: Mapping[str, Sequence[int]]) -> None:
    """Zero, in place, what removing ``drop`` would remove: producer rows and biases, norm scales and shifts,
    readers' input columns (a depthwise conv's filters), coupled parameters' entries."""
    graph, modules = dependency_graph(model), dict(model.named_modules())
    with torch.no_grad():
        for name, idxs in drop.items():
            if not len(idxs):
                continue
            root = modules[name]
            for dep, dep_idxs in graph.get_pruning_group(root, _out_handler(root), idxs=list(idxs)):
                _zero(dep.target.module, _handler(dep), torch.as_tensor(list(dep_idxs), dtype=torch.long))


def _zero(module: object, handler: str, idxs: torch.Tensor) -> None:
    """Zero ``module``'s entries at ``idxs`` for a Torch-Pruning dependency ``handler``."""
    if isinstance(module, nn.Parameter):
        dim = next((d for d in range(module.dim() - 1, -1, -1) if module.shape[d] > 1), 0)
        module.index_fill_(dim, idxs.to(module.device), 0.0)
        return
    if not isinstance(module, nn.Module) or not any(True for _ in module.parameters(recurse=False)):
        return  # a functional node (activation, addition, reshape) or a layer without parameters
    depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
    if isinstance(module, (nn.Conv2d, nn.Linear)) and handler == "prune_in_channels" and not depthwise:
        module.weight.index_fill_(1, idxs.to(module.weight.device), 0.0)
        return
    if depthwise and module.groups != module.in_channels:
        raise ValueError(f"cannot mask a grouped conv ({module}) whose groups are not its channels")
    for param in (getattr(module, "weight", None), getattr(module, "bias", None)):
        if isinstance(param, torch.Tensor):
            param.index_fill_(0, idxs.to(param.device), 0.0)
