"""Models: linear, MLP, a small CNN for image-shaped inputs, or the user's own class."""

from __future__ import annotations

import inspect
import math

from torch import nn

from adamtune.config.schema import Settings
from adamtune.task.data import TaskData
from adamtune.task.user_code import load_callable


def _mlp(in_features: int, hidden: list[int], out: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out))
    return layers


def _cnn(
    in_shape: tuple[int, ...], channels: list[int], hidden: list[int], out: int, dropout: float
) -> nn.Module:
    shape = (1, *in_shape) if len(in_shape) == 2 else in_shape
    c, h, w = shape
    # Flatten first: data may arrive flat (digits' 64 pixels) or as (H, W) or (C, H, W).
    layers: list[nn.Module] = [nn.Flatten(), nn.Unflatten(1, shape)]
    for width in channels:
        layers += [nn.Conv2d(c, width, kernel_size=3, padding=1), nn.ReLU()]
        if min(h, w) >= 4:  # pool while there is room: an 8x8 digit becomes 4x4, then 2x2
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = width
    layers.append(nn.Flatten())
    return nn.Sequential(*layers, *_mlp(c * h * w, hidden, out, dropout))


def _user_model(settings: Settings, data: TaskData) -> nn.Module:
    cfg = settings.config.model
    factory = load_callable(settings, "model.arch", cfg.arch)
    kwargs = dict(cfg.kwargs)
    # Fill in the data's sizes where the factory asks for them by one of these names.
    offered = {
        "in_features": math.prod(data.in_shape),
        "input_shape": data.in_shape,
        "out_features": data.out_features,
        "num_classes": data.out_features,
    }
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    for name, value in offered.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    try:
        model = factory(**kwargs)
    except Exception as exc:  # the user's code may fail in any way
        raise settings.problem(
            "model.kwargs", f"cannot build {cfg.arch}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise settings.problem(
            "model.arch", f"{cfg.arch} must return a torch.nn.Module (got {type(model).__name__})"
        )
    return model


def build_model(settings: Settings, data: TaskData) -> nn.Module:
    """A fresh, randomly initialised model (seed the RNG first for reproducible weights)."""
    cfg = settings.config.model
    in_features = math.prod(data.in_shape)
    if cfg.arch == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, data.out_features))
    if cfg.arch == "mlp":
        return nn.Sequential(
            nn.Flatten(), *_mlp(in_features, cfg.hidden, data.out_features, cfg.dropout)
        )
    if cfg.arch == "cnn":
        if len(data.in_shape) not in (2, 3):
            raise settings.problem(
                "model.arch",
                f"cnn needs image-shaped inputs (channels, height, width); this data has "
                f"{data.in_shape}: use mlp, or give x as (rows, C, H, W) in an .npz",
            )
        return _cnn(data.in_shape, cfg.channels, cfg.hidden, data.out_features, cfg.dropout)
    return _user_model(settings, data)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
