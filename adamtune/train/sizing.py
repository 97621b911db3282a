"""How many trials train together (``search.batch``, ``--batch``) and on how many CPU threads:
chosen from the model's size and the device's memory, as measured (benchmarks/README.md)."""

from __future__ import annotations

import os

import torch

from adamtune.errors import ConfigError
from adamtune.task.build import Task
from adamtune.train.batched import unbatchable
from adamtune.train.threads import TORCH_DEFAULT, follow_load, pin

# ``batch: auto``. Measured on 2 CPU cores (benchmarks/README.md, bench_engine.py): batching K
# trials pays while the K weight rows stay small; against one at a time, 32 rows of a
# 26k-parameter MLP train 5.3x faster per trial, 32 of 85k 2.7x, 16 of 300k 1.5x, while at
# 1.1M parameters no K beats 1.
_AUTO_MAX = {"cpu": 32, "gpu": 64}
_AUTO_ELEMENTS = {"cpu": 4_000_000, "gpu": 64_000_000}  # K x P kept under this
_AUTO_MIN = 8  # below this many rows the per-op savings no longer pay for the batching
_BUFFERS = 8  # weights, gradients, two moments, amsgrad maximum, scratch: bytes per element x4


def auto_batch(task: Task) -> int:
    """K for ``batch: auto``: as many rows as fit the device's sweet spot and a quarter of its
    free memory, or 1 when that is too few to pay."""
    kind = "cpu" if task.device.type == "cpu" else "gpu"
    k = min(_AUTO_MAX[kind], _AUTO_ELEMENTS[kind] // max(task.n_params, 1))
    per_row = _BUFFERS * 4 * max(task.n_params, 1)
    free = _free_bytes(task.device)
    if free is not None:
        k = min(k, int(0.25 * free) // per_row)
    return k if k >= _AUTO_MIN else 1


# Where the load cannot be followed (no /proc/stat): below this many parameters a CPU trial is
# per-op overhead more than arithmetic, and one thread, unlike two, keeps its speed beside
# another busy process (benchmarks/bench_neighbour.py).
_ONE_THREAD_PARAMS = 1_000_000
THREADS_ENV = "ADAMTUNE_THREADS"


def cpu_threads(task: Task) -> int | None:
    """torch's CPU threads for ``task`` where the load cannot be followed and the user chose
    none: one for a small model on the CPU, else None (torch's default)."""
    return 1 if task.device.type == "cpu" and task.n_params < _ONE_THREAD_PARAMS else None


def env_threads() -> int | None:
    """``$ADAMTUNE_THREADS``: the same as ``--threads``, for every command."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{THREADS_ENV}: must be a whole number >= 1 (got {text!r})")
    return int(text)


def use_threads(task: Task, threads: int | None = None) -> int | None:
    """Set torch's CPU threads for training ``task``: ``threads`` (or ``$ADAMTUNE_THREADS``)
    when given; else, on the CPU, follow the machine's load (``threads.follow_load``), or
    where it cannot be read, ``cpu_threads``'s choice. Returns the number pinned (None: the
    load is followed, or torch's default kept)."""
    threads = threads or env_threads()
    if not threads and task.device.type == "cpu" and follow_load(TORCH_DEFAULT) is not None:
        return None
    threads = threads or cpu_threads(task)
    if threads:
        pin(threads)
    return threads


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    return None


def batch_size(task: Task, requested: int | str) -> tuple[int, str | None]:
    """The K a search uses for ``requested`` (a number or ``auto``), and a one-line notice
    when batching was asked for but cannot be used."""
    if requested == 1:
        return 1, None
    reason = unbatchable(task)
    if reason is not None:
        return 1, f"trials are trained one at a time: {reason}"
    return (auto_batch(task) if requested == "auto" else int(requested)), None
