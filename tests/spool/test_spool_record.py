"""Queue records, the retry schedule and the directory layout: values and atomic moves."""

from __future__ import annotations

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, ScoredSymbol, Verdict
from mailbastion.spool.layout import QueueState, SpoolLayout, is_queue_id, new_queue_id
from mailbastion.spool.record import QueueRecord, RecipientState, RecordError
from mailbastion.spool.schedule import RetrySchedule


def _envelope(*rcpts: str, sender: str | None = "alice@example.org") -> Envelope:
    return Envelope(sender=parse_address(sender) if sender else None,
                    recipients=tuple(parse_address(r) for r in rcpts), helo="client.example.org")


def test_record_round_trips_through_json() -> None:
    verdict = Verdict(Action.JUNK, 7.5, (ScoredSymbol("R_SPF_FAIL", "example.org", 3.0, "spf"),))
    rec = QueueRecord.new("0123456789ABCDEF01", _envelope("b@example.net", "c@example.net"), arrival=1000.0,
                          client="192.0.2.7", size=42, verdict=verdict, junk=True, hops=4)
    again = QueueRecord.from_json(rec.to_json())
    assert again == rec
    assert again.verdict is not None and again.verdict.action == "junk"
    assert again.verdict.symbols == ("R_SPF_FAIL(example.org)=3",)
    assert [r.status for r in again.recipients] == [RecipientState.PENDING] * 2
    assert again.junk and again.hops == 4 and again.sender == "alice@example.org"


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


def test_layout_moves_entries_atomically_and_refuses_bad_ids(tmp_path) -> None:  # type: ignore[no-untyped-def]
    layout = SpoolLayout(tmp_path / "spool").ensure()
    qid = new_queue_id()
    layout.entry(QueueState.INCOMING, qid).mkdir()
    layout.move(qid, QueueState.INCOMING, QueueState.ACTIVE)
    assert layout.find(qid) is QueueState.ACTIVE
    with pytest.raises(FileNotFoundError):  # the loser of a race
        layout.move(qid, QueueState.INCOMING, QueueState.DEFERRED)
    layout.remove(qid, QueueState.ACTIVE)
    assert layout.find(qid) is None
    with pytest.raises(ValueError):
        layout.entry(QueueState.INCOMING, "../../x")
