"""The Python API: tune from a config, read a study's winner, get a configured optimizer.

    import adamtune
    result = adamtune.tune("configs/digits-mlp.yaml", trials=30, train__epochs=10)
    best = adamtune.load_best(study="digits-mlp")
    optimizer = adamtune.best_optimizer(model.parameters(), study="digits-mlp")
    optimizer, scheduler = adamtune.best_optimizer(model.parameters(), study=..., scheduler=True)

Everything here is what the CLI does, without printing: ``tune`` is ``adamtune search``,
``load_best`` is ``adamtune best``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamtune.config.schema import Settings, settings_of
from adamtune.config.yamlfile import YamlDoc, read_yaml
from adamtune.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    import torch

    from adamtune.insight.results import BestResult
    from adamtune.search import SearchObserver, SearchRun

log = logging.getLogger(__name__)
_OPTION_NAMES = ("storage", "study", "trials", "timeout", "device", "fresh", "batch", "take_over")


@dataclass
class TuneResult:
    """What ``tune`` did: the run (trials trained now, why it stopped) and the winner."""

    run: SearchRun
    best: BestResult

    @property
    def params(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.optim.Adam(model.parameters(), **params)``."""
        return self.best.params.torch_kwargs()


# The file a config given as a mapping stands for: its folder is where relative paths lead.
MAPPING_FILE = "adamtune-config.yaml"


def settings_from(
    config: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    beside: Path | None = None,
) -> Settings:
    """Validated settings from a config file or mapping, with ``overrides`` applied first:
    keys are dotted (``"train.epochs"``) or use ``__`` (``train__epochs``). A mapping's
    relative paths (a CSV data source) are read from ``beside``'s folder, else from here."""
    if isinstance(config, Mapping):
        path = beside or Path.cwd() / MAPPING_FILE
        doc = YamlDoc(_plain(config), "<config>")
    else:
        path = Path(config)
        doc = read_yaml(path)
    if overrides:
        if not isinstance(doc.data, dict):
            raise ConfigError(f"{doc.source}: the config must be a mapping of keys")
        # Messages then name the key path, not a line of the file (which no longer holds it).
        doc = YamlDoc(_overridden(doc.data, overrides), f"{doc.source} (with overrides)")
    return settings_of(doc, path, "adamtune" if isinstance(config, Mapping) else path.stem)


def _plain(value: Any) -> Any:
    """A copy of a config value made of plain Python (dicts, lists, str, int, float, bool):
    numpy scalars become numbers, any mapping a dict, a function or class its import path
    (``train__step=my_train``); nothing is shared with the original."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if not isinstance(value, (str, bytes, bool)) and callable(getattr(value, "item", None)):
        return value.item()  # numpy and torch scalars
    if callable(value):
        return import_path(value)
    return value


def import_path(obj: Any) -> str:
    """``module:qualified.name`` of a function or class, as a config names it: the study
    stores the path (a genuine Optuna study holds plain data), so the object must be
    reachable by it, from a module's top level (``__main__`` works in the same process)."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not name or "<" in name:
        raise ConfigError(
            f"{obj!r}: pass a function or class defined at the top level of a module "
            "(adamtune stores its import path in the study; a lambda or a nested function "
            "has none)"
        )
    if module == "__main__":
        log.warning(
            "%s is defined in the script or notebook you run: this process can use it, but "
            "commands run later (adamtune verify, a search that resumes) cannot import it; "
            "define it in a module (a .py file beside your config) to use those",
            name,
        )
    return f"{module}:{name}"


def _overridden(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _plain(data)
    for key, value in overrides.items():
        parts = key.replace("__", ".").split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a mapping in the config")
            node = child
        node[parts[-1]] = _plain(value)
    return out


def tune(
    config: str | Path | Mapping[str, Any],
    observer: SearchObserver | None = None,
    **overrides: Any,
) -> TuneResult:
    """Run (or resume) the study a config describes, as ``adamtune search`` does.

    ``overrides`` are the search options ``storage``, ``study``, ``trials``, ``timeout``,
    ``device``, ``fresh`` and ``batch`` (as the CLI's flags), and any config key, dotted in a
    string or with ``__`` (``train__epochs=5``, ``**{"search.space.lr": "auto"}``).
    """
    from adamtune.config.storage_url import resolve_storage
    from adamtune.insight.results import best_result
    from adamtune.search import run_search
    from adamtune.search.options import SearchOptions, check_option
    from adamtune.search.storage import load_study, open_storage, release_storage

    options = {k: overrides.pop(k) for k in _OPTION_NAMES if k in overrides}
    for name, value in options.items():  # before the config: a bad option is named first
        check_option(name, value)
    settings = settings_from(config, overrides)
    url = resolve_storage(options.pop("storage", None), settings.config.search.storage)
    search_options = SearchOptions(storage=url, study_name=options.pop("study", None), **options)
    run = run_search(settings, search_options, observer)
    backend = open_storage(url, must_exist=True)
    try:
        best = best_result(load_study(run.study, backend, url), run.storage)
    finally:
        release_storage(backend)
    return TuneResult(run, best)


def find_study(
    config: str | Path | None = None, storage: str | None = None, study: str | None = None
) -> tuple[optuna.Study, str]:
    """The study a reader means: by config, by name, or the most recently updated one in the
    storage; and the storage URL with any password hidden."""
    from adamtune.config.storage_url import redact, resolve_storage
    from adamtune.search.storage import latest_study, load_study, open_storage

    settings = settings_from(config) if config is not None else None
    url = resolve_storage(storage, settings.config.search.storage if settings else None)
    backend = open_storage(url, must_exist=True)
    name = study or (settings.study_name if settings else None) or latest_study(backend, url)
    return load_study(name, backend, url), redact(url)


def study_settings(study: optuna.Study, config: str | Path | None = None) -> Settings:
    """The settings a study ran with, from the config it stored (so that a config edited
    since cannot change what is measured); relative paths and the user's modules from
    ``config``'s folder, else from the folder of the config the study was searched with
    (where it still exists on this machine), else from here."""
    from adamtune.errors import StudyNotFoundError
    from adamtune.search.study import CONFIG_ATTR, CONFIG_DIR_ATTR, METHOD_KEY

    stored = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(stored, dict):
        raise StudyNotFoundError(
            f"study {study.study_name!r} was not made by adamtune search (no stored config)"
        )
    stored = {k: v for k, v in stored.items() if k != METHOD_KEY}  # beside the config
    if config:
        beside: Path | None = Path(config).resolve()
    else:
        folder = study.user_attrs.get(CONFIG_DIR_ATTR)
        beside = Path(folder) / MAPPING_FILE if folder and Path(folder).is_dir() else None
    return settings_from(stored, beside=beside)


def load_best(
    config: str | Path | None = None, *, study: str | None = None, storage: str | None = None
) -> BestResult:
    """The winner of a study, as ``adamtune best`` reports it."""
    from adamtune.insight.results import best_result

    found, url = find_study(config, storage, study)
    return best_result(found, url)


def best_optimizer(
    params: Iterable[Any],
    config: str | Path | None = None,
    *,
    study: str | None = None,
    storage: str | None = None,
    scheduler: bool = False,
) -> Any:
    """``torch.optim.Adam(params, **best)`` with a study's winning hyperparameters; with
    ``scheduler=True``, ``(optimizer, scheduler)``, the scheduler None for a constant rate
    (step it once per epoch)."""
    import torch

    from adamtune.train.schedules import NO_SCHEDULE, make_scheduler

    best = load_best(config, study=study, storage=storage)
    kwargs = best.params.torch_kwargs()
    kwargs["betas"] = tuple(kwargs["betas"])
    optimizer: torch.optim.Adam = torch.optim.Adam(params, **kwargs)
    if not scheduler:
        if best.params.schedule != NO_SCHEDULE:
            log.warning(
                "study %r chose an lr schedule (%s): pass scheduler=True to get it too",
                best.study,
                best.params.schedule.describe(),
            )
        return optimizer
    return optimizer, make_scheduler(optimizer, best.params.schedule, best.epochs)
