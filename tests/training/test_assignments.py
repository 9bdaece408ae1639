"""Assignments over time with an injected clock: a joiner gets the mandatory modules the moment the lifecycle
scheduler makes the account active; a failed quiz can be retaken and a pass completes; reminders come before
the due date and again while overdue; the command line assigns to a group and reports per user and group."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from mailbastion.config import Settings, load_settings
from mailbastion.directory.models import AccountState
from mailbastion.directory.store import Directory
from mailbastion.lifecycle.scheduler import LifecycleScheduler
from mailbastion.spool.writer import Spool
from mailbastion.testing.deployment import Deployment
from mailbastion.training.modules import grade, load_modules
from mailbastion.training.reminders import reminders_due, send_reminders
from mailbastion.training.store import TrainingStore

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
PASSWORD = "Correct-Horse-Battery-9"
MANDATORY = ["phishing", "attachments", "passwords", "confidential", "reporting"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    d = Deployment(tmp_path / "d", settings={("antivirus.clamav", "enabled"): "false",
                                             ("antivirus", "stale_policy"): '"alarm_only"'})
    return d.init()


def open_directory(settings: Settings, clock: Clock) -> Directory:
    return Directory(settings.directory_url, recipient_map=settings.path(settings.directory.recipient_map), clock=clock)


def test_a_joiner_gets_the_mandatory_modules_when_the_account_becomes_active(deployment: Deployment) -> None:
    settings, clock = load_settings(deployment.config), Clock()
    directory = open_directory(settings, clock)
    directory.add_account("old@example.test", PASSWORD, by="hr", reason="staff")
    directory.add_account("new@example.test", PASSWORD, by="hr", reason="joiner", start_at=T0 + DAY)
    scheduler = LifecycleScheduler(settings, directory=directory)
    store = TrainingStore(directory)

    asyncio.run(scheduler.check())
    assert sorted(a.module for a in store.assignments(address="old@example.test")) == sorted(MANDATORY)
    assert all(a.due_at == T0 + 30 * DAY for a in store.assignments(address="old@example.test"))
    assert store.assignments(address="new@example.test") == []  # pending: not yet

    clock.now = T0 + DAY
    asyncio.run(scheduler.check())
    info = directory.account("new@example.test")
    assert info is not None and info.state is AccountState.ACTIVE
    joined = store.assignments(address="new@example.test")
    assert sorted(a.module for a in joined) == sorted(MANDATORY)
    assert {(a.due_at, a.assigned_by, a.completed_at) for a in joined} == {(T0 + 31 * DAY, "training:joiners", None)}
    assert any(e.action == "training.assigned" for e in directory.audit.events(20))
    asyncio.run(scheduler.check())  # nothing twice
    assert len(store.assignments(address="new@example.test")) == len(MANDATORY)


def test_a_failed_quiz_is_retaken_and_a_pass_completes(deployment: Deployment) -> None:
    settings, clock = load_settings(deployment.config), Clock()
    directory = open_directory(settings, clock)
    directory.add_account("alice@example.test", PASSWORD, by="hr", reason="staff")
    store = TrainingStore(directory)
    store.assign(["alice@example.test"], "passwords", due_at=T0 + 7 * DAY, by="admin", reason="test")
    module = load_modules()["passwords"]
    first = store.record_attempt("alice@example.test", "passwords", grade(module, {0: module.questions[0].answer}))
    assert first.attempts == 1 and first.score == 25 and first.completed_at is None
    assert first.state(clock.now) == "failed"
    clock.now = T0 + DAY
    right = {i: q.answer for i, q in enumerate(module.questions)}
    second = store.record_attempt("alice@example.test", "passwords", grade(module, right))
    assert (second.attempts, second.score, second.completed_at) == (2, 100, T0 + DAY)
    assert second.state(T0 + 30 * DAY) == "completed"  # never overdue once completed
    with pytest.raises(KeyError):
        store.record_attempt("alice@example.test", "reporting", grade(module, right))


def test_reminders_before_the_due_date_and_while_overdue(deployment: Deployment) -> None:
    settings, clock = load_settings(deployment.config), Clock()  # remind 7 days before, then every 7 days
    directory = open_directory(settings, clock)
    directory.add_account("bob@example.test", PASSWORD, by="hr", reason="staff")
    store = TrainingStore(directory)
    store.assign(["bob@example.test"], "reporting", due_at=T0 + 10 * DAY, by="admin", reason="test")
    spool = Spool.from_settings(settings)

    def remind() -> list[tuple[str, str]]:
        return asyncio.run(send_reminders(settings, directory, spool))

    assert remind() == []  # 10 days to go
    clock.now = T0 + 3 * DAY
    sent = remind()
    assert [a for a, _ in sent] == ["bob@example.test"]
    assert remind() == []  # once before the due date
    clock.now = T0 + 10 * DAY
    assert len(remind()) == 1  # due now: overdue reminder
    clock.now = T0 + 16 * DAY
    assert remind() == []
    clock.now = T0 + 17 * DAY
    assert len(remind()) == 1  # a week later
    view = store.assignment("bob@example.test", "reporting")
    assert view is not None and view.reminded_at == T0 + 17 * DAY
    assert reminders_due([view], T0 + 30 * DAY, settings.training.model_copy(update={"overdue_every_days": 0})) == []
    entries = sorted((spool.root / "incoming").glob("*"))
    assert entries, "the reminders are committed to the spool"


def test_assign_to_a_group_and_report_from_the_command_line(deployment: Deployment) -> None:
    d = deployment
    for user in ("alice", "bob", "carol"):
        d.mb("account", "add", f"{user}@example.test", "--password-stdin", input=f"{PASSWORD}\n")
    for user in ("alice", "bob"):
        d.mb("account", "alias", "add", "staff@example.test", f"{user}@example.test")
    out = d.mb("training", "assign", "passwords", "--group", "staff", "--due", "2099-01-31")
    assert "assigned to 2 account(s), due 2099-01-31 00:00 UTC" in out
    out = d.mb("training", "assign", "passwords", "--all", "--due", "2000-01-01")
    assert "2 had it already" in out  # carol (and init's own accounts), overdue at once
    rows = {r["address"]: r for r in csv.DictReader(io.StringIO(d.mb("training", "report", "--csv")))}
    assert rows["carol@example.test"]["overdue"] == "1" and rows["carol@example.test"]["modules_overdue"] == "passwords"
    assert rows["alice@example.test"]["overdue"] == "0" and rows["alice@example.test"]["groups"] == "staff@example.test"
    text = d.mb("training", "report")
    assert "staff@example.test" in text and "no phishing-simulation campaign yet" in text
    with pytest.raises(RuntimeError, match="no module 'nosuch'"):
        d.mb("training", "assign", "nosuch", "--all")
    listed = d.mb("training", "modules")
    assert "* phishing" in listed and "Recognising phishing" in listed
