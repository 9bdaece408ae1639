"""The same directory on a real PostgreSQL server (a throwaway cluster on 127.0.0.1, started by the
`pg_url` fixture of conftest.py). The audit log's own PostgreSQL tests are in tests/audit/.

Skipped when the PostgreSQL server binaries or the psycopg driver are not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import Directory

from pg_cluster import reset_postgresql as _reset

pytest.importorskip("psycopg")


def test_directory_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    _reset(pg_url)
    d = Directory.create(pg_url, recipient_map=tmp_path / "map.json")
    d.migrate()  # idempotent
    d.add_domain("example.org", by="admin")
    pw = d.add_account("Alice@example.org", None, "admin", "joiner")
    d.add_alias("info@example.org", "alice@example.org", by="admin")
    assert d.verify_password("alice@example.org", pw or "")
    assert d.resolve("alice+x@example.org").kind is ResolutionKind.LOCAL
    assert d.resolve("info@example.org").kind is ResolutionKind.ALIAS
    d.deactivate("alice@example.org", "hr", "leaver")
    assert d.resolve("alice@example.org").kind is ResolutionKind.UNKNOWN_USER
    info = d.account("alice@example.org")
    assert info is not None and info.deactivated_at is not None and info.deactivated_at.tzinfo is not None
    assert d.audit.verify().ok and d.audit.verify().count == 4
