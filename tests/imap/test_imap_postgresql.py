"""The same IMAP logins with the directory in PostgreSQL (a throwaway cluster, tests/directory/pg_cluster.py)."""

from __future__ import annotations

import imaplib
import time
from collections.abc import Iterator

import pytest
from imap_kit import PASSWORD, ImapDeployment
from pg_cluster import reset_postgresql

from mailbastion.directory import AccountState

pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pg_imap(pg_url: str) -> Iterator[ImapDeployment]:
    reset_postgresql(pg_url)
    deployment = ImapDeployment.create(settings={("directory", "url"): f'"{pg_url}"',
                                                 ("imap", "kick_interval_seconds"): "5",
                                                 ("imap", "auth_penalty"): "false"})  # as in conftest.py
    assert deployment.directory.engine.dialect.name == "postgresql"
    deployment.directory.add_domain("example.test", by="test")  # `init` made the SQLite one; this is empty
    with deployment:
        yield deployment


def test_logins_app_passwords_states_and_mail_with_a_postgresql_directory(pg_imap: ImapDeployment) -> None:
    pg_imap.add_account("pg-user@example.test")
    secret = pg_imap.directory.add_app_password("pg-user@example.test", "tablet", by="test").secret
    pg_imap.deliver("pg-user@example.test", b"From: a@outside.example\nSubject: in postgres\n\nhello\n")
    with pg_imap.imap_tls() as m:
        assert m.login("pg-user@example.test", PASSWORD)[0] == "OK"
        assert m.select("INBOX")[1] == [b"1"]
    with pg_imap.imap_tls() as m:
        assert m.login("pg-user@example.test", secret)[0] == "OK"
    with pg_imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("pg-user@example.test", "wrong password")
    with pg_imap.imap_tls() as m:
        m.login("pg-user@example.test", PASSWORD)
        pg_imap.mb("account", "state", "pg-user@example.test", "suspended", "--reason", "hold")
        started = time.monotonic()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):  # kicked within the 60 s
            while time.monotonic() - started < 60.0:
                m.noop()
                time.sleep(0.5)
    assert pg_imap.directory.account("pg-user@example.test").state == AccountState.SUSPENDED  # type: ignore[union-attr]
    with pg_imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("pg-user@example.test", secret)
