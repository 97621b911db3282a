"""A busy neighbour: the quickstart search alone and beside one process that keeps a core busy.

torch's CPU threads are OpenMP threads; by default they spin while they wait for each other,
and beside another busy process on 2 cores a spinning thread takes turns with it: a search
that takes 10 s alone took 97 s. This times the whole command
``adamtune search configs/digits-mlp.yaml --trials T --fresh`` (a fresh study in a temporary
folder), from outside, for each variant, alone and then beside
``python -c "while True: pass"`` (started just before, killed just after), back to back:

  default       as adamtune runs it: torch's threads follow the load (train/threads.py: the
                cores other processes leave free, looked at between training steps)
  one           --threads 1: the default before the load was followed (for models this small)
  two-spinning  --threads 2 with OpenMP's default waiting (OMP_WAIT_POLICY empty: its threads
                spin for a while before they sleep), as every search ran before either
  two-passive   --threads 2 with OMP_WAIT_POLICY=PASSIVE: waiting threads sleep at once

It prints seconds and the ratio neighbour / alone per variant (the issue's bar: 1.5x).

    python benchmarks/bench_neighbour.py                       # 60 trials, every variant
    python benchmarks/bench_neighbour.py --trials 60 --variants default two-spinning
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "default": ({}, []),
    "one": ({}, ["--threads", "1"]),
    "two-spinning": ({"OMP_WAIT_POLICY": ""}, ["--threads", "2"]),
    "two-passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, ["--threads", "2"]),
}


def timed(trials: int, env: dict[str, str], args: list[str], busy: bool) -> float:
    """Seconds of one whole search command, beside a busy loop when ``busy``."""
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        with tempfile.TemporaryDirectory(prefix="adamtune-neighbour-") as tmp:
            command = [
                sys.executable,
                "-m",
                "adamtune",
                "search",
                str(ROOT / "configs" / "digits-mlp.yaml"),
                "--trials",
                str(trials),
                "--fresh",
                "--quiet",
                *args,
            ]
            unset = ("OMP_WAIT_POLICY", "ADAMTUNE_THREADS")
            clean = {k: v for k, v in os.environ.items() if k not in unset}
            began = time.perf_counter()
            subprocess.run(
                command,
                cwd=tmp,
                env={**clean, **env},
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return time.perf_counter() - began
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    opts = parser.parse_args()
    print(
        f"quickstart search, {opts.trials} trials, {os.cpu_count()} cores; "
        f"median of {opts.repeats} runs each"
    )
    print(f"{'variant':<12} {'alone s':>8} {'neighbour s':>12} {'ratio':>6}")
    for name in opts.variants:
        env, args = VARIANTS[name]
        alone = [timed(opts.trials, env, args, busy=False) for _ in range(opts.repeats)]
        beside = [timed(opts.trials, env, args, busy=True) for _ in range(opts.repeats)]
        a, b = statistics.median(alone), statistics.median(beside)
        print(f"{name:<12} {a:8.1f} {b:12.1f} {b / a:6.2f}", flush=True)


if __name__ == "__main__":
    main()
