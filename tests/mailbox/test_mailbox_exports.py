"""The public surface of the directory and mailbox packages is explicit (httpx test_exported_members)."""

from __future__ import annotations

from mailbastion import directory, mailbox


def test_directory_exports() -> None:
    assert set(directory.__all__) == {
        "AccountDisabled", "AccountExists", "AccountInfo", "AccountState", "AccountUnknown", "AliasExists",
        "AliasUnknown", "AuditAction", "Directory", "DirectoryError", "DomainExists", "DomainUnknown",
        "PasswordTooWeak", "RecipientMap", "make_engine", "migrate",
    }
    for name in directory.__all__:
        assert getattr(directory, name) is not None


def test_mailbox_exports() -> None:
    assert set(mailbox.__all__) == {"LmtpHandler", "MailboxDirectory", "MaildirStore", "MdaServer", "QuotaExceeded"}
    for name in mailbox.__all__:
        assert getattr(mailbox, name) is not None


def test_audit_log_importable_first() -> None:
    # lifecycle.audit_log and directory import each other's modules; either order must work.
    import subprocess
    import sys

    code = "import mailbastion.lifecycle.audit_log; import mailbastion.directory"  # the order that could fail
    subprocess.run([sys.executable, "-c", code], check=True)
