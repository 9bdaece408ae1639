"""One report through the whole loop, against real Maildirs, a real quarantine and index, a real audit log
and a real model store: what is moved, what stays, what is learned, audited and mailed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from phishkit import ALICE, BOB, CAROL, DAVE, PHISHER, World, ordinary, phish

from mailbastion.core.address import parse_address
from mailbastion.core.verdict import Folder
from mailbastion.phish_report.observers import Handled, SimulationObserver
from mailbastion.phish_report.service import AUDIT_SUBJECT, PhishReport
from mailbastion.quarantine.index import QuarantineIndex
from mailbastion.spam.features import extract_bytes
from mailbastion.spam.tokens import tokens


def report(raw: bytes, reporter: str = ALICE) -> PhishReport:
    return PhishReport.new(parse_address(reporter), [raw], how="attachment")


async def test_a_report_moves_the_copies_of_other_users_and_nothing_else(tmp_path: Path) -> None:
    w = World(tmp_path)
    reported = phish()
    w.deliver(ALICE, reported)
    bob_copy = w.deliver(BOB, reported)
    carol_copy = w.deliver(CAROL, reported, folder=Folder.JUNK)
    same_subject = ordinary("Your mailbox is full: verify your account today", sender="helpdesk@example.org",
                            msgid="<real-notice@example.org>", body="Please delete old mail.\n")
    kept = w.deliver(DAVE, same_subject, sender="helpdesk@example.org")
    unrelated = w.deliver(BOB, ordinary("Autumn catalogue"), sender="newsletter@shop.example")
    tok = tokens(extract_bytes(reported))
    before = w.model.model().probability(tok)

    outcome = await w.reports.process(report(reported))

    assert sorted(m.mailbox for m in outcome.moved) == [BOB, CAROL]
    assert not bob_copy.exists() and not carol_copy.exists()
    assert kept.exists() and unrelated.exists()
    assert len(list(w.maildir.mailbox_dir(parse_address(ALICE)).joinpath("new").iterdir())) == 1  # the reporter's own
    # in the quarantine, without the MDA's own fields, and found through the index
    for moved in outcome.moved:
        entry = w.quarantine.get(moved.quarantine_id)
        assert entry.recipients == (moved.mailbox,) and entry.sender == PHISHER
        assert entry.forced_by == "phish_report" and any("PHISH_REPORTED" in r for r in entry.reasons)
        held = w.quarantine.message(moved.quarantine_id)
        assert b"Delivered-To" not in held and b"Return-Path" not in held and b"\r\n" in held
    index = QuarantineIndex(w.quarantine)
    index.sync()
    assert [e.id for e in index.search(recipient=BOB).entries] == [m.quarantine_id for m in outcome.moved
                                                                   if m.mailbox == BOB]
    assert w.index_syncs == 1
    # learned as spam
    assert outcome.learned == 1 and w.model.model().probability(tok) > before
    assert json.loads(w.learned()[-1])["source"] == "phish-report"
    # one audit record per copy and one for the report
    copies = w.events("phish.copy_quarantined")
    assert sorted(e.subject for e in copies) == [f"mailbox:{BOB}", f"mailbox:{CAROL}"]
    assert {e.details["quarantine_id"] for e in copies} == {m.quarantine_id for m in outcome.moved}
    [rep] = w.events("phish.report")
    assert rep.subject == AUDIT_SUBJECT and rep.actor == ALICE and rep.details["learned"] == 1
    assert len(rep.details["moved"]) == 2
    # the reporter is thanked, the two others told
    [ack] = w.spool.to(ALICE)
    assert "Thank you for reporting" in ack and "2 copy/copies" in ack
    assert len(w.spool.to(BOB)) == 1 and len(w.spool.to(CAROL)) == 1
    assert all(e.sender is None for e, _ in w.spool.commits)  # nothing can bounce back into the loop
    assert f"/my/quarantine/{outcome.moved[0].quarantine_id}" in w.spool.to(outcome.moved[0].mailbox)[0]


async def test_a_report_by_someone_not_ours_does_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    bob_copy = w.deliver(BOB, phish())
    outcome = await w.reports.process(report(phish(), reporter="mallory@elsewhere.example"))
    assert outcome.refused and not outcome.moved and bob_copy.exists()
    assert w.learned() == [] and w.spool.commits == [] and w.events("phish.report") == []


async def test_a_handled_report_is_acknowledged_but_neither_learned_nor_swept(tmp_path: Path) -> None:
    seen: list[tuple[object, str]] = []
    simulation = SimulationObserver(lambda raw: "campaign-3" if b"batch-7731" in raw else None,
                                    lambda hit, reporter: seen.append((hit, reporter)))
    w = World(tmp_path, observers=[simulation])
    bob_copy = w.deliver(BOB, phish())
    outcome = await w.reports.process(report(phish()))
    assert outcome.handled == (Handled("training", simulation.note),)
    assert seen == [("campaign-3", ALICE)]
    assert outcome.moved == () and outcome.learned == 0 and bob_copy.exists() and w.learned() == []
    [ack] = w.spool.to(ALICE)
    assert "phishing exercise" in ack and "copy/copies" not in ack
    assert w.events("phish.report")[0].details["handled_by"] == ["training"]


async def test_an_observer_that_fails_does_not_let_a_real_phish_escape(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def observe(self, message: bytes, reporter: str) -> Handled | None:
            raise RuntimeError("training database unreadable")

    w = World(tmp_path, observers=[Broken()])
    bob_copy = w.deliver(BOB, phish())
    outcome = await w.reports.process(report(phish()))
    assert [m.mailbox for m in outcome.moved] == [BOB] and not bob_copy.exists()


async def test_at_most_max_copies_are_moved_and_old_mail_is_not_searched(tmp_path: Path) -> None:
    w = World(tmp_path, max_copies=1, window_days=3)
    old = w.deliver(BOB, phish())
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    recent = [w.deliver(CAROL, phish()), w.deliver(DAVE, phish())]
    outcome = await w.reports.process(report(phish()))
    assert len(outcome.moved) == 1 and outcome.matched == 2 and outcome.truncated
    assert old.exists() and sum(p.exists() for p in recent) == 1
    assert "More copies matched" in w.spool.to(ALICE)[0]


async def test_a_report_without_a_message_inside_is_acknowledged_with_advice(tmp_path: Path) -> None:
    w = World(tmp_path)
    outcome = await w.reports.process(PhishReport.new(parse_address(ALICE), [], how="none"))
    assert outcome.nothing_found and not outcome.moved
    assert "as an attachment" in w.spool.to(ALICE)[0]
