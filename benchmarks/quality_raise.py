"""What raising ``--trials`` on a finished study buys: each task's study is searched with
``--first`` trials, then resumed with each total of ``--raise``; every winner is re-scored by
the independent loop (``rescore.py``) on the same fresh split and seeds as in ``quality.py``.

Before a raise kept back the re-runs of a new candidate, a few more trials after the
confirmation were drawn and never confirmed, so the winner could not change: the baseline of
this comparison is the first winner itself. Per task it prints how many seeds' winners the
raise changed, how many of those re-score better and worse (by more than 0.1%), and the
geometric mean of the raised winner's re-scored loss over the first one's.

    python benchmarks/quality_raise.py --seeds 5 --first 30 --raise 34 40
    ADAMTUNE_THREADS=1 python benchmarks/quality_raise.py --first-seed 5 --seeds 5 --json r5.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from peers import Winner
from quality import config_text
from quality_tasks import TASKS, Task, write_npz
from rescore import rescore

SAME = 1e-3  # relative: re-scored within 0.1% counts as neither better nor worse
FLOOR = 1e-6  # losses are clipped here before a ratio (cross-entropies reach ~0)


def winners(task: Task, seed: int, totals: list[int]) -> list[dict[str, Any]]:
    """The study's winner after each total in ``totals``, searched in that order in one
    storage (each a resume of the last)."""
    import optuna

    from adamtune.config.schema import load_config
    from adamtune.insight.results import best_result
    from adamtune.search import SearchOptions, run_search

    out = []
    with tempfile.TemporaryDirectory(prefix="adamtune-raise-") as tmp:
        source = str(write_npz(task, Path(tmp))) if task.generated else task.source
        path = Path(tmp) / f"quality-{task.name}-s{seed}.yaml"
        path.write_text(config_text(task, seed, totals[0], source, {}))
        url = f"sqlite:///{tmp}/q.db"
        settings = load_config(path)
        for total in totals:
            run = run_search(settings, SearchOptions(storage=url, trials=total))
            storage = optuna.storages.RDBStorage(url)
            best = best_result(optuna.load_study(study_name=settings.study_name, storage=storage))
            storage.engine.dispose()
            out.append(
                {
                    "total": total,
                    "ran": len(run.ran),
                    "stopped_by": run.stopped_by,
                    "trial": best.trial,
                    "verdict": best.verdict,
                    "params": best.params.torch_kwargs(),
                    "schedule": best.as_dict()["schedule"],
                }
            )
    return out


def run(tasks: list[str], seeds: list[int], totals: list[int], rescore_seeds: int) -> list[Any]:
    rows = []
    for name in tasks:
        task = TASKS[name]
        for seed in seeds:
            found = winners(task, seed, totals)
            cache: dict[str, float] = {}
            for w in found:
                key = json.dumps([w["params"], w["schedule"]], sort_keys=True)
                if key not in cache:
                    winner = Winner(params=w["params"], schedule=w["schedule"])
                    cache[key] = rescore(task, seed, winner, rescore_seeds).score
                w["rescored"] = cache[key]
            rows.append({"task": name, "seed": seed, "winners": found})
            print(
                f"{name:14s} s{seed:<3d} "
                + "  ".join(f"{w['total']}: #{w['trial']} {w['rescored']:.4g}" for w in found),
                flush=True,
            )
    return rows


def _log_ratio(after: float, before: float) -> float:
    return math.log(max(after, FLOOR) / max(before, FLOOR))


def report(rows: list[Any]) -> list[str]:
    """Per raise and task, against the first total's winners (every row raised alike)."""
    lines = []
    totals = [w["total"] for w in rows[0]["winners"]]
    for i, total in enumerate(totals[1:], start=1):
        lines.append(f"raised {totals[0]} -> {total}:")
        pooled: list[float] = []
        for name in dict.fromkeys(r["task"] for r in rows):
            mine = [r["winners"] for r in rows if r["task"] == name]
            changed = [w for w in mine if w[i]["trial"] != w[0]["trial"]]
            before = [w[0]["rescored"] for w in changed]
            after = [w[i]["rescored"] for w in changed]
            better = sum(a < b * (1 - SAME) for a, b in zip(after, before, strict=True))
            worse = sum(a > b * (1 + SAME) for a, b in zip(after, before, strict=True))
            logs = [_log_ratio(w[i]["rescored"], w[0]["rescored"]) for w in mine]
            pooled += logs
            lines.append(
                f"  {name:14s} changed {len(changed)}/{len(mine)}  better {better} worse {worse}"
                f"  geometric mean {math.exp(statistics.fmean(logs)):.3f}"
            )
        lines.append(f"  all: geometric mean {math.exp(statistics.fmean(pooled)):.3f}")
        ran = Counter((r["winners"][i]["ran"], r["winners"][i]["stopped_by"]) for r in rows)
        lines.append(
            "  trials run, and why the search stopped: "
            + ", ".join(
                f"{n} run, {why}: {count} studies" for (n, why), count in sorted(ran.items())
            )
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=30)
    parser.add_argument("--raise", dest="raises", type=int, nargs="+", default=[34, 40])
    parser.add_argument("--rescore-seeds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--merge", type=Path, nargs="*", help="report these --json files")
    args = parser.parse_args()
    if args.merge:
        rows = [r for path in args.merge for r in json.loads(path.read_text())]
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        rows = run(args.tasks, seeds, [args.first, *args.raises], args.rescore_seeds)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print("\n".join(report(rows)))


if __name__ == "__main__":
    main()
