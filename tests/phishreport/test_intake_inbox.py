"""Report mails kept on disk before they are handled (and handled again after a crash), and the user's INBOX
as the portal lists it."""

from __future__ import annotations

import asyncio
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from phishkit import ALICE, BOB, World, phish

from mailbastion.core.address import parse_address
from mailbastion.phish_report.inbox import InboxReader
from mailbastion.phish_report.intake import ReportIntake


def forwarded(inner: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = ALICE
    msg["To"] = "report-phish@example.org"
    msg["Subject"] = "Fwd: suspicious"
    msg.set_content("This looks like phishing.")
    msg.add_attachment(inner, maintype="message", subtype="rfc822")
    return msg.as_bytes()


def intake(w: World) -> ReportIntake:
    return ReportIntake(w.reports, folder=w.root / "phish-reports", local_part="report-phish",
                        is_local_domain=w.mailboxes.is_local_domain)


def test_the_report_address_is_ours_only(tmp_path: Path) -> None:
    i = intake(World(tmp_path))
    assert i.is_report([parse_address("bob@example.org"), parse_address("Report-Phish@example.org")])
    assert not i.is_report([parse_address("report-phish@elsewhere.example")])
    assert not i.is_report([parse_address("report-spam@example.org")])


async def test_a_kept_report_is_handled_and_removed(tmp_path: Path) -> None:
    w = World(tmp_path)
    bob_copy = w.deliver(BOB, phish())
    i = intake(w)
    i.keep(ALICE, forwarded(phish()))
    assert len(list(i.pending.glob("*.json"))) == 1
    assert await i.drain() == 1
    assert not bob_copy.exists() and list(i.pending.iterdir()) == []
    assert w.events("phish.report")[0].details["how"] == "attachment"


async def test_a_report_a_crash_left_half_handled_is_handled_at_start(tmp_path: Path) -> None:
    w = World(tmp_path)
    bob_copy = w.deliver(BOB, phish())
    i = intake(w)
    report_id = i.keep(ALICE, forwarded(phish()))
    record = i.pending / f"{report_id}.json"
    os.rename(record, record.with_name(record.name + ".work"))  # claimed, then the process died
    i2 = intake(w)
    await i2.start()
    deadline = time.monotonic() + 30
    while any(i2.pending.iterdir()) and time.monotonic() < deadline:  # removed once handled
        await asyncio.sleep(0.05)
    await i2.stop()
    assert not bob_copy.exists() and list(i2.pending.iterdir()) == []


def test_inbox_pages_newest_first_and_finds_only_the_owners_messages(tmp_path: Path) -> None:
    w = World(tmp_path)
    paths = []
    for n in range(5):
        paths.append(w.deliver(BOB, phish(subject=f"message {n} <b>bold</b>", msgid=f"<{n}@x>")))
        os.utime(paths[-1], (1_700_000_000 + n, 1_700_000_000 + n))
    reader = InboxReader(w.maildir)
    bob = parse_address(BOB)
    first = reader.page(bob, offset=0, limit=2)
    assert first.total == 5 and first.next_offset == 2
    assert [e.subject for e in first.entries] == ["message 4 <b>bold</b>", "message 3 <b>bold</b>"]
    last = reader.page(bob, offset=4, limit=2)
    assert last.next_offset is None and [e.subject for e in last.entries] == ["message 0 <b>bold</b>"]
    key = first.entries[0].key
    # a client marked it read: moved to cur/ with flags; the key still finds it
    os.rename(paths[4], paths[4].parent.parent / "cur" / (paths[4].name + ":2,S"))
    assert b"message 4" in reader.read(bob, key)
    with pytest.raises(KeyError):
        reader.read(parse_address(ALICE), key)  # not in Alice's INBOX
    for bad in ("../../alice/new/x", "..", "a/b", ""):
        with pytest.raises(KeyError):
            reader.read(bob, bad)
