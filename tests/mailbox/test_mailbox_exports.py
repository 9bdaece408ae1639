"""The public surface of the directory and mailbox packages is explicit (httpx test_exported_members)."""

from __future__ import annotations

import subprocess
import sys

from mailbastion import directory, mailbox


def test_directory_exports() -> None:
    assert set(directory.__all__) == {
        "AccountDisabled", "AccountExists", "AccountInfo", "AccountState", "AccountUnknown", "AliasExists",
        "AliasUnknown", "AppPasswordExists", "AppPasswordInfo", "AppPasswordUnknown", "AuditAction", "Directory",
        "DirectoryCache", "DirectoryError", "DomainExists", "DomainUnknown", "Lockout", "LoginGuard", "LoginOutcome",
        "LoginResult", "LoginThrottle", "NewAppPassword", "PasswordTooWeak", "RecipientMap", "make_engine", "migrate",
    }
    for name in directory.__all__:
        assert getattr(directory, name) is not None


def test_mailbox_exports() -> None:
    assert set(mailbox.__all__) == {"DeliveredJournal", "LmtpHandler", "MailboxDirectory", "MaildirStore", "MdaServer",
                                   "QuotaExceeded"}
    for name in mailbox.__all__:
        assert getattr(mailbox, name) is not None


def test_audit_log_importable_first() -> None:
    # The directory imports the audit log (never the other way): importing the audit log first must work too.
    code = "import mailbastion.audit.log; import mailbastion.directory; mailbastion.directory.Directory"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gateway_import_of_recipient_map_loads_no_credential_code() -> None:
    code = ("import sys; from mailbastion.directory.recipient_map import RecipientMap; "
            "bad = [m for m in ('argon2', 'sqlalchemy', 'alembic', 'mailbastion.directory.store', "
            "'mailbastion.directory.passwords', 'mailbastion.mailbox') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
