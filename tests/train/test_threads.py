"""torch's threads following the machine's load (train/threads.py), with the load, the clock
and this process's CPU time given by the test: nothing here depends on what the machine runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import MakeTask

from adamtune.errors import ConfigError
from adamtune.train import threads
from adamtune.train.sizing import use_threads
from adamtune.train.threads import LoadFollower, busy_seconds, threads_for

CPUS = frozenset({0, 1})


@pytest.fixture(autouse=True)
def _restore_threads() -> object:
    before = torch.get_num_threads()
    yield
    threads.pin(before)


@pytest.mark.parametrize(
    ("free", "current", "most", "wanted"),
    [
        (2.0, 1, 2, 2),  # an idle machine: every core
        (1.0, 2, 2, 1),  # a neighbour keeps a core busy: one fewer
        (1.4, 2, 2, 1),
        (1.6, 2, 2, 2),  # a neighbour's short bursts do not flip it
        (1.6, 1, 2, 1),  # ... either way
        (0.1, 2, 2, 1),  # never fewer than one
        (7.9, 2, 4, 4),  # never more than the cap
        (5.0, 8, 8, 5),
    ],
)
def test_threads_for_free_cores(free: float, current: int, most: int, wanted: int) -> None:
    assert threads_for(free, current, most) == wanted


class Machine:
    """A fake two-core machine: the seconds its CPUs were busy, this process's own CPU
    seconds, and a clock, advanced by ``run``."""

    def __init__(self) -> None:
        self.now, self.busy, self.own = 100.0, 5000.0, 10.0

    def run(self, seconds: float, mine: float, others: float) -> None:
        """``seconds`` of wall time in which this process used ``mine`` cores, the rest of
        the machine ``others``."""
        self.now += seconds
        self.own += mine * seconds
        self.busy += (mine + others) * seconds

    def follower(self) -> LoadFollower:
        return LoadFollower(
            2, CPUS, busy=lambda cpus: self.busy, own=lambda: self.own, clock=lambda: self.now
        )


def test_the_threads_follow_a_neighbour_that_comes_and_goes() -> None:
    machine = Machine()
    follower = machine.follower()
    assert follower.threads == 1 and torch.get_num_threads() == 1  # safe until it has looked
    machine.run(0.6, mine=1.0, others=0.0)
    follower.pace()
    assert follower.threads == 2 and torch.get_num_threads() == 2  # the idle core is used
    machine.run(0.6, mine=2.0, others=0.0)  # its own two spinning threads are not a neighbour
    follower.pace()
    assert follower.threads == 2
    machine.run(0.6, mine=1.2, others=0.8)  # a busy process arrives and takes turns with it
    follower.pace()
    assert follower.threads == 1 and torch.get_num_threads() == 1
    machine.run(0.6, mine=1.0, others=1.0)  # still there
    follower.pace()
    assert follower.threads == 1
    machine.run(0.6, mine=1.0, others=0.0)  # gone
    follower.pace()
    assert follower.threads == 2


def test_the_follower_looks_at_most_every_half_second() -> None:
    machine = Machine()
    follower = machine.follower()
    for _ in range(4):  # epochs of 0.12 s: the load over 0.48 s is too few ticks to judge
        machine.run(0.12, mine=1.0, others=0.0)
        follower.pace()
        assert follower.threads == 1
    machine.run(0.12, mine=1.0, others=0.0)
    follower.pace()
    assert follower.threads == 2


def test_busy_seconds_counts_this_process_cpus_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  700 0 300 9000 50 0 0 0 0 0\n"
        "cpu0 100 10 50 4000 20 5 5 30 0 0\n"  # busy: user nice system irq softirq steal
        "cpu1 200 0 100 5000 30 0 0 0 0 0\n"
        "cpu2 999 999 999 0 0 0 0 0 0 0\n"  # not ours
        "intr 12345\n"
    )
    monkeypatch.setattr(threads, "_PROC_STAT", str(stat))
    tick = os.sysconf("SC_CLK_TCK")
    assert busy_seconds(CPUS) == pytest.approx((200 + 300) / tick)
    assert busy_seconds(frozenset({0})) == pytest.approx(200 / tick)
    monkeypatch.setattr(threads, "_PROC_STAT", str(tmp_path / "none"))
    assert busy_seconds(CPUS) is None


def test_a_search_follows_the_load_unless_threads_are_pinned(
    make_task: MakeTask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    task = make_task()
    monkeypatch.delenv("ADAMTUNE_THREADS")
    if busy_seconds(frozenset({0})) is not None:
        assert use_threads(task) is None and threads.following()
        assert 1 <= torch.get_num_threads() <= threads.TORCH_DEFAULT
        assert threads.described(None).startswith("follow the load")
    assert use_threads(task, 3) == 3 and not threads.following()  # --threads 3
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("ADAMTUNE_THREADS", "2")
    assert use_threads(task) == 2 and not threads.following()
    monkeypatch.setenv("ADAMTUNE_THREADS", "0")
    with pytest.raises(ConfigError, match="ADAMTUNE_THREADS: must be a whole number >= 1"):
        use_threads(task)
    # Where the load cannot be read (no /proc/stat), a small model keeps to one thread.
    monkeypatch.delenv("ADAMTUNE_THREADS")
    monkeypatch.setattr(threads, "_PROC_STAT", str(tmp_path / "none"))
    assert use_threads(task) == 1 and not threads.following()


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, docker run --cpus 2
        ({"cpu.max": "max 100000\n"}, None),  # v2 without a quota
        ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
        ({"docker/abc/cpu.max": "50000 100000\n"}, 0.5),  # v2, the path /proc/self/cgroup names
        # a parent's limit binds too, the lowest along the path
        ({"docker/abc/cpu.max": "max 100000\n", "docker/cpu.max": "300000 100000\n"}, 3.0),
        ({"docker/abc/cpu.max": "400000 100000\n", "cpu.max": "250000 100000\n"}, 2.5),
        ({}, None),  # no cgroup files at all
    ],
)
def test_a_containers_cpu_quota_is_read(
    files: dict[str, str], quota: float | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "self").write_text("1:cpu:/\n0::/docker/abc\n")
    monkeypatch.setattr(threads, "_CGROUP", str(tmp_path))
    monkeypatch.setattr(threads, "_SELF_CGROUP", str(tmp_path / "self"))
    assert threads.cpu_quota() == quota


def test_the_followed_threads_stay_within_a_cpu_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if busy_seconds(frozenset({0})) is None:
        pytest.skip("the load cannot be read here (no /proc/stat)")
    monkeypatch.setattr(threads, "_CGROUP", str(tmp_path))
    follower = threads.follow_load(8)
    assert follower is not None and follower.most == min(8, len(follower.cpus))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: one thread, not two
    follower = threads.follow_load(8)
    assert follower is not None and follower.most == 1
    assert threads.described(None).endswith("1 to 1")


def test_an_unreadable_cgroup_file_means_no_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "self").write_bytes(b"0::/caf\xe9\n")  # not UTF-8
    (tmp_path / "cpu.max").write_bytes(b"\xff\xfe\n")
    monkeypatch.setattr(threads, "_CGROUP", str(tmp_path))
    monkeypatch.setattr(threads, "_SELF_CGROUP", str(tmp_path / "self"))
    assert threads.cpu_quota() is None
    assert threads.within_quota(2) == 2


def test_local_workers_share_the_cores_within_a_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from adamtune.search.local_workers import threads_per_worker

    monkeypatch.setattr(threads, "_CGROUP", str(tmp_path))
    monkeypatch.setattr(threads, "_SELF_CGROUP", str(tmp_path / "none"))
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert threads_per_worker(2) == 8
    (tmp_path / "cpu.max").write_text("400000 100000\n")  # docker run --cpus 4
    assert threads_per_worker(2) == 2


@pytest.mark.parametrize("batched", [False, True])
def test_the_load_is_paced_every_training_step(
    batched: bool, make_task: MakeTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long epoch still reacts to a neighbour: the follower is offered every step, not
    only every epoch (it looks at the load at most twice a second itself)."""
    from adamtune.train.batched import train_batch
    from adamtune.train.engine import train_trial
    from adamtune.train.params import ADAM_DEFAULTS

    calls: list[int] = []
    monkeypatch.setattr(threads, "pace", lambda: calls.append(1))
    task = make_task(epochs=2, batch=16)  # iris: 120 training rows, 8 steps an epoch
    steps = -(-len(task.data.train) // 16)
    if batched:
        train_batch(task, [ADAM_DEFAULTS, ADAM_DEFAULTS])
    else:
        train_trial(task, ADAM_DEFAULTS)
    assert len(calls) >= 2 * steps
