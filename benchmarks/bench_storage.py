"""What the default SQLite storage costs a search: time inside Optuna's RDB storage calls and
SQL commits per trial, on the quickstart config.

    python benchmarks/bench_storage.py            # batch: auto (the default)
    python benchmarks/bench_storage.py --batch 1  # one trial at a time
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sklearn.datasets import load_digits
from sqlalchemy import event
from sqlalchemy.engine import Engine

import adamtune.search.trial_runs as search_module
from adamtune.config.schema import load_config
from adamtune.search import SearchOptions, run_search

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "digits-mlp.yaml"
spent = {"seconds": 0.0, "depth": 0, "commits": 0}


def _count_commit(_: Any) -> None:
    spent["commits"] += 1


def _timed(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if spent["depth"]:  # a storage call inside another: counted once, outermost
            return fn(*args, **kwargs)
        spent["depth"] += 1
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - began
            spent["depth"] -= 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="auto")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_digits()  # imports and data outside the clock, as in bench_search.py
    event.listen(Engine, "commit", _count_commit)
    for name in dir(RDBStorage):
        fn = getattr(RDBStorage, name)
        if not name.startswith("_") and callable(fn):
            setattr(RDBStorage, name, _timed(fn))
    # adamtune's own one-transaction writer goes around the public calls: time it too.
    search_module.write_trial = _timed(search_module.write_trial)
    batch = args.batch if args.batch == "auto" else int(args.batch)
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'adamtune.db'}"
    began = time.perf_counter()
    run = run_search(load_config(CONFIG), SearchOptions(storage=url, batch=batch))
    total = time.perf_counter() - began
    n = len(run.ran)
    print(
        f"batch {batch}: {n} trials in {total:.1f} s; storage {spent['seconds']:.2f} s "
        f"({100 * spent['seconds'] / total:.1f}%), {spent['commits']} commits "
        f"({spent['commits'] / n:.1f} per trial)"
    )


if __name__ == "__main__":
    main()
