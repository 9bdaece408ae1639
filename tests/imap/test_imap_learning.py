"""Users teach the classifier by moving mail: into Junk is spam, out of Junk is ham (IMAPSieve → our
learning socket), with the guards of the report addresses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imap_kit import PASSWORD, ImapDeployment, wait_for

SPAMMY = b"""From: Deals Desk <offers@bargain-outlet.example>
To: mover@example.test
Subject: Exclusive garden furniture clearance for you
Message-ID: <teak-1@bargain-outlet.example>
Date: Tue, 01 Dec 2026 10:00:00 +0000
Content-Type: text/plain

Dear reader, our teak garden furniture clearance ends Friday. Teak benches, teak loungers and
parasols at warehouse prices, reserved for our newsletter readers. Order the teak set today.
"""
NEAR_COPY = SPAMMY.replace(b"Friday", b"Sunday").replace(b"benches", b"tables").replace(b"teak-1", b"teak-2")


def _learned(imap: ImapDeployment) -> list[dict[str, Any]]:
    log = imap.settings.path(imap.settings.spam.classifier.model_path).with_name("learned.log")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _scan(imap: ImapDeployment, message: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "near.eml"
    path.write_bytes(message)
    out = imap.mb("scan", str(path), "--json", "--from", "offers@bargain-outlet.example", "--ip", "192.0.2.77",
                  "--helo", "mx.bargain-outlet.example", "--rcpt", "mover@example.test").stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _symbols(verdict: dict[str, Any]) -> set[str]:
    return {s["name"] for s in verdict["symbols"]}


def test_moving_a_message_into_junk_changes_the_next_verdict_on_a_near_copy(imap: ImapDeployment,
                                                                             tmp_path: Path) -> None:
    imap.add_account("mover@example.test")
    before = _scan(imap, NEAR_COPY, tmp_path)
    assert not {"BAYES_SPAM", "BAYES_SPAM_HIGH"} & _symbols(before)
    imap.deliver("mover@example.test", SPAMMY)
    with imap.imap_tls() as m:
        m.login("mover@example.test", PASSWORD)
        m.select("INBOX")
        typ, _ = m.uid("MOVE", "1:*", "Junk")  # RFC 6851
        assert typ == "OK"
    event = wait_for(lambda: next((e for e in _learned(imap) if e["source"] == "junk-move"), None), 60,
                     what="the Junk move learned")
    assert event["label"] == "spam" and "mover@example.test" in event["note"]
    after = _scan(imap, NEAR_COPY, tmp_path)
    assert "BAYES_SPAM" in _symbols(after)
    assert after["score"] > before["score"]


def test_moving_out_of_junk_teaches_ham_but_not_into_trash(imap: ImapDeployment) -> None:
    imap.add_account("rescuer@example.test")
    imap.deliver("rescuer@example.test", SPAMMY.replace(b"teak-1", b"rescue-1"), junk=True)
    imap.deliver("rescuer@example.test", SPAMMY.replace(b"teak-1", b"rescue-2"), junk=True)
    seen = len(_learned(imap))
    with imap.imap_tls() as m:
        m.login("rescuer@example.test", PASSWORD)
        m.select("Junk")
        assert m.uid("MOVE", "1", "Trash")[0] == "OK"  # deleting spam teaches nothing
        assert m.uid("MOVE", "2", "INBOX")[0] == "OK"  # rescuing a message teaches ham
    wait_for(lambda: any(e["source"] == "junk-rescue" for e in _learned(imap)[seen:]), 60, what="ham learned")
    events = [e for e in _learned(imap)[seen:] if "rescuer@example.test" in e["note"]]
    assert [e["label"] for e in events] == ["ham"]


def test_learning_is_rate_limited_per_user(imap: ImapDeployment) -> None:
    assert imap.service is not None and imap.service.learn is not None
    learner = imap.service.learn
    learner.configure(2)  # as imap.learn.max_per_hour = 2 would after a reload
    try:
        imap.add_account("eager@example.test")
        for i in range(4):
            imap.deliver("eager@example.test", SPAMMY.replace(b"teak-1", f"eager-{i}".encode()))
        refused = learner.refused
        with imap.imap_tls() as m:
            m.login("eager@example.test", PASSWORD)
            m.select("INBOX")
            for uid in range(1, 5):
                assert m.uid("MOVE", str(uid), "Junk")[0] == "OK"  # the moves themselves always work
        wait_for(lambda: learner.refused >= refused + 2, 60, what="moves over the limit refused")
        wait_for(lambda: len([e for e in _learned(imap) if "eager@example.test" in e["note"]]) == 2, 60,
                 what="two moves learned")
    finally:
        learner.configure(imap.settings.imap.learn.max_per_hour)
