"""The training pages over HTTPS from the real portal (no browser): a quiz needs the session's CSRF token and
an assignment; partial answers are refused without recording; an administrator assigns to a group from the
Training page, a target that is neither an account nor a group is a clear 400; a user cannot open it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from portal_kit import PASSWORD, PortalRunner, csrf_of, enrol_totp, http, portal_deployment, settings_of, sign_in

from mailbastion.testing.deployment import Deployment
from mailbastion.training.modules import load_modules
from mailbastion.training.store import TrainingStore

ADMIN, ALICE, BOB = "boss@example.test", "alice@example.test", "bob@example.test"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, PortalRunner]]:
    d = portal_deployment(Path(tmp_path_factory.mktemp("training-pages")))
    for address in (ALICE, BOB, ADMIN):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "alias", "add", "ops@example.test", BOB)
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    d.mb("training", "assign", "reporting", "--user", ALICE)
    runner = PortalRunner(settings_of(d)).start()
    try:
        yield d, runner
    finally:
        runner.stop()


def test_the_quiz_needs_csrf_an_assignment_and_every_answer(site: tuple[Deployment, PortalRunner]) -> None:
    d, runner = site
    store = TrainingStore(runner.ctx.directory)
    module = load_modules()["reporting"]
    right = {f"q{i}": str(q.answer) for i, q in enumerate(module.questions)}
    with http(runner, d) as client:
        assert sign_in(client, ALICE).status_code == 303
        page = client.get("/my/training/reporting")
        assert page.status_code == 200 and "Send my answers" in page.text and "<h1>Reporting an incident</h1>" in page.text
        assert client.post("/my/training/reporting", data=right).status_code == 403  # no CSRF token
        partial = client.post("/my/training/reporting", data={"csrf": csrf_of(page.text), "q0": right["q0"]})
        assert partial.status_code == 400 and "Answer every question" in partial.text
        view = store.assignment(ALICE, "reporting")
        assert view is not None and view.attempts == 0
        other = client.get("/my/training/phishing")
        assert "not assigned to you" in other.text
        refused = client.post("/my/training/phishing", data={"csrf": csrf_of(other.text), "q0": "0"})
        assert refused.status_code == 403
        done = client.post("/my/training/reporting", data={"csrf": csrf_of(page.text), **right})
        assert done.status_code == 200 and "You scored 100%: passed" in done.text
        assert client.get("/admin/training").status_code == 403  # a user
        assert client.get("/my/training/no-such-module").status_code == 404
    view = store.assignment(ALICE, "reporting")
    assert view is not None and view.completed_at is not None and view.score == 100


def test_an_administrator_assigns_to_a_group(site: tuple[Deployment, PortalRunner]) -> None:
    d, runner = site
    totp = enrol_totp(runner.ctx, ADMIN)
    with http(runner, d) as client:
        assert sign_in(client, ADMIN, totp=totp).status_code == 303
        page = client.get("/admin/training")
        assert page.status_code == 200 and "Assignments by person" in page.text
        assert f"<td>{BOB}</td>" in page.text and "account(s)" in page.text
        overdue = client.get("/admin/training?show=overdue")  # nobody is overdue yet: an empty, filtered list
        assert overdue.status_code == 200 and "Showing people with overdue modules" in overdue.text
        assert f"<td>{BOB}</td>" not in overdue.text and "No account to show." in overdue.text
        far = client.get("/admin/training?page=99")  # past the last page: no rows, no next link
        assert far.status_code == 200 and f"<td>{BOB}</td>" not in far.text and 'rel="next"' not in far.text
        assert client.get("/admin/training?page=x").status_code == 200
        token = csrf_of(page.text)
        r = client.post("/admin/training/assign", data={"csrf": token, "module": "confidential", "target": "ops"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/training?assigned=1"
        bad = client.post("/admin/training/assign", data={"csrf": token, "module": "confidential", "target": "nobody"})
        assert bad.status_code == 400 and "neither an active account nor a group" in bad.text
        bad = client.post("/admin/training/assign", data={"csrf": token, "module": "nope", "target": ""})
        assert bad.status_code == 400
    store = TrainingStore(runner.ctx.directory)
    assert [a.address for a in store.assignments(module="confidential")] == [BOB]
    assert any(e.action == "training.assigned" and e.actor == f"portal:{ADMIN}"
               for e in runner.ctx.directory.audit.events(10))
