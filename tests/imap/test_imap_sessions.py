"""Account states reach open IMAP sessions: an account made inactive is kicked within 60 s (from another
process: the command line) or at once (through the service's own directory), and cannot log in again."""

from __future__ import annotations

import imaplib
import time

import pytest
from imap_kit import PASSWORD, ImapDeployment

from mailbastion.directory import AccountState

KICK_LIMIT = 60.0  # the promise; the session sets imap.kick_interval_seconds = 5


def _wait_kicked(m: imaplib.IMAP4, limit: float) -> float:
    """Seconds until the server closes the session (NOOP fails), or fail after `limit`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            m.noop()
        except (imaplib.IMAP4.abort, OSError):
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(f"the session was still open {limit:.0f}s after the account stopped being active")


def test_an_account_deactivated_from_the_command_line_is_kicked_and_cannot_log_in(imap: ImapDeployment) -> None:
    imap.add_account("leaver@example.test")
    with imap.imap_tls() as m:
        m.login("leaver@example.test", PASSWORD)
        m.select("INBOX")
        imap.mb("account", "deactivate", "leaver@example.test", "--reason", "leaver ticket 7")  # another process
        _wait_kicked(m, KICK_LIMIT)
    with imap.imap_tls() as again, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        again.login("leaver@example.test", PASSWORD)


def test_a_suspension_through_the_services_directory_kicks_at_once(imap: ImapDeployment) -> None:
    imap.add_account("held@example.test")
    with imap.imap_tls() as m:
        m.login("held@example.test", PASSWORD)
        imap.directory.set_state("held@example.test", AccountState.SUSPENDED, by="test", reason="security hold")
        assert _wait_kicked(m, KICK_LIMIT) < imap.settings.imap.kick_interval_seconds  # before any sweep
    with imap.imap_tls() as again, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        again.login("held@example.test", PASSWORD)
    imap.directory.set_state("held@example.test", AccountState.ACTIVE, by="test", reason="cleared")
    with imap.imap_tls() as back:
        assert back.login("held@example.test", PASSWORD)[0] == "OK"
