"""The acceptable use policy's store and standing against a real directory database (SQLite, migrated to
0008_aup), with a clock the test moves: versions are immutable and hashed, the version in effect follows
the effective dates, acceptances prove the text shown, the grace period counts from the later of the
effective date and the account's activation, the submission gate refuses only past it, notices go once."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbastion.aup.notices import AupNotifier
from mailbastion.aup.standing import AupGate, AupPolicy, State, counts, standing_of, standings
from mailbastion.aup.store import AupError, AupStore, text_hash
from mailbastion.aup.template import template_text
from mailbastion.core.envelope import Envelope
from mailbastion.directory.database import current_revision
from mailbastion.directory.models import AccountState
from mailbastion.directory.store import Directory
from mailbastion.portal.markdown import to_html

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(days=14)
TEXT = "# Policy\n\nUse mail for work.\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> tuple[AupStore, Clock]:
    clock = Clock()
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", clock=clock)
    d.add_domain("example.org", by="test")
    for who in ("alice", "bob"):
        d.add_account(f"{who}@example.org", "Correct-Horse-Battery-9", by="test")
    return AupStore(d), clock


def policy(enforce: str = "submission") -> AupPolicy:
    return AupPolicy(GRACE, enforce, "https://portal.example.org")


def test_schema_has_the_aup_tables(world: tuple[AupStore, Clock]) -> None:
    store, _ = world
    assert current_revision(store.engine)  # migrated to the head, whichever revision follows 0008_aup
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"aup_versions", "aup_acceptances", "aup_notices"} <= names


def test_a_version_is_immutable_and_hashed(world: tuple[AupStore, Clock]) -> None:
    store, _ = world
    v, new = store.publish(TEXT, "2026.1", by="cli:root")
    assert new and v.sha256 == text_hash(TEXT) and v.effective_at == T0 and v.text == TEXT
    again, new = store.publish(TEXT, "2026.1", by="cli:root")
    assert not new and again == v  # the same text: nothing changes
    with pytest.raises(AupError, match="another text"):
        store.publish(TEXT + "Also this.\n", "2026.1", by="cli:root")
    with pytest.raises(AupError, match="date cannot change"):
        store.publish(TEXT, "2026.1", effective_at=T0 + dt.timedelta(days=3), by="cli:root")
    with pytest.raises(AupError, match="in the past"):
        store.publish(TEXT, "2026.0", effective_at=T0 - dt.timedelta(days=3), by="cli:root")
    for bad in ("", "a b", "../x", "x" * 40):
        with pytest.raises(AupError):
            store.publish(TEXT, bad, by="cli:root")
    with pytest.raises(AupError, match="empty"):
        store.publish("  \n", "3", by="cli:root")
    assert [v.version for v in store.versions()] == ["2026.1"]
    event = next(e for e in store.directory.audit.events(limit=5) if e.action == "aup.published")
    assert event.subject == "2026.1" and event.details["sha256"] == v.sha256 and event.actor == "cli:root"


def test_the_version_in_effect_follows_the_dates(world: tuple[AupStore, Clock]) -> None:
    store, clock = world
    assert store.current() is None
    store.publish(TEXT, "1", by="t")
    store.publish(TEXT + "v2\n", "2", effective_at=T0 + dt.timedelta(days=30), by="t")
    assert store.current().version == "1"  # type: ignore[union-attr]
    assert [v.version for v in store.upcoming()] == ["2"]
    clock.now = T0 + dt.timedelta(days=30)
    assert store.current().version == "2"  # type: ignore[union-attr]


def test_acceptance_records_the_version_hash_and_client(world: tuple[AupStore, Clock]) -> None:
    store, clock = world
    v, _ = store.publish(TEXT, "1", by="t")
    with pytest.raises(AupError, match="not version 1's"):
        store.accept("alice@example.org", "1", sha256="0" * 64, client="192.0.2.7", by="portal:alice@example.org")
    with pytest.raises(AupError, match="no acceptable use policy version"):
        store.accept("alice@example.org", "9", sha256=v.sha256, client="192.0.2.7", by="portal:alice@example.org")
    clock.now = T0 + dt.timedelta(hours=2)
    a, new = store.accept("Alice@Example.org", "1", sha256=v.sha256, client="192.0.2.7", by="portal:alice@example.org")
    assert new and (a.account, a.version, a.sha256, a.accepted_at, a.client) == (
        "alice@example.org", "1", v.sha256, T0 + dt.timedelta(hours=2), "192.0.2.7")
    clock.now += dt.timedelta(hours=1)
    again, new = store.accept("alice@example.org", "1", sha256=v.sha256, client="198.51.100.1", by="x")
    assert not new and again == a  # the first acceptance stands
    event = next(e for e in store.directory.audit.events(limit=5) if e.action == "aup.accepted")
    assert event.subject == "alice@example.org" and event.details == {"version": "1", "sha256": v.sha256,
                                                                      "client": "192.0.2.7"}
    store.directory.set_state("bob@example.org", AccountState.SUSPENDED, by="t", reason="hold")
    with pytest.raises(AupError, match="not an active account"):
        store.accept("bob@example.org", "1", sha256=v.sha256, client="192.0.2.8", by="x")


def test_grace_period_gate_and_report(world: tuple[AupStore, Clock]) -> None:
    store, clock = world
    v, _ = store.publish(TEXT, "1", by="t")
    gate = AupGate(store, policy())
    assert gate.refusal("alice@example.org") is None  # inside the grace period
    rows = standings(store, policy())
    assert counts(rows) == {State.ACCEPTED: 0, State.DUE: 2, State.OVERDUE: 0}
    assert {r.address for r in rows} == {"alice@example.org", "bob@example.org"}
    assert all(r.due_at == T0 + GRACE for r in rows)
    clock.now = T0 + GRACE  # the deadline itself: overdue
    reply = gate.refusal("alice@example.org")
    assert reply is not None and reply.code == 550 and reply.status == "5.7.1"
    assert "https://portal.example.org/aup" in reply.text and "version 1" in reply.text
    assert AupGate(store, policy("notify")).refusal("alice@example.org") is None  # notify: never refused
    store.accept("alice@example.org", "1", sha256=v.sha256, client="192.0.2.7", by="t")
    assert gate.refusal("alice@example.org") is None
    assert counts(standings(store, policy())) == {State.ACCEPTED: 1, State.DUE: 0, State.OVERDUE: 1}
    # a joiner gets the whole grace period from their activation
    store.directory.add_account("dan@example.org", "Correct-Horse-Battery-9", by="t")
    dan = standing_of(store, policy(), "dan@example.org")
    assert dan is not None and dan.state is State.DUE and dan.due_at == clock.now + GRACE
    assert gate.refusal("dan@example.org") is None
    # a new version: everyone accepts again
    clock.now += dt.timedelta(days=1)
    store.publish(TEXT + "v2\n", "2", by="t")
    assert standing_of(store, policy(), "alice@example.org").state is State.DUE  # type: ignore[union-attr]


def test_notices_go_once_per_account_and_version(world: tuple[AupStore, Clock]) -> None:
    store, clock = world
    store.publish(TEXT, "1", by="t")

    class Spool:  # the notice's hand-over; the real spool is in test_aup_flow.py
        def __init__(self) -> None:
            self.got: list[tuple[Envelope, bytes]] = []

        async def commit(self, envelope: Envelope, raw: bytes, *, client: str, **kw: object) -> str:
            self.got.append((envelope, raw))
            return f"Q{len(self.got)}"

    spool = Spool()
    notifier = AupNotifier(store, policy(), spool)  # type: ignore[arg-type]
    assert asyncio.run(notifier.run()) == []  # nobody is overdue yet
    clock.now = T0 + GRACE + dt.timedelta(minutes=1)
    sent = asyncio.run(notifier.run())
    assert sorted(a for a, _ in sent) == ["alice@example.org", "bob@example.org"]
    env, raw = spool.got[0]
    assert str(env.sender) == "postmaster@example.org" and b"https://portal.example.org/aup" in raw
    assert b"Auto-Submitted: auto-generated" in raw and b"refused" in raw
    assert asyncio.run(notifier.run()) == []  # once
    row = next(r for r in standings(store, policy()) if r.address == "alice@example.org")
    assert row.notified_at == clock.now
    assert asyncio.run(AupNotifier(store, policy("off"), spool).run()) == []  # type: ignore[arg-type]


def test_markdown_renders_without_html_or_script() -> None:
    html = str(to_html("# Title\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
                       "[bad](javascript:alert(3)) [good](https://example.org/rules) **bold**\n\n"
                       "| a | b |\n|---|---|\n| 1 | 2 |\n"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<table>" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html and '<a href="https://example.org/rules">good</a>' in html


def test_the_shipped_template_covers_the_required_topics() -> None:
    text = template_text()
    html = str(to_html(text))
    for topic in ("Confidentiality", "Personal use", "Monitoring", "Sanctions", "What the service is for"):
        assert f"{topic}</h2>" in html, topic
    assert "[Organisation]" in text  # the parts a site fills in
