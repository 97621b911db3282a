"""Text renderings of results that need no terminal: JSON, YAML and pasteable torch code."""

from __future__ import annotations

import json
from typing import Any

import yaml

from adamtune.results import BestResult, TrialRow


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False, default=str)


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def torch_code(best: BestResult) -> str:
    """Code to paste into a training script; floats printed with repr, so they round-trip."""
    p = best.params
    versus = (
        f" (Adam's defaults: {best.default_value:.6g})" if best.default_value is not None else ""
    )
    return "\n".join(
        [
            f"# adamtune study {best.study!r}, trial {best.trial} ({best.stage}): "
            f"val loss {best.value:.6g}{versus}",
            "optimizer = torch.optim.Adam(",
            "    model.parameters(),",
            f"    lr={p.lr!r},",
            f"    betas=({p.beta1!r}, {p.beta2!r}),",
            f"    eps={p.eps!r},",
            f"    weight_decay={p.weight_decay!r},",
            f"    amsgrad={p.amsgrad!r},",
            f"    decoupled_weight_decay={p.decoupled_weight_decay!r},",
            ")",
        ]
    )


def trials_data(rows: list[TrialRow]) -> list[dict[str, Any]]:
    return [row.as_dict() for row in rows]
