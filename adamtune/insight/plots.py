"""Plots written as PNG files (matplotlib, without a display)."""

from __future__ import annotations

from pathlib import Path

from adamtune.errors import ConfigError
from adamtune.train.lr_find import RangeCurve


def range_test_png(curves: list[RangeCurve], path: Path) -> None:
    """Every seed's smoothed loss against lr (log axis), with the first seed's suggestions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, curve in enumerate(curves):
        ax.plot(curve.lrs, curve.smoothed, lw=1.4, label=f"seed {i}")
    marks = {"steep": "v", "valley": "o", "minimum/10": "s", "largest_stable": "^"}
    first = curves[0]
    for name, marker in marks.items():
        lr = first.suggestions.get(name)
        if lr is not None:
            ax.axvline(lr, ls=":", lw=1, color="grey")
            ax.plot([lr], [_at(first, lr)], marker=marker, ls="", label=f"{name} {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("LR range test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise ConfigError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _at(curve: RangeCurve, lr: float) -> float:
    """The smoothed loss at the tried lr nearest ``lr``."""
    i = min(range(len(curve.lrs)), key=lambda j: abs(curve.lrs[j] - lr))
    return curve.smoothed[i]
