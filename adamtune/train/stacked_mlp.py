"""A direct forward pass for K stacked copies of a plain ``nn.Sequential`` MLP, and the task's
loss for each of K stacked outputs.

``torch.func.vmap`` runs any model batched, but it costs about as much per operation again
as the operation itself on small models: a batch of 1 under vmap took twice a lone trial's
time per epoch (benchmarks/README.md). The built-in ``linear`` and ``mlp`` models are a
``Sequential`` of Flatten, Linear, elementwise activations and Dropout, which batch by hand
with one ``baddbmm`` per layer. Anything else goes through vmap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Modules that act elementwise: the same call works on [B, H] and [K, B, H].
_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.SiLU, nn.ELU, nn.Identity)


@dataclass(frozen=True)
class _Layer:
    kind: str  # flatten | linear | elementwise | dropout
    name: str  # the module's name in the Sequential ("1"), for its parameters
    module: nn.Module


def plan_of(model: nn.Module) -> list[_Layer] | None:
    """The layers of ``model`` when it can use the direct forward pass, else None."""
    if type(model) is not nn.Sequential:
        return None
    layers = []
    for name, module in model.named_children():
        if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1):
            layers.append(_Layer("flatten", name, module))
        elif type(module) is nn.Linear:
            layers.append(_Layer("linear", name, module))
        elif type(module) in _ELEMENTWISE:
            layers.append(_Layer("elementwise", name, module))
        elif type(module) is nn.Dropout and not module.inplace:
            layers.append(_Layer("dropout", name, module))
        else:
            return None
    if not any(layer.kind == "linear" for layer in layers):
        return None
    return layers


def stored(layers: list[_Layer], name: str, param: torch.Tensor) -> torch.Tensor:
    """How a parameter is kept in the stack: Linear weights transposed to [in, out], so that
    neither pass transposes them (10-15% faster per epoch; the val curves stay within ~1e-7 of
    a lone trial's: benchmarks/bench_engine.py)."""
    linear = {f"{layer.name}.weight" for layer in layers if layer.kind == "linear"}
    return param.t() if name in linear else param


def stacked_forward(
    layers: list[_Layer],
    weights: dict[str, torch.Tensor],
    x: torch.Tensor,
    training: bool,
    per_row: bool = False,
) -> torch.Tensor:
    """The K members' outputs [K, B, out] for a batch ``x`` [B, ...] they all see, or for
    ``per_row`` inputs [K, B, ...], each member its own."""
    k = next(iter(weights.values())).shape[0]
    # Until the first Linear every member computes the same thing, unless inputs differ.
    h, shared = x, not per_row
    for layer in layers:
        if layer.kind == "flatten":
            h = h.flatten(1) if shared else h.flatten(2)
        elif layer.kind == "linear":
            weight = weights[f"{layer.name}.weight"]  # [K, in, out]: see ``stored``
            if shared:
                h = h.expand(k, *h.shape)
                shared = False
            bias = weights.get(f"{layer.name}.bias")
            if bias is None:
                h = torch.bmm(h, weight)
            else:
                h = torch.baddbmm(bias.unsqueeze(1), h, weight)
        elif layer.kind == "elementwise":
            h = layer.module(h)
        elif training:  # dropout
            assert isinstance(layer.module, nn.Dropout)
            p = layer.module.p
            # The mask a lone trial draws for its [B, H] activations, from the same RNG
            # state, applied to every member alike.
            noise = F.dropout(torch.ones(h.shape[-2:], dtype=h.dtype, device=h.device), p)
            h = h * noise
    return h.expand(k, *h.shape) if shared else h


def stacked_loss(
    name: str, out: torch.Tensor, y: torch.Tensor, per_row: bool = False
) -> torch.Tensor:
    """The task's loss for each member of ``out`` [K, B, ...] against the shared targets ``y``
    (or, ``per_row``, each row's own [K, B, ...]), written for the stack: the same losses under
    vmap cost about a quarter of a step."""
    k = out.shape[0]
    if name == "cross_entropy":
        # Rows of [K * B, C], as a lone trial's [B, C]: log-softmax over the last dimension
        # runs the same kernel and rounds the same (over a middle dimension it drifted 1e-4).
        classes = out.shape[-1]
        target = y.reshape(-1) if per_row else y.repeat(k)
        per_item = F.cross_entropy(out.reshape(-1, classes), target, reduction="none").view(k, -1)
    else:  # numeric targets, shaped like one member's output (task._numeric)
        if per_row:
            target = y.reshape(out.shape).to(out.dtype)
        else:
            target = y.reshape(out.shape[1:]).to(out.dtype).expand_as(out)
        per_item = _NUMERIC[name](out, target, reduction="none")
    return per_item.flatten(1).mean(1)


_NUMERIC: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy_with_logits,
    "l1": F.l1_loss,
}
