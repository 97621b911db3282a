"""A task: data, model and loss built from the config, placed on a device, ready to train."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from adamtune.config.schema import Settings, check_device, is_import_path, sign_of_direction
from adamtune.errors import ConfigError, OptionError
from adamtune.task.data import TaskData, TensorSplit, load_splits
from adamtune.task.metrics import MetricFn, pick_metric
from adamtune.task.models import build_model, count_parameters
from adamtune.task.user_code import load_function

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _numeric(fn: LossFn) -> LossFn:
    """A loss against numeric targets, shaped like the output: a Dataset's scalar target (B,)
    against a (B, 1) output would otherwise broadcast to (B, B) and train on nonsense."""

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fn(out, y.reshape(out.shape).to(out.dtype))

    return loss


_LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "mse": _numeric(F.mse_loss),
    "bce": _numeric(F.binary_cross_entropy_with_logits),
    "l1": _numeric(F.l1_loss),
}
_AUTO_LOSS = {"classification": "cross_entropy", "regression": "mse", "binary": "bce"}
# Above this share of a GPU's free memory, data stays in host memory and batches are copied.
_DEVICE_DATA_SHARE = 0.25
_SLOT_STRIDE = 1000


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    try:
        check_device(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{name}: no CUDA GPU is visible to torch on this machine")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{name}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("mps: MPS is not available on this machine")
    return torch.device(name)


@dataclass
class Task:
    settings: Settings
    data: TaskData
    device: torch.device
    loss_name: str
    loss_fn: LossFn
    n_params: int
    folds: list[TaskData] = field(default_factory=list)  # every split; ``data`` is the first
    metric: MetricFn | None = None  # None: judged on the validation loss
    step: Callable[..., object] | None = None  # the user's own training function
    _slot_splits: dict[int, list[TaskData]] = field(default_factory=dict, repr=False)
    _init_states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def sign(self) -> float:
        """-1 when the metric is maximised: adamtune's own values are "lower is better"."""
        return sign_of_direction(self.settings.config.train.maximize)

    def judged(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """A trial's value (lower is better) from the model's outputs on a whole validation
        split and its targets, for a metric other than the validation loss."""
        assert self.metric is not None
        return self.sign * self.metric(out, y)

    @property
    def seeds(self) -> list[int]:
        """The search's seeds: one per repeat, the config seed + r."""
        return self.seeds_for(0)

    def seeds_for(self, slot: int) -> list[int]:
        """The seeds of seed slot ``slot``: 0 is the search's own; slot j > 0 (noise and
        confirmation runs) uses the config seed + 1000 j + r, fresh initial weights and batch
        orders that no search trial saw."""
        cfg = self.settings.config
        return [cfg.seed + _SLOT_STRIDE * slot + r for r in range(cfg.train.repeats)]

    @property
    def fresh_splits(self) -> bool:
        """Whether later seed slots draw fresh train/val splits: not with the user's own data
        function, which returns its split as it is."""
        return not is_import_path(self.settings.config.data.source)

    def splits_for(self, slot: int) -> list[TaskData]:
        """The train/val splits of seed slot ``slot``: the search's own for slot 0, a fresh
        split (or set of folds) drawn with the config seed + 1000 j for slot j > 0, so that
        noise and confirmation runs measure what moves with the split too."""
        if slot == 0 or not self.fresh_splits:
            return self.folds or [self.data]
        if slot not in self._slot_splits:
            seed = self.settings.config.seed + _SLOT_STRIDE * slot
            splits = load_splits(self.settings, split_seed=seed)
            for split in splits:
                _place(split, self.device, self.loss_name)
            self._slot_splits[slot] = splits
        return self._slot_splits[slot]

    def runs(self, slot: int = 0) -> list[tuple[int, TaskData]]:
        """What one trial trains, (seed, split) pairs: every seed of the slot on every split
        of the slot. Its value is the mean of their objectives."""
        return [(seed, data) for seed in self.seeds_for(slot) for data in self.splits_for(slot)]

    def new_model(self, seed: int) -> nn.Module:
        """The model with the initial weights of ``seed``: identical for every trial.

        The first build for a seed is cached, so even a user model whose init draws from
        another RNG starts every trial from the same weights.
        """
        torch.manual_seed(seed)
        model = build_model(self.settings, self.data)
        if seed in self._init_states:
            model.load_state_dict(self._init_states[seed])
        else:
            self._init_states[seed] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model.to(self.device)

    def describe(self) -> str:
        cfg = self.settings.config
        folds = f" (fold 1 of {len(self.folds)})" if len(self.folds) > 1 else ""
        return (
            f"{self.data.description}{folds}; model {cfg.model.arch} ({self.n_params:,} "
            f"parameters); "
            f"loss {self.loss_name}; device {self.device}; precision {cfg.train.precision}"
            + (f"; judged on {cfg.train.metric_label}" if self.metric else "")
            + (f"; training step {cfg.train.step}" if cfg.train.step else "")
        )


def _pick_loss(settings: Settings, data: TaskData) -> str:
    """``auto`` follows the data; an explicit loss was already checked against the targets."""
    name = settings.config.train.loss
    if name == "auto":
        return _AUTO_LOSS[data.kind]
    if name == "cross_entropy" and data.kind != "classification":
        raise settings.problem("train.loss", "cross_entropy needs integer class labels")
    return name


def _place(data: TaskData, device: torch.device, loss_name: str) -> None:
    """Put tensor data on the device when it fits comfortably, and match targets to the loss."""
    for split in (data.train, data.val):
        if not isinstance(split, TensorSplit):
            continue
        if loss_name != "cross_entropy":
            split.y = split.y.float()
            if split.y.ndim == 1:
                split.y = split.y.unsqueeze(1)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            size = split.x.element_size() * split.x.nelement()
            if size > _DEVICE_DATA_SHARE * free:
                continue
        split.x, split.y = split.x.to(device), split.y.to(device)


def build_task(settings: Settings, device: str | None = None) -> Task:
    """Load data and check that the model builds, without training anything.

    ``device`` (an option: ``--device``) overrides train.device; a problem with the device named
    in the config is reported at its line.
    """
    try:
        dev = resolve_device(device or settings.config.train.device)
    except ConfigError as exc:
        if device:
            raise OptionError("device", str(exc)) from None
        raise settings.problem("train.device", str(exc)) from None
    folds = load_splits(settings)
    data = folds[0]
    loss_name = _pick_loss(settings, data)
    for split in folds:
        _place(split, dev, loss_name)
    torch.manual_seed(settings.config.seed)
    model = build_model(settings, data)
    if count_parameters(model) == 0:
        raise settings.problem("model.arch", "the model has no trainable parameters for Adam")
    train = settings.config.train
    step = load_function(settings, "train.step", train.step, "ctx") if train.step else None
    return Task(
        settings,
        data,
        dev,
        loss_name,
        _LOSSES[loss_name],
        count_parameters(model),
        folds,
        pick_metric(settings, data),
        step,
    )
