"""Files with secrets are created 0600 in 0700 folders, from the first byte; replacements are atomic."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from mailbastion.private_files import create_private_file, private_dir, write_private, write_public


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    old = os.umask(0)  # the worst case: a process that lets every bit through
    yield
    os.umask(old)


def test_new_secret_files_and_folders_are_private_whatever_the_umask(tmp_path: Path, open_umask: object) -> None:
    key = tmp_path / "a" / "b" / "x.key"
    write_private(key, b"secret")
    assert key.read_bytes() == b"secret" and mode(key) == 0o600
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    crt = tmp_path / "a" / "b" / "x.crt"
    write_public(crt, b"public")
    assert mode(crt) == 0o644
    assert private_dir(tmp_path / "c") == tmp_path / "c" and mode(tmp_path / "c") == 0o700


def test_replacing_keeps_a_narrow_mode_but_never_widens(tmp_path: Path) -> None:
    key = tmp_path / "x.key"
    write_private(key, b"one")
    key.chmod(0o640)  # the service group may read it
    write_private(key, b"two")
    assert key.read_bytes() == b"two" and mode(key) == 0o640
    key.chmod(0o666)  # someone widened it by hand: a renewal narrows it again
    write_private(key, b"three")
    assert mode(key) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["x.key"]  # no temporary left behind


def test_replacing_keeps_the_owner(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another user")
    key = tmp_path / "x.key"
    write_private(key, b"one")
    os.chown(key, 65534, 65534)  # nobody: the service user
    write_private(key, b"two")
    st = key.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and mode(key) == 0o600


def test_sqlite_database_created_private_stays_private_with_its_wal(tmp_path: Path, open_umask: object) -> None:
    db = tmp_path / "data" / "directory.db"
    assert create_private_file(db) is True
    assert create_private_file(db) is False  # never truncates an existing database
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES ('password hash')")
    con.commit()
    wal = Path(f"{db}-wal")
    assert wal.exists()
    assert mode(db) == 0o600 and mode(wal) == 0o600 and mode(Path(f"{db}-shm")) == 0o600
    assert mode(db.parent) == 0o700
    con.close()
