"""Queue records, queue files, the retry schedule and the layout: values and atomic moves."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope, RecipientDsn
from mailbastion.core.outcome import Handoff
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Action, Folder, ScoredSymbol, Verdict
from mailbastion.spool import queue_file
from mailbastion.spool.layout import QueueState, SpoolLayout, is_queue_id, new_queue_id
from mailbastion.spool.record import QueueRecord, RecipientState, RecordError
from mailbastion.spool.schedule import RetrySchedule


def _envelope(*rcpts: str, sender: str | None = "alice@example.org") -> Envelope:
    return Envelope(sender=parse_address(sender) if sender else None,
                    recipients=tuple(parse_address(r) for r in rcpts), helo="client.example.org")


def test_record_round_trips_through_json_with_reply_fields_and_dsn_parameters() -> None:
    verdict = Verdict(Action.JUNK, 7.5, (ScoredSymbol("R_SPF_FAIL", "example.org", 3.0, "spf"),))
    env = replace(_envelope(), dsn_ret="HDRS", dsn_envid="QQ314159", requiretls=True)
    env = env.with_recipient(parse_address("b@example.net"), RecipientDsn(("SUCCESS", "FAILURE"), "rfc822;b@x.example"))
    env = env.with_recipient(parse_address("c@example.net"))
    rec = QueueRecord.new("0123456789ABCDEF01", env, arrival=1000.0, client="192.0.2.7", size=42, verdict=verdict,
                          hops=4)
    rec = rec.with_recipients({"c@example.net": replace(
        rec.recipient("c@example.net"), status=RecipientState.DELIVERED, reply=Reply(250, "2.0.0", "Ok\nqueued"),
        remote="mx.example.net", handoff=Handoff.RELAYED, attempts=1)})
    again = QueueRecord.from_json(rec.to_json())
    assert again == rec
    # The same bytes as dataclasses.asdict (what records were written with before to_json did without it)
    from dataclasses import asdict
    old = {"version": 2, **asdict(rec)}
    old["mail_params"] = [list(p) for p in rec.mail_params]
    assert rec.to_json() == json.dumps(old, separators=(",", ":")).encode()
    assert again.verdict is not None and again.verdict.action == "junk"
    assert again.verdict.symbols == ("R_SPF_FAIL(example.org)=3",)
    assert [r.status for r in again.recipients] == [RecipientState.PENDING, RecipientState.DELIVERED]
    assert again.folder is Folder.JUNK and again.hops == 4 and again.sender == "alice@example.org"
    b, c = again.recipients
    assert (b.notify, b.orcpt) == (("SUCCESS", "FAILURE"), "rfc822;b@x.example")
    assert b.wants("SUCCESS") and not b.wants("DELAY") and c.wants("FAILURE") and not c.wants("SUCCESS")
    assert (again.dsn_ret, again.dsn_envid, again.requiretls) == ("HDRS", "QQ314159", True)
    assert c.reply == Reply(250, "2.0.0", "Ok\nqueued") and c.handoff is Handoff.RELAYED
    assert c.reply_line == "250 2.0.0 Ok queued"  # one line, fields kept apart in the record
    raw = json.loads(rec.to_json())
    assert raw["recipients"][1]["reply"] == {"code": 250, "status": "2.0.0", "text": "Ok\nqueued"}


def test_folder_comes_from_the_verdict() -> None:
    env = _envelope("b@example.net")
    for action, folder in ((Action.JUNK, Folder.JUNK), (Action.ADD_HEADER, Folder.INBOX)):
        rec = QueueRecord.new("0123456789ABCDEF01", env, arrival=0, client="c", size=1,
                              verdict=Verdict(action, 1.0, ()))
        assert rec.folder is folder
    assert QueueRecord.new("0123456789ABCDEF01", env, arrival=0, client="c", size=1).folder is Folder.INBOX


def test_version_1_records_are_still_read() -> None:
    v1 = {"version": 1, "queue_id": "0123456789ABCDEF01", "arrival": 5.0, "client": "c", "sender": "a@example.org",
          "recipients": [
              {"address": "b@example.net", "status": "deferred", "attempts": 2, "last_error": "451 4.3.0 later",
               "next_retry": 99.0, "response": "", "updated": 9.0, "notified": False},
              {"address": "c@example.net", "status": "delivered", "attempts": 1, "last_error": "",
               "next_retry": None, "response": "250 2.0.0 ok", "updated": 9.0, "notified": False}],
          "size": 3, "junk": True, "hops": 1, "helo": "h", "smtputf8": False, "body_8bitmime": False,
          "verdict": None, "mail_params": []}
    rec = QueueRecord.from_json(json.dumps(v1).encode())
    assert rec.folder is Folder.JUNK and rec.next_retry == 99.0
    b, c = rec.recipients
    # the old text is kept whole; no status code is read back out of it
    assert b.reply == Reply(451, "", "451 4.3.0 later") and b.status is RecipientState.DEFERRED
    assert c.reply == Reply(250, "", "250 2.0.0 ok") and c.handoff is Handoff.DELIVERED


def test_duplicate_recipients_get_one_status_and_null_sender_is_empty() -> None:
    rec = QueueRecord.new("0123456789ABCDEF01", _envelope("b@example.net", "b@example.net", sender=None),
                          arrival=1.0, client="dsn", size=1)
    assert [r.address for r in rec.recipients] == ["b@example.net"]
    assert rec.is_null_sender


@pytest.mark.parametrize("raw", [b"", b"{}", b"not json", b'{"version": 99}',
                                 b'{"version": 1, "recipients": [], "verdict": null, "queue_id": "x"}'])
def test_malformed_records_raise_record_error(raw: bytes) -> None:
    with pytest.raises(RecordError):
        QueueRecord.from_json(raw)


def test_backoff_doubles_up_to_the_cap_and_lifetime_expires() -> None:
    s = RetrySchedule(min_backoff=300, max_backoff=4000, max_lifetime=5 * 86400, bounce_lifetime=86400)
    assert [s.backoff(n) for n in range(1, 7)] == [300, 600, 1200, 2400, 4000, 4000]
    assert s.backoff(10_000) == 4000
    assert s.next_retry(2, now=1000.0) == 1600.0
    assert not s.is_expired(0.0, 5 * 86400 - 1, null_sender=False)
    assert s.is_expired(0.0, 5 * 86400, null_sender=False)
    assert s.is_expired(0.0, 86400, null_sender=True)  # bounces give up sooner


def test_schedule_defaults_come_from_the_spool_section() -> None:
    from mailbastion.config.sections.core import SpoolSection

    s = RetrySchedule.from_settings(SpoolSection(min_backoff_seconds=10, max_backoff_seconds=80))
    assert (s.min_backoff, s.max_backoff, s.max_lifetime) == (10, 80, 5 * 86400)


def test_queue_ids_are_unique_sortable_and_safe_path_names() -> None:
    ids = [new_queue_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(is_queue_id(i) for i in ids)
    assert not is_queue_id("../etc") and not is_queue_id("")


def test_link_backoff_is_seconds_not_minutes() -> None:
    s = RetrySchedule()
    assert [s.link_backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert s.link_backoff(10_000) == 60
    with pytest.raises(ValueError):
        RetrySchedule(link_min=0)


def _record(qid: str, message: bytes) -> QueueRecord:
    return QueueRecord.new(qid, _envelope("b@example.net"), arrival=1.0, client="c", size=len(message))


def test_layout_moves_one_file_per_entry_atomically_and_refuses_bad_ids(tmp_path: Path) -> None:
    layout = SpoolLayout(tmp_path / "spool").ensure()
    qid = new_queue_id()
    layout.create(_record(qid, b"body"), b"body")
    assert layout.path(QueueState.INCOMING, qid).is_file() and layout.ids(QueueState.INCOMING) == [qid]
    assert layout.read(QueueState.INCOMING, qid) == (_record(qid, b"body"), b"body")
    layout.move(qid, QueueState.INCOMING, QueueState.ACTIVE)
    assert layout.find(qid) is QueueState.ACTIVE
    with pytest.raises(FileNotFoundError):  # the loser of a race
        layout.move(qid, QueueState.INCOMING, QueueState.DEFERRED)
    changed = replace(_record(qid, b"body"), hops=7)
    layout.rewrite(QueueState.ACTIVE, changed, b"body")
    assert layout.load(QueueState.ACTIVE, qid).hops == 7 and layout.message(QueueState.ACTIVE, qid) == b"body"
    layout.remove(qid, QueueState.ACTIVE)
    assert layout.find(qid) is None and list(layout.tmp.iterdir()) == []
    with pytest.raises(ValueError):
        layout.path(QueueState.INCOMING, "../../x")


def test_queue_file_round_trip_and_damage_is_a_record_error(tmp_path: Path) -> None:
    message = b"Subject: x\r\n\r\n" + bytes(range(256)) * 300  # any bytes, larger than one first read
    rec = _record("0123456789ABCDEF01", message)
    data = queue_file.encode(rec, message)
    assert data.startswith(b"MBQ2 ")
    path = tmp_path / "0123456789ABCDEF01"
    path.write_bytes(data)
    assert queue_file.read(path) == (rec, message)
    assert queue_file.read_record(path) == rec
    assert queue_file.read_headers(path) == b"Subject: x\r\n"
    assert queue_file.message_size(path) == len(message)
    for bad in (data[:-1], data[:20], b"MBQ2 x\n{}", b"garbage", data.replace(b"MBQ2 ", b"MBQ9 ", 1),
                data[:5] + b"99999" + data[5:]):
        path.write_bytes(bad)
        with pytest.raises(RecordError):
            queue_file.read(path)


def test_clear_tmp_removes_every_leftover(tmp_path: Path) -> None:
    layout = SpoolLayout(tmp_path / "spool").ensure()
    (layout.tmp / "0123456789ABCDEF01").write_bytes(b"half a queue file")
    (layout.tmp / "old-layout-entry").mkdir()
    (layout.tmp / "old-layout-entry" / "message.eml").write_bytes(b"x")
    assert layout.clear_tmp() == 2 and list(layout.tmp.iterdir()) == []
