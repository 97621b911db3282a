"""Two versions of the search (or adamtune and a peer) compared seed by seed, from
``quality.py --json`` files.

A change to the search's defaults is judged on ``quality.py``'s tasks, so the seeds it was
chosen on cannot also be its proof: run both versions on held-out seeds as well
(``--first-seed 10``) and pool them here. Per task and budget it prints the medians before
and after, how many seeds the change made better and worse (by more than 0.1%), and the
geometric mean of the after/before ratios; then the totals, with and without ``--leave-out``
tasks (wine's losses near 0 swing either way).

    python benchmarks/quality_paired.py --before base.json base10.json --after new.json new10.json
    python benchmarks/quality_paired.py --before a.json --after b.json --method tpe
    # adamtune against a peer, seed by seed (both from one merged file):
    python benchmarks/quality_paired.py --before q.json --against random --after q.json

Several files on one side are pooled by seed (a later file wins a seed both hold).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

SAME = 1e-3  # relative: a seed within 0.1% counts as neither better nor worse
FLOOR = 1e-6  # losses are clipped here before a ratio (cross-entropies reach ~0)

Runs = dict[tuple[str, str], dict[int, float]]  # (task, budget) -> seed -> re-scored loss


def load(paths: list[Path], method: str) -> Runs:
    """Each (task, budget)'s re-scored losses by search seed, pooled over ``paths``."""
    out: Runs = {}
    for path in paths:
        results = json.loads(path.read_text())["results"]
        for task, budgets in results.items():
            for budget, methods in budgets.items():
                for run in methods.get(method, []):
                    out.setdefault((task, budget), {})[run["seed"]] = run["rescored_mean"]
    return out


def compare(before: dict[int, float], after: dict[int, float]) -> tuple[int, int, list[float]]:
    """Seeds made better, seeds made worse, and the log ratios, over the seeds both hold."""
    seeds = sorted(before.keys() & after.keys())
    better = sum(after[s] < before[s] * (1 - SAME) for s in seeds)
    worse = sum(after[s] > before[s] * (1 + SAME) for s in seeds)
    logs = [math.log(max(after[s], FLOOR) / max(before[s], FLOOR)) for s in seeds]
    return better, worse, logs


def report(before: Runs, after: Runs, leave_out: set[str]) -> list[str]:
    lines = [f"{'task':14s} {'budget':>6s} {'seeds':>5s}  {'median before -> after':26s} W-L  geo"]
    total: dict[str, tuple[int, int, list[float]]] = {"all": (0, 0, []), "kept": (0, 0, [])}
    for key in sorted(before.keys() & after.keys()):
        better, worse, logs = compare(before[key], after[key])
        if not logs:
            continue
        seeds = sorted(before[key].keys() & after[key].keys())
        medians = (
            f"{statistics.median(before[key][s] for s in seeds):.4g} -> "
            f"{statistics.median(after[key][s] for s in seeds):.4g}"
        )
        geo = math.exp(statistics.fmean(logs))
        lines.append(
            f"{key[0]:14s} {key[1]:>6s} {len(seeds):5d}  {medians:26s} {better}-{worse}  {geo:.3f}"
        )
        for name in ("all", "kept") if key[0] not in leave_out else ("all",):
            b, w, seen = total[name]
            total[name] = (b + better, w + worse, seen + logs)
    for name, (better, worse, logs) in total.items():
        if logs:
            label = "all" if name == "all" else f"without {', '.join(sorted(leave_out))}"
            geo = math.exp(statistics.fmean(logs))
            lines.append(f"{label}: {better}-{worse}, geometric mean {geo:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, nargs="+", required=True)
    parser.add_argument("--after", type=Path, nargs="+", required=True)
    parser.add_argument("--method", default="adamtune")
    parser.add_argument(
        "--against", help="the --before files' method, when not --method's: a peer, say"
    )
    parser.add_argument("--leave-out", nargs="*", default=["wine"])
    args = parser.parse_args()
    lines = report(
        load(args.before, args.against or args.method),
        load(args.after, args.method),
        set(args.leave_out),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
