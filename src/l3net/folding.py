"""BatchNorm folding for inference copies (:mod:`l3net.inference`): a BatchNorm2d whose input is exactly
one Conv2d's output, found in the forward graph (``torch.fx``), becomes part of that conv; one that
precedes a conv (OpenL3's input BatchNorm) or follows a ReLU (OpenL3's image conv1_2) stays."""

from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]] | None:
    """(conv, bn) submodule names where the BatchNorm's only input is the conv's only use, in the
    forward graph of ``module``; None when ``module`` cannot be traced."""
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception:  # noqa: BLE001 - any tracing failure just means "look deeper"
        return None
    modules = dict(module.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), nn.Conv2d)
            and len(source.users) == 1
            and calls[source.target] == 1
            and calls[node.target] == 1
        ):
            pairs.append((source.target, node.target))
    return pairs


def _find_pairs(module: nn.Module, prefix: str = "") -> list[tuple[str, str]]:
    """Conv-BN pairs anywhere in ``module``, tracing at the highest level that traces (the module
    itself, else each child: an L3Net's front end may not trace, its towers do)."""
    if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
        return []
    found = _conv_bn_pairs(module)
    if found is not None:
        return [(prefix + conv, prefix + bn) for conv, bn in found]
    pairs: list[tuple[str, str]] = []
    for name, child in module.named_children():
        pairs += _find_pairs(child, f"{prefix}{name}.")
    return pairs


def fold_batchnorm(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every BatchNorm2d that directly follows a Conv2d into that conv, **in place**.

    The BatchNorm becomes ``nn.Identity`` and the conv gets the scaled weights and shifted bias, so
    the pair computes what it did in eval mode (running statistics). Only a BatchNorm whose input
    is a conv's output, and that conv's only use, in the forward graph is folded; one before a
    conv or after a ReLU stays. Returns the folded ``(conv, batchnorm)`` names. Use on a copy.
    """
    pairs = _find_pairs(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        if bn.running_mean is None or bn.running_var is None:
            continue  # batch statistics even in eval mode: not a fixed affine map
        _set_submodule(model, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
        _set_submodule(model, bn_name, nn.Identity())
    return pairs


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)
