"""A gateway host writes quarantine-release audits into the audit database and reads the chain back,
without ever opening (or creating) the directory database or loading directory code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mailbastion.audit import AuditLog
from mailbastion.cli import main_group
from mailbastion.config import load_settings
from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, Forced, ScoredSymbol, Verdict
from mailbastion.directory.recipient_map import write_map
from mailbastion.quarantine import QuarantineStore

ENVELOPE = Envelope(Address("sender", "example.net"), (Address("alice", "example.org"),))
MESSAGE = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: Invoice 42\r\n\r\nhello\r\n"
HELD = Verdict(Action.QUARANTINE, 6.0, (ScoredSymbol("AV_OFFICE_MACRO", "a.doc", 6.0, "antivirus"),),
               Forced(Action.QUARANTINE, replies.OK, "antivirus"))


def test_quarantine_release_is_audited_in_the_audit_database(tmp_path: Path) -> None:
    config = tmp_path / "mailbastion.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[antivirus]\nworkstation_engine = "microsoft"\n')
    # The map the inside pushes (addresses only): the release checks that the recipient can receive.
    write_map(tmp_path / "recipient-map.json", domains=["example.org"], addresses=["alice@example.org"], aliases={})
    store = QuarantineStore(tmp_path / "quarantine")
    qid = asyncio.run(store.put(ENVELOPE, MESSAGE, HELD, client="192.0.2.1"))
    out = CliRunner().invoke(main_group, ["quarantine", "release", qid, "-c", str(config), "--actor", "admin",
                                          "--reason", "false positive"])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "directory.db").exists()
    (event,) = AuditLog(load_settings(config).audit_url).events()
    assert (event.action, event.actor, event.subject, event.reason) == (
        "quarantine.release", "admin", f"quarantine:{qid}", "false positive")

    # `audit-log` reads it back, loading neither directory nor password code.
    code = ("import sys; from mailbastion.cli import main_group\n"
            f"main_group.main(['audit-log', 'list', '--json', '-c', {str(config)!r}], standalone_mode=False)\n"
            f"main_group.main(['audit-log', 'verify', '-c', {str(config)!r}], standalone_mode=False)\n"
            "bad = [m for m in ('argon2', 'mailbastion.directory', 'mailbastion.mailbox') if m in sys.modules]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    listed, verdict = result.stdout.splitlines()
    assert json.loads(listed)["action"] == "quarantine.release" and verdict == "audit log intact: 1 records"
    assert not (tmp_path / "directory.db").exists()
