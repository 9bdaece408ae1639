"""A throwaway PostgreSQL cluster on 127.0.0.1 for the audit tests (as tests/directory's PostgreSQL test
starts one), with a fresh database per use: `pg_database("audit")` -> URL.

Tests that use it are skipped when the PostgreSQL server binaries or the psycopg driver are not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _pg_binary(name: str) -> str | None:
    """On PATH, or where Debian's postgresql packages put it (not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; under root, run it as the `postgres` system user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    from mailbastion.testing.deployment import free_port as shared

    return shared()  # never a port another helper of this run just handed out


@pytest.fixture(scope="module")
def pg_server() -> Iterator[int]:
    """The port of a running cluster (user postgres, trust authentication, loopback only)."""
    pytest.importorskip("psycopg")
    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    if not (initdb and postgres):
        pytest.skip("PostgreSQL server binaries not installed")
    import psycopg

    base = Path(tempfile.mkdtemp(prefix="mailbastion-pg-"))
    data, port = base / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    proc = subprocess.Popen(_as_postgres([postgres, "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                                          "-k", str(base)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres").close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("PostgreSQL did not start")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_database(pg_server: int) -> Callable[[str], str]:
    """Make (or make again, empty) the database `name` and return its SQLAlchemy URL."""
    import psycopg

    def make(name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={pg_server} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{pg_server}/{name}"

    return make
