"""A real PostgreSQL server for tests, on 127.0.0.1 (Debian's ``postgresql`` package).

The server gets its own data directory under the test's temporary folder, a free port, and a
user with a password; it stops when the test session ends. Running as root, the server runs as
the ``postgres`` system user (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PASSWORD = "tuner-Pw-4711"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def driver() -> str | None:
    """The installed PostgreSQL driver module: psycopg (3) or psycopg2."""
    return next((m for m in ("psycopg", "psycopg2") if importlib.util.find_spec(m)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def serve() -> Iterator[str]:
    """Start a server in a fresh folder; yield the URL of a database ``studies`` owned by user
    ``tuner`` (with ``PASSWORD``); stop it and remove the folder afterwards."""
    bin_dir = binaries()
    assert bin_dir is not None
    # Not under pytest's temporary folders: they are private to root, and the server is not.
    root = Path(tempfile.mkdtemp(prefix="adamtune-pg-"))
    try:
        yield from _serve(bin_dir, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(bin_dir: Path, root: Path) -> Iterator[str]:
    data, run, pwfile = root / "data", root / "run", root / "pw"
    run.mkdir(exist_ok=True)
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for path in (run, pwfile):
            shutil.chown(path, "postgres")
    port = _free_port()
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "tuner",
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    url = f"postgresql://tuner:{PASSWORD}@127.0.0.1:{port}"
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "log"),
                    "-w",
                    "start",
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {run} -c fsync=off",
                ]
            ),
            check=True,
            capture_output=True,
        )
        module = importlib.import_module(driver() or "psycopg")
        for _ in range(50):
            try:
                conn = module.connect(f"{url}/postgres")
                break
            except module.OperationalError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"PostgreSQL did not accept connections: see {root / 'log'}")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE studies")
        conn.close()
        yield f"{url}/studies"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )
