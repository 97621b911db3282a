"""torch's CPU threads, following what the rest of the machine leaves free.

On an idle 2-core machine two threads train a batch of small models 1.5x faster than one, but
beside one busy process they are a disaster: OpenMP threads spin while they wait for each
other, take turns with the neighbour, and a 10 s search took 97 s (benchmarks/README.md). No
fixed number is right for both, and neighbours come and go during a search, so the search
looks, between training steps (at most every ``_INTERVAL`` seconds, so a long epoch reacts
too), at how much CPU time the rest of the machine took since the last look (the busy time of
this process's CPUs in ``/proc/stat``, less this process's own), and trains on the cores left
free: every one when the machine is idle, one fewer per core the neighbours keep busy, never
fewer than one. Where there is no
``/proc/stat`` (macOS, Windows) nothing follows the load and the fixed choice stands.

A container's CPU quota (``docker run --cpus 2``, a CI runner's limit: ``cpu.max`` of the
process's cgroup or a parent's) caps the count too: the machine's CPUs are all visible inside
it, but threads beyond the quota only wait for their turn, and spinning OpenMP threads burn
the quota while they wait.

Thread counts round floats differently in some kernels (a lone trial's losses may move in the
last bits when its thread count changes; a batch of trials trains alike on one thread or two),
so a bit-for-bit rerun pins the count: ``--threads N`` or ``ADAMTUNE_THREADS=N``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

TORCH_DEFAULT = torch.get_num_threads()  # before anything here changed it: the physical cores
_INTERVAL = 0.5  # seconds between looks: long enough for /proc/stat's 10 ms ticks to add up
_PROC_STAT = "/proc/stat"
_CGROUP = "/sys/fs/cgroup"  # v2: <path>/cpu.max; v1: cpu/<path>/cpu.cfs_quota_us and _period_us
_SELF_CGROUP = "/proc/self/cgroup"
# /proc/stat's columns after the name: user nice system idle iowait irq softirq steal ...
_BUSY = (0, 1, 2, 5, 6, 7)  # idle and iowait are free time; steal is a neighbour too


def busy_seconds(cpus: frozenset[int]) -> float | None:
    """Seconds ``cpus`` have been busy since boot, all processes together; None where
    ``/proc/stat`` cannot be read."""
    try:
        with open(_PROC_STAT, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            fields = rest.split()
            ticks += sum(int(fields[i]) for i in _BUSY if i < len(fields))
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_quota() -> float | None:
    """The CPUs this process's cgroups let it use (a container's ``--cpus``, a CI job's limit),
    or None where there is no quota or it cannot be read. A limit set on a parent cgroup binds
    too: the lowest along the path counts."""
    quotas = []
    for version, path in _own_cgroups():
        if version == "v2":
            for folder in _and_parents(path):
                fields = _read_fields(f"{_CGROUP}{folder}/cpu.max")
                if fields and len(fields) == 2 and fields[0] != "max":
                    quotas.append(_ratio(fields[0], fields[1]))
        else:
            for folder in _and_parents(path):
                quota = _read_fields(f"{_CGROUP}/cpu{folder}/cpu.cfs_quota_us")
                period = _read_fields(f"{_CGROUP}/cpu{folder}/cpu.cfs_period_us")
                if quota and period:
                    quotas.append(_ratio(quota[0], period[0]))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _own_cgroups() -> list[tuple[str, str]]:
    """This process's cgroup paths: ("v2", path) from the unified line, ("v1", path) from
    the cpu controller's; the root where ``/proc/self/cgroup`` cannot be read."""
    fields = []
    try:
        with open(_SELF_CGROUP, encoding="utf-8", errors="replace") as f:
            fields = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        pass
    out = [("v2" if f[0] == "0" else "v1", f[2]) for f in fields if len(f) == 3 and _cpu(f)]
    return out or [("v2", "/"), ("v1", "/")]


def _cpu(fields: list[str]) -> bool:
    return (fields[0] == "0" and fields[1] == "") or "cpu" in fields[1].split(",")


def _and_parents(path: str) -> list[str]:
    """``/a/b`` -> ``/a/b``, ``/a``, and the root as ``""``."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:n]) if n else "" for n in range(len(parts), -1, -1)]


def _read_fields(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().split()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # v1 writes -1 for no quota


def within_quota(threads: int) -> int:
    """``threads``, at most the whole CPUs of the cgroup's quota (1.5 CPUs: one thread, not
    two that the quota throttles in turn), and at least one."""
    quota = cpu_quota()
    return max(1, threads if quota is None else min(threads, math.floor(quota)))


def threads_for(free: float, current: int, most: int) -> int:
    """The thread count for ``free`` idle cores, moving from ``current`` only when the change
    is clear (a neighbour that takes half a core on and off must not flip it every look)."""
    if free < current - 0.5:
        return max(1, min(most, round(free)))
    if free >= current + 0.75:
        return max(1, min(most, math.floor(free + 0.25)))
    return current


class LoadFollower:
    """Sets torch's threads from the load the rest of the machine put on this process's CPUs
    since the last look (``pace``)."""

    def __init__(
        self,
        most: int,
        cpus: frozenset[int],
        *,
        busy: Callable[[frozenset[int]], float | None] = busy_seconds,
        own: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most, self.cpus = most, cpus
        self._busy, self._own, self._clock = busy, own, clock
        self.threads = 1  # until the first look: safe beside a neighbour
        torch.set_num_threads(1)
        self._then = (clock(), busy(cpus) or 0.0, own())

    def pace(self) -> None:
        """Look again if ``_INTERVAL`` has passed, and change the thread count if the free
        cores say so."""
        now = self._clock()
        then, busy_then, own_then = self._then
        if now - then < _INTERVAL:
            return
        busy, own = self._busy(self.cpus), self._own()
        if busy is None:
            return
        self._then = (now, busy, own)
        others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
        wanted = threads_for(len(self.cpus) - others, self.threads, self.most)
        if wanted != self.threads:
            log.debug("other processes used %.2f cores: %d torch threads", others, wanted)
            torch.set_num_threads(wanted)
            self.threads = wanted


_follower: LoadFollower | None = None


def follow_load(most: int) -> LoadFollower | None:
    """Let torch's threads follow the machine's load from now on (at most ``most``); None,
    and nothing changed, where the load cannot be read."""
    global _follower
    cpus = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if not cpus or busy_seconds(cpus) is None:
        _follower = None
        return None
    _follower = LoadFollower(within_quota(min(most, len(cpus))), cpus)
    return _follower


def pin(threads: int) -> None:
    """A fixed thread count: the load is no longer followed."""
    global _follower
    _follower = None
    torch.set_num_threads(threads)


def described(pinned: int | None) -> str:
    """The CPU threads training uses, for the search's opening lines."""
    if pinned:
        return str(pinned)
    if _follower is not None:
        return f"follow the load: the cores other processes leave free, 1 to {_follower.most}"
    return str(torch.get_num_threads())


def following() -> bool:
    return _follower is not None


def pace() -> None:
    """Called before each training step (a step is cheap to pace: the load is read at most
    every ``_INTERVAL``): adjust the threads to the load, when it is followed."""
    if _follower is not None:
        _follower.pace()
