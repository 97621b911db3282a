"""Raw training throughput: the same N trials (fixed parameter sets, no pruning, no sampler)
trained three ways, back to back in one process:

  hand       a DataLoader(shuffle=True) + nn.Sequential + torch.optim.Adam loop per trial
  sequential adamtune's engine, one trial at a time (``engine.train_trial``)
  batch-K    adamtune's batched engine, K trials at a time (``batched.train_batch``)

It prints trials/second, the ratio to ``hand`` and to ``sequential``, and the largest relative
difference between a batched trial's val losses and the same trial trained alone.

    python benchmarks/bench_engine.py                       # digits MLP 64-128-128-10
    python benchmarks/bench_engine.py --hidden 512 512 --trials 16
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adamtune.config.schema import load_config
from adamtune.task.build import Task, build_task
from adamtune.task.data import TensorSplit
from adamtune.train.batched import train_batch
from adamtune.train.engine import train_trial
from adamtune.train.params import AdamParams


def param_sets(n: int) -> list[AdamParams]:
    """A spread of sensible settings: lr over two decades, betas, decay, some amsgrad."""
    out = []
    for i in range(n):
        f = i / max(n - 1, 1)
        out.append(
            AdamParams(
                lr=10 ** (-4 + 2 * f),
                beta1=0.8 + 0.15 * ((i * 7) % n) / n,
                beta2=0.99 + 0.009 * ((i * 3) % n) / n,
                weight_decay=1e-4 * (i % 3),
                decoupled_weight_decay=i % 2 == 0,
                amsgrad=i % 4 == 0,
            )
        )
    return out


def hand(task: Task, params: AdamParams) -> None:
    train, val = task.data.train, task.data.val
    assert isinstance(train, TensorSplit) and isinstance(val, TensorSplit)
    torch.manual_seed(0)
    model = task.new_model(0)
    kwargs = params.torch_kwargs()
    kwargs["betas"] = tuple(kwargs["betas"])
    opt = torch.optim.Adam(model.parameters(), **kwargs)
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=64, shuffle=True)
    for _ in range(task.settings.config.train.epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            nn.functional.cross_entropy(model(val.x), val.y).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()
    config = Path(tempfile.mkdtemp()) / "engine.yaml"
    config.write_text(
        f"data: {{source: digits, batch_size: 64}}\nmodel: {{arch: mlp, hidden: {args.hidden}}}"
        f"\ntrain: {{epochs: {args.epochs}, device: cpu}}\n"
    )
    task = build_task(load_config(config))
    params = param_sets(args.trials)
    train_trial(task, params[0])  # warm up both paths
    train_batch(task, params[:2])

    began = time.perf_counter()
    for p in params:
        hand(task, p)
    rates = {"hand": len(params) / (time.perf_counter() - began)}
    began = time.perf_counter()
    alone = [train_trial(task, p) for p in params]
    rates["sequential"] = len(params) / (time.perf_counter() - began)
    drift: dict[str, float] = {}
    for k in args.batches:
        began = time.perf_counter()
        together = []
        for start in range(0, len(params), k):
            together += train_batch(task, params[start : start + k])
        rates[f"batch-{k}"] = len(params) / (time.perf_counter() - began)
        drift[f"batch-{k}"] = max(
            abs(b - a) / abs(a)
            for x, y in zip(alone, together, strict=True)
            for a, b in zip(x.val_curve, y.val_curve, strict=True)
            if math.isfinite(a)
        )
    print(
        f"digits MLP 64-{'-'.join(map(str, args.hidden))}-10 ({task.n_params:,} parameters), "
        f"{args.epochs} epochs, {args.trials} trials, torch threads {torch.get_num_threads()}"
    )
    print(f"{'variant':<12} {'trials/s':>9} {'vs hand':>8} {'vs seq':>7} {'max rel diff':>13}")
    for name, rate in rates.items():
        diff = f"{drift[name]:.1e}" if name in drift else "-"
        print(
            f"{name:<12} {rate:>9.3f} {rate / rates['hand']:>7.2f}x "
            f"{rate / rates['sequential']:>6.2f}x {diff:>13}"
        )


if __name__ == "__main__":
    main()
