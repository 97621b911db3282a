"""Trials per second: a hand-written Optuna + PyTorch loop against adamtune, back to back.

Each variant runs in its own child process (so peak memory is its own), one after the other,
on the same task and budget:

  hand        the loop a practitioner writes: TensorDataset + DataLoader(shuffle=True),
              nn.Sequential, torch.optim.Adam with suggested params, val loss reported per
              epoch, MedianPruner, an in-memory study (TPE, all params at once)
  adamtune    ``adamtune search`` as a user runs it (staged, default SQLite storage)
  adamtune-memory  the same search on an in-memory SQLite database: the difference to
              ``adamtune`` is what the storage costs
  adamtune-batch-K  ``adamtune search --batch K`` (K trials trained as one vectorised model;
              K may be ``auto``)
  adamtune-joint-batch-K  the same with ``strategy: joint`` (all parameters at once)

It prints trials/second, the ratio to ``hand``, peak RSS, and the best val loss each reached.

    python benchmarks/bench_search.py                 # digits MLP 64-128-128-10, 32 trials
    python benchmarks/bench_search.py --task wide     # a wider MLP (per-trial compute dominates)
    python benchmarks/bench_search.py --variants hand adamtune adamtune-batch-8 adamtune-batch-32
    python benchmarks/bench_search.py --task quickstart --seeds 3 \
        --variants cli-jobs-1 cli-jobs-2 cli-jobs-1-batch-1 cli-jobs-2-batch-1

  cli-jobs-N[-batch-B]  the ``adamtune search --jobs N [--batch B]`` command as a user runs
              it, timed from outside (imports, helper workers and the summary included)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS = {
    # name: (hidden widths, epochs, trials)
    "digits": ([128, 128], 20, 32),
    "wide": ([1024, 1024], 10, 16),
    "quickstart": ([128, 128], 20, 60),  # configs/digits-mlp.yaml
}
SEED = 0


def _config_text(task: str, strategy: str = "staged") -> str:
    hidden, epochs, trials = TASKS[task]
    return (
        f"name: bench-{task}\nseed: {SEED}\n"
        f"data: {{source: digits, batch_size: 64}}\n"
        f"model: {{arch: mlp, hidden: {hidden}}}\n"
        f"train: {{epochs: {epochs}, device: cpu}}\n"
        f"search: {{trials: {trials}, strategy: {strategy}}}\n"
    )


def run_hand(task: str) -> dict[str, float]:
    """The usual hand-written loop, as close to a tutorial's as possible."""
    import numpy as np
    import optuna
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    hidden, epochs, trials = TASKS[task]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)
    train = TensorDataset(torch.tensor(x_tr, dtype=torch.float32), torch.tensor(y_tr))
    val_x = torch.tensor(x_va, dtype=torch.float32)
    val_y = torch.tensor(np.asarray(y_va))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        beta1 = trial.suggest_float("beta1", 0.5, 0.999)
        beta2 = trial.suggest_float("beta2", 0.9, 0.9999)
        eps = trial.suggest_float("eps", 1e-10, 1e-3, log=True)
        weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
        amsgrad = trial.suggest_categorical("amsgrad", [False, True])
        torch.manual_seed(SEED)
        layers: list[nn.Module] = []
        width = 64
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        model = nn.Sequential(*layers, nn.Linear(width, 10))
        opt = torch.optim.Adam(
            model.parameters(),
            lr=lr,
            betas=(beta1, beta2),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )
        loader = DataLoader(train, batch_size=64, shuffle=True)
        best = float("inf")
        for epoch in range(epochs):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                val = nn.functional.cross_entropy(model(val_x), val_y).item()
            best = min(best, val)
            trial.report(val, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        pruner=optuna.pruners.MedianPruner(),
    )
    began = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - began
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    return {"seconds": seconds, "trials": trials, "best": study.best_value, "epochs": epochs_run}


def run_adamtune(
    task: str, memory: bool = False, batch: int | str = 1, strategy: str = "staged"
) -> dict[str, float]:
    """``adamtune search`` through its library entry point, in a fresh directory."""
    from sklearn.datasets import load_digits

    from adamtune.config.schema import load_config
    from adamtune.search import SearchOptions, run_search

    # The hand loop imports scikit-learn and loads its data before its clock starts: so here.
    load_digits()

    workdir = Path(tempfile.mkdtemp(prefix="adamtune-bench-"))
    config = workdir / f"bench-{task}.yaml"
    config.write_text(_config_text(task, strategy))
    url = "sqlite:///:memory:" if memory else f"sqlite:///{workdir / 'adamtune.db'}"
    settings = load_config(config)
    began = time.perf_counter()
    run = run_search(settings, SearchOptions(storage=url, batch=batch))  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    best = min(r.value for r in run.ran if r.value is not None)
    epochs_run = sum(r.epochs or 0 for r in run.ran)
    return {"seconds": seconds, "trials": len(run.ran), "best": best, "epochs": epochs_run}


def run_cli(task: str, jobs: int, batch: str | None) -> dict[str, float]:
    """``adamtune search CONFIG --jobs N [--batch B]`` as a user types it, in a fresh
    directory: wall time from the command's start to its end (imports, helper processes and
    the summary included), and the search phase (first trial's start to last trial's end)."""
    import optuna

    workdir = Path(tempfile.mkdtemp(prefix="adamtune-bench-"))
    config = workdir / f"bench-{task}.yaml"
    config.write_text(_config_text(task))
    argv = [sys.executable, "-m", "adamtune", "search", str(config), "-q", "--jobs", str(jobs)]
    argv += ["--batch", batch] if batch else []
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=workdir, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    study = optuna.load_study(
        study_name=f"bench-{task}", storage=f"sqlite:///{workdir}/adamtune.db"
    )
    trials = study.get_trials()
    workers = {t.user_attrs.get("worker") for t in trials}
    if len(workers) != jobs or "warning: worker" in done.stderr:  # a dead helper skews the figure
        raise SystemExit(f"{len(workers)} of {jobs} workers ran trials: {done.stderr[-500:]}")
    phase = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    values = [t.value for t in trials if t.value is not None and "confirms" not in t.user_attrs]
    return {
        "seconds": seconds,
        "trials": len(trials),
        "best": min(values),
        "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
        "search_seconds": phase.total_seconds(),
    }


def child(variant: str, task: str) -> None:
    if variant == "hand":
        result = run_hand(task)
    elif variant.startswith("cli-jobs-"):
        jobs, _, batch = variant.removeprefix("cli-jobs-").partition("-batch-")
        result = run_cli(task, int(jobs), batch or None)
    elif "-batch-" in variant:
        k = variant.rpartition("-batch-")[2]
        strategy = "joint" if variant.startswith("adamtune-joint-") else "staged"
        result = run_adamtune(task, batch=k if k == "auto" else int(k), strategy=strategy)
    else:
        result = run_adamtune(task, memory=variant.endswith("memory"))
    # ru_maxrss is in KiB on Linux: this process's own peak, torch's allocations included.
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


VARIANTS = ["hand", "adamtune", "adamtune-memory", "adamtune-batch-8", "adamtune-batch-32"]


def _variant(name: str) -> str:
    prefix, _, k = name.rpartition("-batch-")
    jobs = name.removeprefix("cli-jobs-").partition("-batch-")
    if (
        name.startswith("cli-jobs-")
        and jobs[0].isdigit()
        and (not jobs[2] or jobs[2] == "auto" or jobs[2].isdigit())
    ):
        return name
    known = name in VARIANTS[:3] or (
        prefix in ("adamtune", "adamtune-joint") and (k == "auto" or k.isdigit())
    )
    if not known:
        raise argparse.ArgumentTypeError(f"unknown variant {name!r}")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="digits")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=VARIANTS,
        type=_variant,
        help="hand, adamtune, adamtune-memory, adamtune[-joint]-batch-K",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat with seeds 0..N-1 (data split, init, samplers); the table "
        "shows sums of time and epochs and the mean best loss",
    )
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SEED
    SEED = args.seed
    if args.child:
        child(args.child, args.task)
        return
    results: dict[str, dict[str, float]] = {}
    for seed in range(args.seeds):
        for variant in args.variants:  # back to back, seed by seed
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--task",
                    args.task,
                    "--child",
                    variant,
                    "--seed",
                    str(seed),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ},
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"seed {seed} {variant}: {r}", file=sys.stderr)
            total = results.setdefault(
                variant, {"seconds": 0.0, "trials": 0, "epochs": 0, "best": 0.0, "peak_mib": 0.0}
            )
            for key in ("seconds", "trials", "epochs"):
                total[key] += r[key]
            total["search_seconds"] = total.get("search_seconds", 0.0) + r.get(
                "search_seconds", r["seconds"]
            )
            total["best"] += r["best"] / args.seeds
            total["peak_mib"] = max(total["peak_mib"], r["peak_mib"])
    hidden, epochs, trials = TASKS[args.task]
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"task {args.task}: digits MLP 64-{'-'.join(map(str, hidden))}-10, {epochs} epochs, "
        f"{trials} trials, batch 64, CPU, torch threads {threads}, seeds {args.seeds}"
    )

    def rate(name: str) -> float:
        r = results.get(name)
        return r["trials"] / r["seconds"] if r else float("nan")

    if any(v.startswith("cli-jobs-") for v in results):
        # Each --jobs N row against the one-worker row with the same --batch.
        print(
            f"{'variant':<22} {'trials/s':>9} {'vs 1 worker':>12} {'search-phase trials/s':>22} "
            f"{'ratio':>6} {'best single trial':>18}"
        )
        for variant, r in results.items():
            base = results.get(
                "cli-jobs-1" + variant.partition("-batch-")[1] + variant.partition("-batch-")[2], r
            )
            phase = r["trials"] / r["search_seconds"]
            base_phase = base["trials"] / base["search_seconds"]
            ratio = (r["trials"] / r["seconds"]) / (base["trials"] / base["seconds"])
            print(
                f"{variant:<22} {rate(variant):>9.3f} {ratio:>11.2f}x {phase:>22.3f} "
                f"{phase / base_phase:>5.2f}x {r['best']:>18.5f}"
            )
        return

    print(
        f"{'variant':<18} {'trials/s':>9} {'vs hand':>8} {'vs seq':>7} {'epochs/s':>9} "
        f"{'epochs':>7} {'peak MiB':>9} {'mean best loss':>14}"
    )
    for variant, r in results.items():
        print(
            f"{variant:<18} {rate(variant):>9.3f} {rate(variant) / rate('hand'):>7.2f}x "
            f"{rate(variant) / rate('adamtune'):>6.2f}x {r['epochs'] / r['seconds']:>9.1f} "
            f"{r['epochs']:>7} {r['peak_mib']:>9.0f} {r['best']:>14.5f}"
        )


if __name__ == "__main__":
    main()
