"""One Dovecot for the whole IMAP test session (it is slow to start on a busy machine): the `imap` fixture.
Tests give each case accounts of its own, so they do not depend on one another."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "directory"))  # pg_cluster: the throwaway PostgreSQL

from imap_kit import ImapDeployment
from pg_cluster import pg_url

from mailbastion.testing.dns_server import DnsTestServer

SESSION_SETTINGS = {
    ("login", "max_failures_per_account"): "3",  # the throttle test locks an account after 3 failures
    ("login", "lockout_seconds"): "600",
    # Dovecot's per-address penalty (up to 15 s before every login, right or wrong, from 127.0.0.1) would add
    # up over the session's failed logins; [login]'s throttle, which the tests check, stays as it is.
    ("imap", "auth_penalty"): "false",
    ("imap", "kick_interval_seconds"): "5",
    ("mailbox", "default_quota_bytes"): str(50 * 1024 * 1024),
}


@pytest.fixture(scope="session")
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def imap(dns: DnsTestServer) -> Iterator[ImapDeployment]:
    settings = {**SESSION_SETTINGS, ("dns", "nameservers"): f'["{dns.host}"]', ("dns", "port"): str(dns.port),
                ("dns", "timeout"): "2.0",
                # `mailbastion scan` runs the gateway's pipeline on this deployment (the learning test):
                # the message path's flows run without ClamAV too.
                ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"'}
    with ImapDeployment.create(settings=settings) as deployment:
        yield deployment


__all__ = ["imap", "pg_url"]
