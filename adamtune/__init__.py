"""adamtune: find the best torch.optim.Adam hyperparameters for your own model and data.

The Python API (``adamtune.api``): ``tune``, ``load_best`` and ``best_optimizer``; for your
own training function (``train.step``), ``TrainContext`` and ``StopTrial``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["StopTrial", "TrainContext", "best_optimizer", "load_best", "tune"]
_STEP_NAMES = ("StopTrial", "TrainContext")


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``import adamtune`` (and ``adamtune --help``) stays light.
    if name in _STEP_NAMES:
        from adamtune.train import user_step

        return getattr(user_step, name)
    if name in __all__:
        from adamtune import api

        return getattr(api, name)
    raise AttributeError(f"module 'adamtune' has no attribute {name!r}")
