"""The dates of an account applied by `apply_due` with an injected clock: start, leave (login refused,
devices revoked, aliases re-pointed or reported, forwarding), archive with a verified checksum, deletion,
and the reservation of the address; every step in the audit log."""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from pathlib import Path

import pytest

from mailbastion.core.address import Address
from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import AccountState, Directory
from mailbastion.directory.errors import AddressReserved
from mailbastion.directory.login import LoginOutcome
from mailbastion.directory.recipient_map import RecipientMap
from mailbastion.lifecycle.archive import ArchiveCorrupt, verify_archive
from mailbastion.lifecycle.dates import set_dates
from mailbastion.lifecycle.transitions import LifecyclePolicy, apply_due
from mailbastion.mailbox.maildir import MaildirStore

PASSWORD = "Correct-Horse-Battery-9"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(tmp_path: Path, clock: Clock, **policy: object) -> tuple[Directory, LifecyclePolicy]:
    d = Directory(f"sqlite:///{tmp_path / 'd.db'}", recipient_map=tmp_path / "map.json", clock=clock,
                  reserve_for=dt.timedelta(days=90))
    d.add_domain("example.org", by="admin")
    store = MaildirStore(tmp_path / "mail")
    p = LifecyclePolicy(**{"archive_dir": tmp_path / "archive", "archive_after_days": 30, "retention_days": 365,
                           "mailbox_of": store.mailbox_dir, **policy})  # type: ignore[arg-type]
    return d, p


def maildir_with(tmp_path: Path, address: str, messages: int) -> Path:
    local, domain = address.split("@")
    box = tmp_path / "mail" / domain / local
    for sub in ("cur", "new", "tmp", ".Junk/cur", ".Junk/new", ".Junk/tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for i in range(messages):
        (box / ("new" if i % 2 else ".Junk/cur") / f"{i}.host").write_bytes(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
    return box


def actions(d: Directory, subject: str) -> list[str]:
    return [e.action for e in d.audit.events(None, subject=subject, newest_first=False)]


def test_start_date_makes_a_joiner_active_on_time(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock)
    d.add_account("new@example.org", PASSWORD, "hr", "joiner", start_at=T0 + DAY)
    assert d.account("new@example.org").state is AccountState.PENDING  # type: ignore[union-attr]
    assert not d.verify_login("new@example.org", PASSWORD).ok
    assert apply_due(d, p) == []
    clock.now = T0 + DAY
    assert [t.action for t in apply_due(d, p)] == ["account.started"]
    assert d.verify_login("new@example.org", PASSWORD).ok
    assert actions(d, "new@example.org") == ["account.added", "account.started"]
    assert d.audit.events(1)[0].actor == "lifecycle" and d.audit.events(1)[0].reason == "start date reached"


def test_leaving_refuses_login_revokes_devices_and_repoints_aliases(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock)
    for user in ("bob", "carol", "dave"):
        d.add_account(f"{user}@example.org", PASSWORD, "hr", "joiner")
    d.add_alias("sales@example.org", "bob@example.org", by="admin")
    d.add_alias("team@example.org", "dave@example.org", by="admin")
    device = d.add_app_password("bob@example.org", "phone", by="bob").secret
    heard: list[str] = []
    d.on_deactivated(heard.append)
    set_dates(d, "bob@example.org", end_at=T0 + DAY, successor="Carol@Example.org", by="hr", reason="HR-7")
    set_dates(d, "dave@example.org", end_at=T0 + DAY, by="hr", reason="HR-8")
    clock.now = T0 + DAY - dt.timedelta(seconds=1)
    assert apply_due(d, p) == [] and d.verify_login("bob@example.org", device).ok
    clock.now = T0 + DAY
    done = {t.address: t for t in apply_due(d, p)}
    assert set(done) == {"bob@example.org", "dave@example.org"}
    bob = d.account("bob@example.org")
    assert bob is not None and bob.state is AccountState.LEFT and bob.deactivated_at == T0 + DAY
    assert bob.successor == "carol@example.org"
    for secret in (PASSWORD, device):  # the device is gone: not even "inactive", it does not exist any more
        assert d.verify_login("bob@example.org", secret).outcome in (LoginOutcome.INACTIVE, LoginOutcome.BAD_CREDENTIALS)
    assert d.list_app_passwords("bob@example.org") == []
    assert sorted(heard) == ["bob@example.org", "dave@example.org"]
    assert ("sales@example.org", "carol@example.org") in d.list_aliases()
    assert done["bob@example.org"].details["aliases_repointed"] == ["sales@example.org"]
    assert done["dave@example.org"].details["aliases_reported"] == ["team@example.org"]
    # the gateway's map: bob is no address any more, and its refusal names the successor
    m = RecipientMap(tmp_path / "map.json")
    r = m.resolve(Address("bob", "example.org"))
    assert r.kind is ResolutionKind.UNKNOWN_USER and r.successor == "carol@example.org"
    assert m.resolve(Address("dave", "example.org")).successor is None
    # a suspension (a security hold) is not a leave: the refusal names nobody
    d.add_account("erin@example.org", PASSWORD, "hr", "joiner")
    set_dates(d, "erin@example.org", end_at=T0 + 30 * DAY, successor="carol@example.org", by="hr")
    d.set_state("erin@example.org", AccountState.SUSPENDED, "security", "phished")
    r = RecipientMap(tmp_path / "map.json").resolve(Address("erin", "example.org"))
    assert r.kind is ResolutionKind.UNKNOWN_USER and r.successor is None
    assert actions(d, "bob@example.org")[-2:] == ["account.dates_changed", "account.left"]
    assert d.audit.verify().ok


def test_forward_policy_forwards_for_n_days_then_refuses(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock, leaver_policy="forward", forward_days=10)
    for user in ("bob", "carol"):
        d.add_account(f"{user}@example.org", PASSWORD, "hr", "joiner")
    set_dates(d, "bob@example.org", end_at=T0, successor="carol@example.org", by="hr")
    apply_due(d, p)
    r = d.resolve("bob@example.org")
    assert r.kind is ResolutionKind.ALIAS and [str(t) for t in r.targets] == ["carol@example.org"]
    assert "bob@example.org" in json.loads((tmp_path / "map.json").read_text())["aliases"]
    clock.now = T0 + dt.timedelta(days=10)
    assert [t.action for t in apply_due(d, p)] == ["account.forward_ended"]
    assert d.resolve("bob@example.org").kind is ResolutionKind.UNKNOWN_USER
    assert RecipientMap(tmp_path / "map.json").resolve(Address("bob", "example.org")).successor == "carol@example.org"


def test_archive_verified_then_deleted_then_address_reserved(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock)
    d.add_account("bob@example.org", PASSWORD, "hr", "joiner")
    d.add_alias("board@example.org", "bob@example.org", by="admin")  # no successor: reported, kept
    box = maildir_with(tmp_path, "bob@example.org", 5)
    set_dates(d, "bob@example.org", end_at=T0, by="hr")
    apply_due(d, p)
    clock.now = T0 + dt.timedelta(days=29)
    assert apply_due(d, p) == [] and box.exists()
    clock.now = T0 + dt.timedelta(days=30)
    (t,) = apply_due(d, p)
    assert t.action == "account.archived" and t.details["messages"] == 5
    info = d.account("bob@example.org")
    assert info is not None and info.state is AccountState.ARCHIVED and not box.exists()
    tar = Path(info.archive_file or "")
    assert tar.parent == tmp_path / "archive" and verify_archive(tar) == t.details["sha256"]
    with tarfile.open(tar) as f:
        names = f.getnames()
    assert sum(1 for n in names if "/new/" in n or "/cur/" in n) == 5 and all(n.startswith("bob@example.org") for n in names)
    assert (tar.stat().st_mode & 0o777) == 0o600 and ((tmp_path / "archive").stat().st_mode & 0o777) == 0o700
    # a changed byte is found
    raw = bytearray(tar.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy = tmp_path / "archive" / "copy.tar.gz"
    copy.write_bytes(raw)
    (tmp_path / "archive" / "copy.tar.gz.sha256").write_text(f"{t.details['sha256']}  copy.tar.gz\n")
    with pytest.raises(ArchiveCorrupt):
        verify_archive(copy)
    # retention, then deletion; the address stays reserved for 90 days
    clock.now = info.archived_at + dt.timedelta(days=365)  # type: ignore[operator]
    (t,) = apply_due(d, p)
    assert t.action == "account.deleted" and not tar.exists()
    gone = d.account("bob@example.org")
    assert gone is not None and gone.state is AccountState.DELETED and gone.reserved_until == clock.now + dt.timedelta(days=90)
    with pytest.raises(AddressReserved, match=f"reserved until {gone.reserved_until:%Y-%m-%d}"):
        d.add_account("bob@example.org", PASSWORD, "hr", "new joiner")
    clock.now = gone.reserved_until  # type: ignore[assignment]
    d.add_account("bob@example.org", PASSWORD, "hr", "new joiner, same name")
    new = d.account("bob@example.org")
    assert new is not None and new.state is AccountState.ACTIVE and new.successor is None
    assert d.audit.events(1)[0].details["reused_address_reserved_until"] == gone.reserved_until.isoformat()  # type: ignore[union-attr]
    assert d.audit.events(1)[0].details["aliases_to_the_previous_account_removed"] == ["board@example.org"]
    assert ("board@example.org", "bob@example.org") not in d.list_aliases()  # the new bob gets none of it
    assert actions(d, "bob@example.org") == ["account.added", "account.dates_changed", "account.left",
                                             "account.archived", "account.deleted", "account.added"]
    assert d.audit.verify().ok


def test_a_failing_archive_is_retried_and_leaves_the_account_left(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock)
    d.add_account("bob@example.org", PASSWORD, "hr", "joiner")
    maildir_with(tmp_path, "bob@example.org", 1)
    set_dates(d, "bob@example.org", end_at=T0, by="hr")
    apply_due(d, p)
    (tmp_path / "archive").write_text("not a folder")
    clock.now = T0 + dt.timedelta(days=31)
    assert apply_due(d, p) == []
    assert d.account("bob@example.org").state is AccountState.LEFT  # type: ignore[union-attr]
    (tmp_path / "archive").unlink()
    assert [t.action for t in apply_due(d, p)] == ["account.archived"]


def test_a_successor_outside_our_domains_is_forwarded_to_and_named(tmp_path: Path, clock: Clock) -> None:
    d, p = make(tmp_path, clock, leaver_policy="forward", forward_days=5)
    d.add_account("bob@example.org", PASSWORD, "hr", "joiner")
    d.add_alias("sales@example.org", "bob@example.org", by="admin")
    set_dates(d, "bob@example.org", end_at=T0, successor="Bob.New@Partner.example", by="hr")
    (t,) = apply_due(d, p)
    assert t.details["forward_until"] is not None and t.details["aliases_repointed"] == ["sales@example.org"]
    r = d.resolve("bob@example.org")
    assert r.kind is ResolutionKind.ALIAS and [str(x) for x in r.targets] == ["Bob.New@partner.example"]
