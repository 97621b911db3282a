"""Loading the user's own code by import path (``package.module:attribute``)."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from adamtune.config.schema import Settings


def import_object(spec: str, base_dir: Path) -> Any:
    """Resolve ``package.module:attr``; the config's folder is importable, so a model.py
    beside the config works without installing anything."""
    module_name, _, attr = spec.partition(":")
    if str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_callable(settings: Settings, key: str, spec: str) -> Any:
    """The callable that config key ``key`` names, or a ConfigError naming file and line."""
    try:
        obj = import_object(spec, settings.base_dir)
    except Exception as exc:  # the user's module may fail to import in any way
        raise settings.problem(
            key, f"cannot import {spec!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not callable(obj):
        raise settings.problem(key, f"{spec!r} is not a class or function")
    return obj


def load_function(settings: Settings, key: str, spec: str, takes: str) -> Any:
    """``load_callable`` for a function adamtune calls with the positional arguments named in
    ``takes`` (``"ctx"``, ``"outputs, targets"``): one that cannot take them is refused now,
    naming its signature, not when the first trial calls it."""
    fn = load_callable(settings, key, spec)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return fn
    try:
        signature.bind(*takes.split(", "))
    except TypeError:
        raise settings.problem(
            key, f"{spec!r} must take ({takes}); its signature is {signature}"
        ) from None
    return fn
