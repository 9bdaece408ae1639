"""Join and leave dates on the administrators' account pages, over real HTTPS (httpx) against a running portal:
the dates go through the lifecycle code of `mailbastion account start|leave` (lifecycle/dates.py,
lifecycle/transitions.py), with CSRF, audit records and the helpdesk's reach (user accounts only); the page
shows the lifecycle state, the next scheduled transition, aliases and the leaver policy. The deployment's
testing clock (`[lifecycle] testing_clock_offset_file`) moves "now" for the directory, the portal and the
scheduler, so a future leave date is reached and applied by the real `LifecycleScheduler`."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from portal_kit import PASSWORD, PortalRunner, csrf_of, enrol_totp, http, portal_deployment, settings_of, sign_in

from mailbastion.config.sections.lifecycle import LifecycleSection
from mailbastion.directory.models import AccountState
from mailbastion.directory.store import AccountInfo
from mailbastion.lifecycle.scheduler import LifecycleScheduler
from mailbastion.portal.admin_accounts import leaver_policy_text, next_transition
from mailbastion.portal.keys import token_hash

ADMIN, DESK = "admin@example.test", "desk@example.test"
NOW = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)


def info(state: AccountState, **dates: Any) -> AccountInfo:
    return AccountInfo(dates.pop("address", "x@example.test"), state, None, NOW - dt.timedelta(days=400), None,
                       None, None, state is AccountState.ACTIVE, **dates)


def test_next_transition_follows_the_schedulers_dates() -> None:
    lc = LifecycleSection(forward_days=10, archive_after_days=30, retention_days=365)
    day = dt.timedelta(days=1)
    pending = next_transition(info(AccountState.PENDING, start_at=NOW + day), lc, NOW)
    assert pending is not None and (pending.what, pending.at, pending.overdue) == ("active", NOW + day, False)
    waiting = next_transition(info(AccountState.PENDING), lc, NOW)
    assert waiting is not None and waiting.at is None and "approves" in waiting.what
    assert next_transition(info(AccountState.ACTIVE), lc, NOW) is None
    leaving = next_transition(AccountInfo("x@example.test", AccountState.SUSPENDED, None, NOW, NOW, NOW - day, None,
                                          False), lc, NOW)
    assert leaving is not None and leaving.what == "left" and leaving.overdue
    assert leaving.text().endswith("(due: at the scheduler's next check)")
    left = AccountInfo("x@example.test", AccountState.LEFT, None, NOW, NOW, NOW - day, NOW - day, False)
    step = next_transition(left, lc, NOW)
    assert step is not None and step.what.startswith("archived") and step.at == NOW + 29 * day
    step = next_transition(left, lc, NOW, forwarding=True)
    assert step is not None and step.what == "forwarding ends" and step.at == NOW + 9 * day
    archived = next_transition(info(AccountState.ARCHIVED, archived_at=NOW), lc, NOW)
    assert archived is not None and archived.what.startswith("deleted") and archived.at == NOW + 365 * day
    gone = next_transition(info(AccountState.DELETED, reserved_until=NOW + 2 * day), lc, NOW)
    assert gone is not None and gone.at == NOW + 2 * day

    forward = LifecycleSection(leaver_policy="forward", forward_days=14)
    assert "forwarded to carol@example.test for 14 days" in leaver_policy_text(
        info(AccountState.ACTIVE, successor="carol@example.test"), forward)
    assert "no successor to forward to" in leaver_policy_text(info(AccountState.ACTIVE), forward)
    assert "refused (550 5.1.1) naming carol@example.test" in leaver_policy_text(
        info(AccountState.ACTIVE, successor="carol@example.test"), LifecycleSection())


class Site:
    def __init__(self, d: Any, runner: PortalRunner, codes: dict[str, Any], clock_file: Path) -> None:
        self.d, self.runner, self.codes, self.clock_file = d, runner, codes, clock_file

    def client(self, address: str) -> Any:
        c = http(self.runner, self.d)
        r = sign_in(c, address, totp=self.codes.get(address))
        assert r.status_code == 303, r.text[:500]
        return c

    def user(self, address: str) -> str:
        self.d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
        return address

    def move_clock(self, seconds: float) -> None:
        offset = float(self.clock_file.read_text() or 0) if self.clock_file.exists() else 0.0
        self.clock_file.write_text(str(offset + seconds))

    def account(self, address: str) -> AccountInfo:
        got = self.runner.ctx.directory.account(address)
        assert got is not None
        return got

    def events(self, subject: str) -> list[Any]:
        return [e for e in self.runner.ctx.audit.events(limit=200) if e.subject == subject]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = Path(tmp_path_factory.mktemp("portal-dates"))
    clock_file = root / "clock-offset"
    d = portal_deployment(root, extra={("lifecycle", "testing_clock_offset_file"): f'"{clock_file}"'})
    for address in (ADMIN, DESK):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    d.mb("account", "role", DESK, "helpdesk", "--reason", "test")
    runner = PortalRunner(settings_of(d)).start()
    codes = {ADMIN: enrol_totp(runner.ctx, ADMIN), DESK: enrol_totp(runner.ctx, DESK)}
    yield Site(d, runner, codes, clock_file)
    runner.stop()


def post(client: Any, address: str, action: str, **fields: str) -> Any:
    page = client.get(f"/admin/accounts/{address}")
    assert page.status_code == 200
    return client.post(f"/admin/accounts/{address}/{action}", data={"csrf": csrf_of(page.text), **fields})


def test_the_helpdesk_sets_a_leave_date_and_the_scheduler_applies_it_on_time(site: Site) -> None:
    bob = site.user("bob@example.test")
    with closing(site.client(DESK)) as desk, closing(site.client(bob)) as bob_session:
        assert bob_session.get("/my/account").status_code == 200
        when = site.runner.ctx.now().replace(second=0, microsecond=0) + dt.timedelta(minutes=3)
        r = post(desk, bob, "leave", date=when.date().isoformat(), time=f"{when:%H:%M}", reason="HR-77 leaver")
        assert r.status_code == 303 and r.headers["location"].endswith("done=leave")
        got = site.account(bob)
        assert got.state is AccountState.ACTIVE and got.deactivate_at == when
        page = html.unescape(desk.get(f"/admin/accounts/{bob}").text)
        assert f"left on {when:%Y-%m-%d %H:%M} UTC" in page and "Leaver policy" in page
        changed = [e for e in site.events(bob) if e.action == "account.dates_changed"]
        assert changed and changed[0].actor == f"portal:{DESK}" and changed[0].reason == "HR-77 leaver"
        assert changed[0].details["deactivate_at"][1] == when.isoformat()
        listing = html.unescape(desk.get("/admin/accounts?q=bob").text)
        assert f"left on {when:%Y-%m-%d %H:%M} UTC" in listing

        # Before the date the scheduler changes nothing; past it (the clock moved), it makes bob leave.
        scheduler = LifecycleScheduler(site.runner.settings, directory=site.runner.ctx.directory)
        assert asyncio.run(scheduler.check()) == []
        digest = token_hash(bob_session.cookies.get("__Host-mb_session"))
        assert site.runner.ctx.store.session(digest) is not None
        site.move_clock(5 * 60)
        done = asyncio.run(scheduler.check())
        assert [(t.address, t.action) for t in done] == [(bob, "account.left")]
        assert done[0].details["portal_sessions_ended"] == 1
        assert site.runner.ctx.store.session(digest) is None  # ended by the leave, not at bob's next request
        r = bob_session.get("/my/account")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        assert site.account(bob).state is AccountState.LEFT
        left = [e for e in site.events(bob) if e.action == "account.left"]
        assert left and left[0].actor == "lifecycle"
        page = html.unescape(desk.get(f"/admin/accounts/{bob}").text)
        assert "archived (mailbox exported, then removed) on" in page
        assert 'action="/admin/accounts/bob%40example.test/leave"' not in page  # a leaver's dates are final
    with closing(http(site.runner, site.d)) as again:
        r = sign_in(again, bob)
        assert not (r.status_code == 303 and r.headers["location"] == "/")  # a leaver cannot sign in


def test_a_leave_date_in_the_past_applies_at_once_with_the_successor(site: Site) -> None:
    ann, carol = site.user("ann@example.test"), site.user("carol.dates@example.test")
    site.d.mb("account", "alias", "add", "sales@example.test", ann)
    with closing(site.client(ADMIN)) as admin, closing(site.client(ann)) as ann_session:
        yesterday = (site.runner.ctx.now() - dt.timedelta(days=1)).date()
        r = post(admin, ann, "leave", date=yesterday.isoformat(), successor=carol, reason="HR-78")
        assert r.status_code == 303 and r.headers["location"].endswith("done=left")
        got = site.account(ann)
        assert got.state is AccountState.LEFT and got.successor == carol
        assert got.deactivated_at == dt.datetime.combine(yesterday, dt.time(), dt.UTC)
        assert ann_session.get("/my/account").status_code == 303
        assert ("sales@example.test", carol) in site.runner.ctx.directory.list_aliases()
        page = html.unescape(admin.get(f"/admin/accounts/{ann}?done=left").text)
        assert "the account has left" in page and carol in page
        actions = {e.action: e for e in site.events(ann)}
        assert actions["account.left"].actor == f"portal:{ADMIN}"
        assert actions["account.left"].details["aliases_repointed"] == ["sales@example.test"]
        assert actions["account.dates_changed"].details["successor"] == [None, carol]
        # A leaver's dates are final: the page refuses another leave date, nothing is written.
        before = len(site.events(ann))
        r = admin.post(f"/admin/accounts/{ann}/leave", data={"csrf": csrf_of(page), "date": "2099-01-01",
                                                               "reason": "again"})
        assert r.status_code == 400 and "already left" in html.unescape(r.text)
        assert len(site.events(ann)) == before
    assert site.runner.ctx.audit.verify().ok


def test_join_dates_create_pending_accounts_that_start_on_time(site: Site) -> None:
    dan = "dan@example.test"
    with closing(site.client(ADMIN)) as admin:
        page = admin.get("/admin/accounts")
        future = (site.runner.ctx.now() + dt.timedelta(days=10)).date()
        r = admin.post("/admin/accounts", data={"csrf": csrf_of(page.text), "address": dan, "start": future.isoformat(),
                                                "reason": "HR-79 joiner"})
        assert r.status_code == 303
        got = site.account(dan)
        assert got.state is AccountState.PENDING and got.start_at == dt.datetime.combine(future, dt.time(), dt.UTC)
        assert f"active on {future:%Y-%m-%d} 00:00 UTC" in html.unescape(admin.get(f"/admin/accounts/{dan}").text)
        # The join date brought forward to today: it has come, the account starts now.
        today = site.runner.ctx.now().date()
        r = post(admin, dan, "start", date=today.isoformat(), reason="started early")
        assert r.status_code == 303 and r.headers["location"].endswith("done=started")
        assert site.account(dan).state is AccountState.ACTIVE
        started = [e for e in site.events(dan) if e.action == "account.started"]
        assert started and started[0].actor == f"portal:{ADMIN}"
        # A future leave date, then removed again.
        assert post(admin, dan, "leave", date="2099-06-30", reason="fixed term").status_code == 303
        assert site.account(dan).deactivate_at == dt.datetime(2099, 6, 30, tzinfo=dt.UTC)
        r = post(admin, dan, "leave-cancel", reason="contract extended")
        assert r.status_code == 303 and site.account(dan).deactivate_at is None
        assert "nothing scheduled" in admin.get(f"/admin/accounts/{dan}").text


def test_bad_dates_csrf_and_the_helpdesks_reach_are_refused(site: Site) -> None:
    eve, pat = site.user("eve@example.test"), "pat@example.test"
    site.d.mb("account", "add", pat, "--pending")
    with closing(site.client(ADMIN)) as admin, closing(site.client(DESK)) as desk:
        before = len(site.events(eve))
        r = admin.post(f"/admin/accounts/{eve}/leave", data={"date": "2000-01-01", "reason": "no token"})
        assert r.status_code == 403
        for fields in ({"date": "31/12/2026", "reason": "x"}, {"date": "2026-12-31", "time": "25:00", "reason": "x"},
                       {"date": "2026-12-31", "reason": ""}):
            r = post(admin, eve, "leave", **fields)
            assert r.status_code == 400 and 'role="alert"' in r.text, fields
        r = post(admin, eve, "leave", date="2099-01-01", successor=eve, reason="self")
        assert r.status_code == 400 and "own successor" in r.text
        assert len(site.events(eve)) == before and site.account(eve).deactivate_at is None
        # A pending account cannot leave now: a clear refusal, nothing changed.
        r = post(admin, pat, "leave", date="2000-01-01", reason="never started")
        assert r.status_code == 400 and "only an active or suspended account can leave" in r.text
        assert site.account(pat).state is AccountState.PENDING and site.account(pat).deactivate_at is None
        # The helpdesk manages user accounts only.
        r = post(desk, ADMIN, "leave", date="2000-01-01", reason="takeover")
        assert r.status_code == 403 and site.account(ADMIN).state is AccountState.ACTIVE
        assert site.account(ADMIN).deactivate_at is None
