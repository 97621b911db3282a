"""Your own training step for adamtune: augmentation, a custom loss, gradient clipping.

adamtune calls ``train(ctx)`` once per trial with the model (its seed's initial weights), the
Adam optimizer built from the trial's hyperparameters, the lr scheduler (or None), loaders
of the seed's batches, and ``ctx.report``. Train as you like; report once per epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor) -> torch.Tensor:
    """digits arrive as 64 standardised pixels of an 8x8 image: shift every image of the
    batch by up to one pixel sideways and add a little noise."""
    shift = int(torch.randint(-1, 2, ()).item())
    images = torch.roll(x.view(-1, 8, 8), shifts=shift, dims=2)
    return images.reshape(len(x), -1) + 0.1 * torch.randn_like(x)


def train(ctx) -> None:  # ctx: adamtune.TrainContext
    for epoch in range(ctx.epochs):
        ctx.model.train()
        total = 0.0
        for x, y in ctx.train_loader:
            loss = F.cross_entropy(ctx.model(augment(x)), y, label_smoothing=0.1)
            ctx.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), max_norm=1.0)
            ctx.optimizer.step()
            total += loss.item()
        if ctx.scheduler is not None:
            ctx.scheduler.step()
        # The metric the config names (train.metric: accuracy); report() prunes, stops a
        # diverged trial and notices Ctrl-C: let its StopTrial pass.
        ctx.report(epoch, ctx.evaluate(), train_loss=total / len(ctx.train_loader))


def macro_f1(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Macro-averaged F1 over the validation split (``train.metric: training:macro_f1``)."""
    predicted = outputs.argmax(-1)
    scores = []
    for c in targets.unique():
        tp = ((predicted == c) & (targets == c)).sum().item()
        fp = ((predicted == c) & (targets != c)).sum().item()
        fn = ((predicted != c) & (targets == c)).sum().item()
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return sum(scores) / len(scores)
