"""What a trial is judged on (``train.metric``): the validation loss, accuracy, or the user's
own function of the model's validation outputs and targets.

Inside adamtune every judged value is "lower is better": a metric to maximise is negated
(``Task.sign``) where it is computed and turned back where it is stored or shown, so ranking,
pruning, halving and confirmation need not know the direction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adamtune.config.schema import Settings
from adamtune.task.data import TaskData
from adamtune.task.user_code import load_function

# (outputs of the whole validation split, its targets) -> the metric
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    """The share of correct predictions: the top class of several logits, or a single logit's
    sign against a 0/1 target."""
    if out.ndim > 1 and out.shape[-1] > 1:
        predicted = out.argmax(-1)
        return float((predicted == y.reshape(predicted.shape)).float().mean())
    return float(((out.reshape(-1) > 0) == (y.reshape(-1) > 0.5)).float().mean())


def pick_metric(settings: Settings, data: TaskData) -> MetricFn | None:
    """The metric function ``train.metric`` names; None for the validation loss (computed
    with the training loss, batch by batch)."""
    name = settings.config.train.metric
    if name == "val_loss":
        return None
    if name == "accuracy":
        if data.kind == "regression":
            raise settings.problem("train.metric", "accuracy needs class labels (got regression)")
        return accuracy
    fn = load_function(settings, "train.metric", name, "outputs, targets")

    def user_metric(out: torch.Tensor, y: torch.Tensor) -> float:
        return float(fn(out, y))

    return user_metric
