"""Search quality: adamtune's winners against plain Optuna loops and Adam's defaults.

A search's own best value is measured on the split, initial weights and batch order it searched
with, so it flatters the winner (the search picked the luckiest draw). Here every winner is
trained again by a plain torch loop written independently of adamtune (it never imports it):
a fresh train/val split (``random_state`` 10_000 + s, which no search uses), fresh initial
weights and batch orders (seeds 20_000 + r, r < ``--rescore-seeds``), the same architecture,
epochs, batch size, loss and scaling, and ``torch.optim.Adam`` with the winner's keyword
arguments (and its lr schedule, if adamtune chose one). A winner's score is the mean over those
seeds of the lowest validation loss over epochs (adamtune's default objective); a non-finite
loss scores +inf. Every method's winner of search seed s is re-scored on the same splits and
seeds.

Tasks (all offline: scikit-learn's bundled data or data generated with a fixed seed; CPU;
``quality_tasks.py``). The last four are ones adamtune's defaults were not tuned on:

  digits         MLP 64-128-128-10, batch 64, 20 epochs, cross-entropy
  breast_cancer  linear (logistic regression), batch 32, 30 epochs, weight decay up to 1.0
  diabetes       MLP 10-64-1 with dropout 0.1, MSE on the standardised target, val 25%,
                 batch 32, 40 epochs
  wine           MLP 13-64-3, batch 16, 40 epochs
  digits_cnn     adamtune's ``arch: cnn`` on digits as (1, 8, 8) images: conv 8 and 16
                 (3x3, ReLU, 2x2 max-pool each), then 64-32-10; batch 128, 12 epochs
  moons          make_moons(1000, noise=0.25, random_state=0) as an .npz, MLP 2-32-32-2,
                 batch 64, 30 epochs
  iris           MLP 4-32-3, val 30%, batch 16, 40 epochs
  friedman       make_friedman1(1000, 10 features, noise 1, random_state=0), target 20y + 2
                 (mean ~290, std ~100) as an .npz with ``standardize: false`` (nor are the
                 [0, 1) features scaled): MLP 10-64-1, MSE in the target's units, batch 32,
                 25 epochs

Methods, each searching with seed s for s < ``--seeds`` at each budget of ``--trials`` (trial
0, Adam's defaults, included; ``peers.py`` for the loops):

  adamtune   adamtune's default search (config ``seed: s``) through its Python API
  random     a plain Optuna loop, RandomSampler(seed=s)                 ) MedianPruner, trial 0
  tpe        a plain Optuna loop, TPESampler(seed=s, multivariate=True) ) enqueued as the
  gp         a plain Optuna loop, GPSampler(seed=s)                     ) defaults, same space
  defaults   Adam's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay), no search

Searches run one after another in this process, at the same torch thread count (``--threads``,
else torch's default), so their wall times (``perf_counter`` around the whole search, imports
excluded) compare. Per task and budget it prints each method's median (over search seeds)
re-scored loss, search seconds, span (first trial's start to last trial's end) and epochs
trained, the winner (lowest median), and two checks:
(a) adamtune's median <= the best peer's median (within 0.001 absolute is a tie; the ratio
is printed);
(b) where some peer's median is more than 2% below the defaults', adamtune's is at least 1%
below the defaults' (a task where no peer gets there passes as "vacuous").

    python benchmarks/quality.py                # 8 tasks, seeds 0-4, --trials 30 64: ~50 min
    python benchmarks/quality.py --quick        # all tasks, 1 seed, 12 trials, 2 rescores: 2.5 min
    OMP_NUM_THREADS=1 python benchmarks/quality.py --tasks wine moons --seeds 1 --trials 12 \\
        --rescore-seeds 2
    python benchmarks/quality.py --methods random tpe gp defaults --json q.json --plot q.png
    # five more search seeds (5-9) beside a run of seeds 0-4, without re-running those:
    python benchmarks/quality.py --first-seed 5 --seeds 5 --json q59.json --merge q.json

``--json PATH`` writes every raw number (per task, budget, method and seed: the winner, the
search's best and default values, each re-scoring seed's loss, times; +inf as null);
``--plot PATH`` a PNG of median re-scored loss relative to the defaults' against median
search seconds, one panel per budget. (~10 min per search seed at ``--trials 30 64`` on one
core, 29% of it digits_cnn.)

Reading the peers: TPE and GP draw their start-up trials with ``RandomSampler(seed=s)``, so the
three peers share their first ~10 trials, and GPSampler models COMPLETE trials only: with
``MedianPruner`` pruning 70-90% of 64 trials, it often stays in its random start-up for the
whole budget, and its winner is then the random peer's. That is what these plain loops do.

Files: ``quality_tasks.py`` (tasks, data, models), ``peers.py`` (the Optuna loops),
``quality_report.py`` (tables, checks, plot), ``rescore.py`` (the independent re-scoring loop),
``quality_json.py`` (``--json`` and ``--merge``), this file (adamtune, running).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from peers import ADAM_DEFAULTS, PEERS, Winner, search_with_peer, span_seconds
from peers import warm_up as warm_up_samplers
from quality_json import merge, write_json
from quality_report import Cell, check_lines, plot, table_lines, tally
from quality_tasks import TASKS, Task, write_npz
from rescore import Result, rescore, train_once

METHODS = ["adamtune", *PEERS, "defaults"]


# --- adamtune, through its library entry points ---------------------------------------------


def config_text(task: Task, seed: int, trials: int, source: str, extra: dict[str, Any]) -> str:
    """The adamtune config of ``task`` searched with ``seed``, as YAML."""
    model: dict[str, Any] = {"arch": task.arch}
    if task.arch in ("mlp", "cnn"):
        model.update(hidden=list(task.hidden), dropout=task.dropout)
    if task.arch == "cnn":
        model["channels"] = list(task.channels)
    search: dict[str, Any] = {"trials": trials, **extra}
    if task.space:  # the task's own ranges, on top of any --set space keys
        search["space"] = {**search.get("space", {}), **task.space}
    config = {
        "name": f"quality-{task.name}-s{seed}",
        "seed": seed,
        "data": {
            "source": source,
            "val_fraction": task.val_fraction,
            "standardize": task.standardize,
            "batch_size": task.batch_size,
        },
        "model": model,
        "train": {"epochs": task.epochs, "loss": task.loss, "device": "cpu"},
        "search": search,
    }
    # PyYAML writes floats with a dot (1.0e-05), so they read back as numbers.
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def search_with_adamtune(task: Task, seed: int, trials: int, extra: dict[str, Any]) -> Winner:
    """One study in a fresh directory; only ``run_search`` is timed."""
    import optuna
    import torch

    from adamtune.config.schema import load_config
    from adamtune.insight.results import best_result
    from adamtune.search import SearchOptions, run_search

    with tempfile.TemporaryDirectory(prefix="adamtune-quality-") as tmp:
        source = str(write_npz(task, Path(tmp))) if task.generated else task.source
        path = Path(tmp) / f"quality-{task.name}-s{seed}.yaml"
        path.write_text(config_text(task, seed, trials, source, extra))
        url = f"sqlite:///{tmp}/q.db"
        settings = load_config(path)
        threads = torch.get_num_threads()
        began = time.perf_counter()
        run_search(settings, SearchOptions(storage=url))
        seconds = time.perf_counter() - began
        storage = optuna.storages.RDBStorage(url)
        study = optuna.load_study(study_name=settings.study_name, storage=storage)
        best = best_result(study)
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in study.trials)
        span = span_seconds(study.trials)
        storage.engine.dispose()  # close the file before its directory goes
    return Winner(
        params=best.params.torch_kwargs(),
        schedule=best.as_dict()["schedule"],
        search_value=best.value,
        search_default_value=best.default_value,
        search_seconds=seconds,
        span_seconds=span,
        trials=best.n_trials,
        pruned=pruned,
        epochs=epochs,
        threads=threads,
    )


# --- running --------------------------------------------------------------------------------


def _brief(params: dict[str, Any]) -> str:
    b1, b2 = params["betas"]
    text = f"lr {params['lr']:.3g} b1 {b1:.3g} b2 {b2:.5g} eps {params['eps']:.2g}"
    if params["weight_decay"]:
        text += f" wd {params['weight_decay']:.2g}"
    return text + (" amsgrad" if params["amsgrad"] else "")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument(
        "--trials",
        type=int,
        nargs="+",
        default=[30, 64],
        help="budgets: every search runs once per budget (trial 0 included)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="search seeds 0..N-1")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="search seeds S..S+N-1 instead (with --merge)"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=[],
        help="earlier --json files: their results join this run's (this run's win a tie)",
    )
    parser.add_argument(
        "--rescore-seeds",
        type=int,
        default=5,
        help="fresh init/shuffle seeds each winner is re-trained with",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for every method (default: torch's own)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: --seeds 1 --trials 12 --rescore-seeds 2"
    )
    parser.add_argument("--json", type=Path, help="write every raw number here")
    parser.add_argument("--plot", type=Path, help="write a PNG: loss vs defaults against time")
    parser.add_argument(
        "--set",
        metavar="JSON",
        type=json.loads,
        default={},
        help='extra search keys for the adamtune method, e.g. \'{"confirm": {"seeds": 3}}\'',
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.trials, args.rescore_seeds = 1, [12], 2
    return args


def warm_up(methods: list[str]) -> None:
    """Imports and one-time set-up, out of every timed search: torch's first optimizer imports
    torch._dynamo (~0.8 s), the first split scikit-learn, GPSampler its GP modules, adamtune
    whatever it loads on first use. A broken adamtune fails here, not after an hour of peers.
    """
    import dataclasses

    tiny = dataclasses.replace(TASKS["iris"], epochs=2)
    if any(m in PEERS for m in methods):
        warm_up_samplers()
        search_with_peer("random", tiny, 0, 4)
    if "adamtune" in methods:
        search_with_adamtune(tiny, 0, 6, {})
    train_once(tiny, ADAM_DEFAULTS, 0, 0)


def main() -> None:
    args = parse_args()
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    warm_up(args.methods)
    searched = [m for m in args.methods if m != "defaults"]
    # results[task][budget][method]: one Result per search seed
    results: dict[str, dict[int, dict[str, list[Result]]]] = {}
    began = time.perf_counter()
    for name in args.tasks:
        task = TASKS[name]
        per_budget = results.setdefault(name, {b: {} for b in args.trials})
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if "defaults" in args.methods:  # the same for every budget: re-scored once
                plain = rescore(task, seed, Winner(params=dict(ADAM_DEFAULTS)), args.rescore_seeds)
                for per_method in per_budget.values():
                    per_method.setdefault("defaults", []).append(plain)
            for budget in args.trials:
                for method in searched:
                    torch.set_num_threads(threads)  # whatever a search before did to it
                    if method == "adamtune":
                        winner = search_with_adamtune(task, seed, budget, args.set)
                    else:
                        winner = search_with_peer(method, task, seed, budget)
                    result = rescore(task, seed, winner, args.rescore_seeds)
                    per_budget[budget].setdefault(method, []).append(result)
                    print(
                        f"{name} s{seed} {budget} {method}: {winner.search_seconds:.1f} s "
                        f"(span {winner.span_seconds:.1f} s), {winner.pruned} pruned, "
                        f"{winner.epochs} epochs, rescored {result.score:.5g}; "
                        f"{_brief(winner.params)}",
                        file=sys.stderr,
                        flush=True,
                    )
    elapsed = time.perf_counter() - began
    for path in args.merge:
        merge(results, json.loads(path.read_text()), args)

    print(
        f"quality: budgets {args.trials}, search seeds {args.seeds}, rescore seeds "
        f"{args.rescore_seeds}, torch {torch.__version__} threads {threads}, optuna "
        f"{optuna.__version__}, {elapsed:.0f} s"
    )
    cells: dict[str, dict[int, dict[str, Cell]]] = {
        name: {
            budget: {
                method: Cell(
                    [r.score for r in rs],
                    [r.winner.search_seconds for r in rs],
                    [r.winner.span_seconds for r in rs],
                    [r.winner.epochs for r in rs],
                )
                for method, rs in per_method.items()
            }
            for budget, per_method in per_budget.items()
        }
        for name, per_budget in results.items()
    }
    checks: dict[str, dict[int, dict[str, Any]]] = {}
    for name, row in cells.items():
        for budget, row_cells in row.items():
            print()
            for line in table_lines(name, budget, row_cells):
                print(line)
            lines, verdict = check_lines(row_cells)
            checks.setdefault(name, {})[budget] = verdict
            for line in lines:
                print(line)
    print()
    for line in tally(checks):
        print(line)
    if args.plot:
        plot(cells, args.plot)
    if args.json:
        write_json(args, elapsed, results, cells, checks)


if __name__ == "__main__":
    main()
