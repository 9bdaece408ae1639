"""The quarantine store (durable, service-only permissions) and audited release/delete through the real
spool and the real audit log."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, Forced, ScoredSymbol, Verdict
from mailbastion.quarantine import QuarantineRelease, QuarantineStore, ReleaseRefused, UnknownQuarantineId
from mailbastion.testing.clamd import EICAR

ENVELOPE = Envelope(Address("sender", "example.net"), (Address("alice", "example.org"), Address("bob", "example.org")))
MESSAGE = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: Invoice 42\r\n\r\nhello\r\n"
MALWARE = Verdict(Action.REJECT, 20.0, (ScoredSymbol("AV_CLAMAV_VIRUS", "Eicar-Test-Signature@1.2", 20.0, "antivirus"),),
                  Forced(Action.REJECT, replies.VIRUS_FOUND, "antivirus"), replies.VIRUS_FOUND)
MACRO = Verdict(Action.QUARANTINE, 6.0, (ScoredSymbol("AV_OFFICE_MACRO", "attachments:office.vba_macro@1.2 a.doc", 6.0,
                                                      "antivirus"),), Forced(Action.QUARANTINE, replies.OK, "antivirus"))


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    def record(self, action: str, **kw: object) -> int:
        self.records.append((action, kw))
        return len(self.records)


class FakeSpool:
    def __init__(self) -> None:
        self.committed: list[tuple[Envelope, bytes]] = []

    async def commit(self, envelope: Envelope, message: bytes, **kw: object) -> str:
        self.committed.append((envelope, message))
        return f"Q{len(self.committed)}"


async def test_put_is_durable_and_private(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    qid = await store.put(ENVELOPE, MESSAGE, MACRO, client="192.0.2.1")
    assert stat.S_IMODE((tmp_path / "q").stat().st_mode) == 0o700
    for ext in ("eml", "json"):
        assert stat.S_IMODE((tmp_path / "q" / "msg" / f"{qid}.{ext}").stat().st_mode) == 0o600
    assert list((tmp_path / "q" / "tmp").iterdir()) == []
    assert store.message(qid) == MESSAGE
    entry = store.get(qid)
    assert entry.subject == "Invoice 42" and entry.recipients == ("alice@example.org", "bob@example.org")
    assert entry.action == "quarantine" and entry.forced_by == "antivirus" and not entry.is_malware
    assert entry.engines == ("attachments",)
    assert entry.symbols[0]["name"] == "AV_OFFICE_MACRO"
    assert [e.id for e in store.list()] == [qid]


async def test_malware_release_needs_force_and_every_release_is_audited(tmp_path: Path) -> None:
    store, audit, spool = QuarantineStore(tmp_path / "q"), FakeAudit(), FakeSpool()
    qid = await store.put(ENVELOPE, MESSAGE + EICAR, MALWARE, client="192.0.2.1")
    assert store.get(qid).is_malware and store.get(qid).engines == ("clamav",)
    api = QuarantineRelease(store, spool, audit)
    with pytest.raises(ReleaseRefused):
        await api.release(qid, actor="admin")
    assert audit.records == [] and spool.committed == []
    queue_id = await api.release(qid, actor="admin", reason="researcher asked", force=True)
    assert queue_id == "Q1" and spool.committed[0] == (ENVELOPE, MESSAGE + EICAR)
    action, kw = audit.records[0]
    assert action == "quarantine.release" and kw["actor"] == "admin" and kw["subject"] == f"quarantine:{qid}"
    assert kw["details"]["forced"] is True  # type: ignore[index]
    with pytest.raises(UnknownQuarantineId):
        store.get(qid)


async def test_delete_is_audited(tmp_path: Path) -> None:
    store, audit = QuarantineStore(tmp_path / "q"), FakeAudit()
    qid = await store.put(ENVELOPE, MESSAGE, MACRO, client="c")
    await QuarantineRelease(store, None, audit).delete(qid, actor="admin", reason="phish")
    assert audit.records[0][0] == "quarantine.delete" and store.list() == []


def test_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    with pytest.raises(UnknownQuarantineId):
        store.get("../../etc/passwd")


async def test_release_through_real_spool_and_audit_log(tmp_path: Path) -> None:
    from mailbastion.audit import AuditLog
    from mailbastion.spool.writer import Spool

    store = QuarantineStore(tmp_path / "q")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    qid = await store.put(ENVELOPE, MESSAGE, MACRO, client="192.0.2.1")
    queue_id = await QuarantineRelease(store, spool, audit).release(qid, actor="admin@example.org", reason="ok")
    assert spool.layout.find(queue_id) is not None
    events = audit.events(subject=f"quarantine:{qid}")
    assert events[0].action == "quarantine.release" and events[0].actor == "admin@example.org"
    assert audit.verify().ok


def _directory(config: Path, *accounts: str) -> None:
    """The directory (and so the recipient map) of the deployment at `config`, with these accounts."""
    from mailbastion.config import load_settings
    from mailbastion.directory import Directory

    directory = Directory.from_settings(load_settings(config))
    for domain in sorted({a.split("@")[1] for a in accounts}):
        directory.add_domain(domain, by="test")
    for account in accounts:
        directory.add_account(account, None, by="test")


def test_cli_list_show_release_delete(tmp_path: Path) -> None:
    import asyncio

    from mailbastion.cli import main_group
    from mailbastion.audit import AuditLog

    config = tmp_path / "mb.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[antivirus]\nworkstation_engine = "microsoft"\n')
    _directory(config, "alice@example.org", "bob@example.org")
    store = QuarantineStore(tmp_path / "quarantine")
    bad = asyncio.run(store.put(ENVELOPE, MESSAGE + EICAR, MALWARE, client="c"))
    ok = asyncio.run(store.put(ENVELOPE, MESSAGE, MACRO, client="c"))
    runner = CliRunner()
    out = runner.invoke(main_group, ["quarantine", "list", "-c", str(config)])
    assert out.exit_code == 0 and bad in out.output and "MALWARE" in out.output
    out = runner.invoke(main_group, ["quarantine", "show", bad, "-c", str(config)])
    assert "AV_CLAMAV_VIRUS(Eicar-Test-Signature@1.2)" in out.output and "--force" in out.output
    out = runner.invoke(main_group, ["quarantine", "release", bad, "-c", str(config)])
    assert out.exit_code == 1 and "--force" in out.output
    out = runner.invoke(main_group, ["quarantine", "release", ok, "-c", str(config), "--actor", "admin"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main_group, ["quarantine", "delete", bad, "-c", str(config), "--reason", "malware"])
    assert out.exit_code == 0, out.output
    assert store.list() == []
    from mailbastion.config import load_settings

    audit = AuditLog(load_settings(config).audit_url)
    assert [e.action for e in audit.events()][:2] == ["quarantine.delete", "quarantine.release"]


def test_cli_purge_deletes_expired_with_audit(tmp_path: Path) -> None:
    import asyncio
    import os
    import time

    from mailbastion.cli import main_group

    config = tmp_path / "mb.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[antivirus.quarantine]\nretention_days = 1\n')
    store = QuarantineStore(tmp_path / "quarantine")
    old = asyncio.run(store.put(ENVELOPE, MESSAGE, MACRO, client="c"))
    new = asyncio.run(store.put(ENVELOPE, MESSAGE, MACRO, client="c"))
    past = time.time() - 3 * 86400
    os.utime(tmp_path / "quarantine" / "msg" / f"{old}.json", (past, past))
    out = CliRunner().invoke(main_group, ["quarantine", "purge", "-c", str(config)])
    assert out.exit_code == 0 and "purged 1" in out.output, out.output
    assert [e.id for e in store.list()] == [new]
