"""A model and a dataset of your own, loaded by adamtune through import paths.

The config beside this file names them as ``model:ResidualMLP`` and ``model:make_data``;
the config's folder is importable, so nothing needs installing.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """An MLP with residual blocks. adamtune fills ``in_features`` and ``out_features`` from
    the data; ``width`` and ``blocks`` come from ``model.kwargs`` in the config."""

    def __init__(self, in_features: int, out_features: int, width: int = 64, blocks: int = 2):
        super().__init__()
        self.inp = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
            for _ in range(blocks)
        )
        self.out = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def make_data(n: int = 2000, seed: int = 0):
    """Two interleaved spirals (a classic non-linear toy problem), generated, not downloaded.

    Returns ``(train, val)``, each an ``(x, y)`` pair of tensors; torch Datasets work too.
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * math.pi + 0.5
    label = torch.randint(0, 2, (n,), generator=g)
    sign = 1 - 2 * label.float()
    x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / 5
    x = x + 0.05 * torch.randn(n, 2, generator=g)
    cut = int(0.8 * n)
    return (x[:cut], label[:cut]), (x[cut:], label[cut:])
