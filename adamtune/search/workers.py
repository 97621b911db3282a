"""Many workers on one study: the lock they take to decide what runs next, the heartbeat that
shows their trials are alive, and the failing of trials whose worker is gone.

The study in its storage is the only coordination: no server of our own. A worker decides
what runs next and asks its trials (they appear as RUNNING) while it holds the study's lock,
then trains them without it. So every decision sees the trials every other worker has started,
and the running ones count toward the budget and the stage they belong to: the budget is met
exactly, never overshot. The lock is the database's own (a PostgreSQL advisory lock, MySQL's
``GET_LOCK``) or, for a SQLite file (one machine), an ``flock`` on ``<database>.lock`` beside
it; the database or the kernel releases it when its holder dies.

A running trial's worker records a heartbeat every ``heartbeat`` seconds (Optuna's RDB
heartbeat); a trial without one for three intervals is failed by the next worker that looks,
and so is, at once, a trial whose process on this host is gone. A failed ("killed") trial is
drawn again once (``retry_of``); killed again, it counts as failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.search import trial_attrs
from adamtune.search.options import HEARTBEAT
from adamtune.search.optuna_private import backend_of, heartbeat_interfaces, storage_of

log = logging.getLogger(__name__)

GRACE = 3  # heartbeats missed before a running trial is taken for dead
HEARTBEAT_ATTR = "adamtune_heartbeat"
_LOCAL = threading.Lock()  # storages with no lock of their own: one process only
_HELD = threading.local()  # .locks: the (database, study) locks this thread holds


def _key(study_name: str) -> bytes:
    return hashlib.blake2b(f"adamtune:{study_name}".encode(), digest_size=8).digest()


@contextlib.contextmanager
def study_lock(storage: optuna.storages.BaseStorage, study_name: str) -> Iterator[None]:
    """Hold the study's lock: one worker at a time decides what runs next and asks it. A
    process that holds it already (``search --jobs`` preparing the study) goes straight on."""
    backend = getattr(storage, "_backend", storage)
    engine: Any = getattr(backend, "engine", None)
    dialect = engine.dialect.name if engine is not None else None
    database = engine.url.database if engine is not None else None
    held = (str(engine.url) if engine is not None else "", study_name)
    locks: set[tuple[str, str]] = _HELD.__dict__.setdefault("locks", set())
    if held in locks:
        yield
        return
    locks.add(held)
    try:
        with _taken(engine, dialect, database, study_name):
            yield
    finally:
        locks.discard(held)


@contextlib.contextmanager
def _taken(
    engine: Any, dialect: str | None, database: str | None, study_name: str
) -> Iterator[None]:
    if dialect in ("postgresql", "mysql", "mariadb"):
        with _database_lock(engine, dialect, study_name):
            yield
    elif dialect == "sqlite" and database not in (None, "", ":memory:"):
        with _file_lock(database):
            yield
    else:
        with _LOCAL:
            yield


@contextlib.contextmanager
def _database_lock(engine: Any, dialect: str, study_name: str) -> Iterator[None]:
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if dialect == "postgresql":
            key = int.from_bytes(_key(study_name), "big", signed=True)
            take, give = "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"
        else:  # MySQL's named locks are per connection too
            key = f"adamtune-{_key(study_name).hex()}"  # type: ignore[assignment]
            take, give = "SELECT GET_LOCK(:k, -1)", "SELECT RELEASE_LOCK(:k)"
        connection.execute(text(take), {"k": key})
        try:
            yield
        finally:
            connection.execute(text(give), {"k": key})


@contextlib.contextmanager
def _file_lock(database: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process per SQLite study
        with _LOCAL:
            yield
        return
    # Beside the database (its real path): every process that opens the file finds the same
    # lock, whatever its temporary directory. One lock serves every study in the file.
    with _LOCAL, open(os.path.realpath(database) + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Roll:
    """The study's roll of workers: each signs it (a study system attribute with the time) when
    it starts and, while searching, every ``every`` seconds at most. Workers that signed within
    ``window`` seconds are counted present, so that a worker asks only its share of a stage's
    draws as one batch and leaves the rest to the others. The roll is read again after
    ``look`` seconds: a worker that looked before the others had signed (the first worker, at
    its first trial) would otherwise take whole stages for itself while they sit idle."""

    def __init__(
        self, study: optuna.Study, every: float = 5.0, window: float = 60.0, look: float = 1.0
    ) -> None:
        self.study, self.every, self.window, self.look = study, every, window, look
        self.key = f"adamtune_worker:{worker_id()}"
        self.signed = -math.inf
        self.seen: tuple[float, tuple[int, int]] | None = None  # when, (all, here)

    def sign(self, now: float | None = None, *, leaving: bool = False) -> None:
        now = time.time() if now is None else now
        if leaving or now - self.signed >= self.every:
            storage = storage_of(self.study)
            study_id = storage.get_study_id_from_name(self.study.study_name)
            storage.set_study_system_attr(study_id, self.key, 0.0 if leaving else now)
            self.signed = now

    def present(self, now: float | None = None) -> tuple[int, int]:
        """Workers present, this one included: in all, and on this host (read again after
        ``look`` seconds at most)."""
        now = time.time() if now is None else now
        if self.seen is not None and now - self.seen[0] < self.look:
            return self.seen[1]
        storage = storage_of(self.study)
        attrs = storage.get_study_system_attrs(
            storage.get_study_id_from_name(self.study.study_name)
        )
        others = [
            key.removeprefix("adamtune_worker:")
            for key, stamp in attrs.items()
            if key.startswith("adamtune_worker:")
            and key != self.key
            and isinstance(stamp, (int, float))
            and now - stamp < self.window
        ]
        here = sum(1 for worker in others if worker.rpartition(":")[0] == worker_host())
        self.seen = (now, (1 + len(others), 1 + here))
        return self.seen[1]


class CoreShare:
    """torch's CPU threads for a worker that shares its host with ``local`` workers (the
    user's ``--threads`` unset): the cores divided among them. More threads than cores make
    torch's OpenMP threads spin against each other: 3 workers of 2 threads on 2 cores ran
    trials 20-50x slower than 3 workers of one thread each."""

    def __init__(self) -> None:
        import torch

        self.default = torch.get_num_threads()
        self.cores = os.cpu_count() or 1

    def share(self, local: int) -> None:
        import torch

        threads = max(1, min(self.default, self.cores // max(local, 1)))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def agree_heartbeat(study: optuna.Study, heartbeat: int | None) -> None:
    """One heartbeat for the whole study: the first worker's, stored in the study. A worker is
    judged dead by the interval its trials beat at, so a worker started with a shorter
    ``--heartbeat`` must not take a slower one's live trials for dead."""
    backend: Any = backend_of(study)
    if not heartbeat or getattr(backend, "heartbeat_interval", None) is None:
        return
    agreed = study.user_attrs.get(HEARTBEAT_ATTR)
    if agreed is None:
        study.set_user_attr(HEARTBEAT_ATTR, heartbeat)
    elif agreed != heartbeat:
        log.warning(
            "this study's heartbeat is %s s (set by its first worker), not %s s", agreed, heartbeat
        )
        backend.heartbeat_interval, backend.grace_period = int(agreed), GRACE * int(agreed)


def storage_options(heartbeat: int | None) -> dict[str, Any]:
    """``RDBStorage`` keyword arguments for a searching worker."""
    if not heartbeat:
        return {}
    return {"heartbeat_interval": heartbeat, "grace_period": GRACE * heartbeat}


class Heartbeat:
    """While its block runs, records a heartbeat for ``trial_ids`` every interval, on a thread
    (a no-op on a storage without heartbeats)."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        trial_ids: list[int],
        also: Callable[[], None] | None = None,
    ) -> None:
        BaseHeartbeat, is_heartbeat_enabled = heartbeat_interfaces()
        self.storage: Any = storage if isinstance(storage, BaseHeartbeat) else None
        self.enabled = self.storage is not None and is_heartbeat_enabled(storage)
        self.trial_ids = trial_ids
        self.also = also  # more signs of life with every beat (the study's roll)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def beat(self) -> None:
        """Record one heartbeat now (``TrialRunner.ask`` does for every trial it starts: a trial
        without any heartbeat is never taken for dead)."""
        if self.enabled:
            assert self.storage is not None
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)

    def _run(self, interval: float) -> None:
        while not self.stop.wait(interval):
            try:
                self.beat()
                if self.also is not None:
                    self.also()
            except Exception:  # a database hiccup: the next beat tries again
                log.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        if self.enabled:
            assert self.storage is not None
            interval = float(self.storage.get_heartbeat_interval() or HEARTBEAT)
            self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def read_live(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials, after failing the running ones whose worker is gone: a process on
    this host that no longer exists, a heartbeat older than the grace period (any host), or a
    trial that never got its attributes. The caller holds the study's lock. With no trial
    running, nothing more is asked of the database."""
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.RUNNING for t in trials):
        return trials
    fail_orphans(study, trials)
    # Trials are asked and given their attributes under the study's lock, which the caller
    # holds: a running trial without them was being asked when its worker died.
    for trial in trials:
        if trial.state == TrialState.RUNNING and trial_attrs.WORKER not in trial.user_attrs:
            study.tell(trial.number, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return study.get_trials(deepcopy=False)


# --- who is alive: this worker, the others, the trials of dead ones ---------------------


def worker_host() -> str:
    return socket.gethostname()


def worker_id() -> str:
    return f"{worker_host()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet (a zombie) is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def fail_orphans(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
    """Mark as failed the RUNNING trials (of ``trials``, else the study's) whose process on
    this host is gone (killed, crashed). Trials of live workers, here or on other hosts, are
    left alone."""
    host = socket.gethostname()
    failed = 0
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in (t for t in trials if t.state == TrialState.RUNNING):
        owner = str(trial.user_attrs.get(trial_attrs.WORKER, ""))
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)  # no status: shown as killed
            failed += 1
    return failed


def others_running(study: optuna.Study) -> list[FrozenTrial]:
    """The running trials of other workers than this process."""
    mine = worker_id()
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if str(t.user_attrs.get(trial_attrs.WORKER, "")) != mine
    ]


def take_over(study: optuna.Study) -> int:
    """Fail the running trials of other workers (known to be gone): they are drawn again."""
    others = others_running(study)
    for trial in others:
        study.tell(trial.number, state=TrialState.FAIL)  # no status: retried, as killed
    return len(others)


def refuse_if_busy(study: optuna.Study, elsewhere: int = 0) -> None:
    """Refuse to delete (``--fresh``) a study that another live worker is searching: its
    RUNNING trials remain after ``fail_orphans``, or ``elsewhere`` other workers signed the
    study's roll within the last minute (``workers.Roll``)."""
    from adamtune.errors import SearchFailedError

    others = others_running(study)
    if others:
        workers = sorted({str(t.user_attrs.get(trial_attrs.WORKER, "?")) for t in others})
        raise SearchFailedError(
            f"study {study.study_name!r} is being searched by {', '.join(workers)} "
            f"({len(others)} trials running): --fresh would delete it under them; wait for "
            f"them, or, if they are gone, add --take-over"
        )
    if elsewhere > 0:
        raise SearchFailedError(
            f"study {study.study_name!r} has {elsewhere} other worker(s) searching it (seen "
            f"within the last minute): --fresh would delete it under them; wait for them, or, "
            f"if they are gone, add --take-over"
        )
