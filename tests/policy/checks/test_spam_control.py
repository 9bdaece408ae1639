"""Rate limits (per client address, per sender), greylisting (memory and SQLite) and the external tag."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "spam"))

from spamkit import context, judge, mail, names

from mailbastion.core import replies
from mailbastion.core.address import parse_address
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Edit
from mailbastion.policy.checks.external_tag import ExternalTagCheck
from mailbastion.policy.checks.greylist import GreylistCheck
from mailbastion.policy.checks.ratelimit import RateLimitCheck
from mailbastion.spam.greylist import Greylist, GreyOutcome, MemoryGreylistStore, SqliteGreylistStore
from mailbastion.spam.ratelimit import RateLimiter, SqliteRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def mail_from(check: RateLimitCheck, *, ip: str = "198.51.100.7", sender: str = "a@partner.example",
                    authenticated_as: str | None = None):  # type: ignore[no-untyped-def]
    return await check(context(b"", ip=ip, sender=sender, authenticated_as=authenticated_as, stage=Stage.MAIL))


async def test_rate_limit_per_client_address() -> None:
    clock = Clock()
    check = RateLimitCheck(RateLimiter(clock=clock), per_client=3, per_sender=100, window=60)
    for i in range(3):
        assert (await mail_from(check, sender=f"u{i}@partner.example")).forced is None
    result = await mail_from(check, sender="u9@partner.example")
    assert result.forced is not None and result.forced.action is Action.SOFT_REJECT
    assert result.forced.reply == replies.RATE_LIMITED and result.forced.by == "ratelimit"
    assert result.symbols[0].name == "RATELIMIT_CLIENT"
    assert (await mail_from(check, ip="198.51.100.8")).forced is None  # another client is unaffected
    clock.now += 61
    assert (await mail_from(check)).forced is None  # the window slid on


def test_sqlite_rate_limiter_is_shared_between_processes_views(tmp_path: Path) -> None:
    clock = Clock()
    a = SqliteRateLimiter(tmp_path / "rate.db", clock=clock, vacuum_every=2)
    b = SqliteRateLimiter(tmp_path / "rate.db", clock=clock)
    assert a.hit("client:x", limit=2, window=60)
    assert b.hit("client:x", limit=2, window=60)
    assert not a.hit("client:x", limit=2, window=60)  # b's hit counted in a
    assert not b.hit("client:x", limit=2, window=60)
    clock.now += 61
    assert a.hit("client:x", limit=2, window=60)


async def test_rate_limit_per_sender_includes_authenticated_users() -> None:
    check = RateLimitCheck(RateLimiter(clock=Clock()), per_client=100, per_sender=2, window=60)
    for _ in range(2):
        assert (await mail_from(check, authenticated_as="alice@example.com")).forced is None
    result = await mail_from(check, authenticated_as="alice@example.com", ip="192.0.2.44")
    assert result.forced is not None and result.symbols[0].name == "RATELIMIT_SENDER"


async def test_refused_attempts_are_not_counted() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert limiter.hit("k", limit=1, window=10)
    for _ in range(5):
        assert not limiter.hit("k", limit=1, window=10)
    clock.now += 10.5
    assert limiter.hit("k", limit=1, window=10)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_greylist_defers_then_passes_then_knows(backend: str, tmp_path: Path) -> None:
    clock = Clock()
    store = MemoryGreylistStore() if backend == "memory" else SqliteGreylistStore(tmp_path / "grey.db")
    grey = Greylist(store, delay=300, retry_window=3600, pass_ttl=86400, clock=clock)
    args = ("198.51.100.7", "a@partner.example", "bob@example.com")
    assert grey.check(*args) is GreyOutcome.DEFERRED
    clock.now += 60
    assert grey.check(*args) is GreyOutcome.DEFERRED  # too early
    clock.now += 300
    assert grey.check("198.51.100.200", *args[1:]) is GreyOutcome.PASSED  # same /24 retries
    clock.now += 80000
    assert grey.check(*args) is GreyOutcome.KNOWN
    assert grey.check(args[0], "other@partner.example", args[2]) is GreyOutcome.DEFERRED


def test_greylist_retry_too_late_starts_over() -> None:
    clock = Clock()
    grey = Greylist(MemoryGreylistStore(), delay=300, retry_window=3600, clock=clock)
    assert grey.check("198.51.100.7", "a@x.example", "b@example.com") is GreyOutcome.DEFERRED
    clock.now += 300 + 3601
    assert grey.check("198.51.100.7", "a@x.example", "b@example.com") is GreyOutcome.DEFERRED
    clock.now += 300
    assert grey.check("198.51.100.7", "a@x.example", "b@example.com") is GreyOutcome.PASSED


def test_sqlite_greylist_is_shared_between_processes_views(tmp_path: Path) -> None:
    clock = Clock()
    a = Greylist(SqliteGreylistStore(tmp_path / "g.db"), delay=10, clock=clock)
    b = Greylist(SqliteGreylistStore(tmp_path / "g.db"), delay=10, clock=clock)
    assert a.check("198.51.100.7", "s@x.example", "r@example.com") is GreyOutcome.DEFERRED
    clock.now += 11
    assert b.check("198.51.100.7", "s@x.example", "r@example.com") is GreyOutcome.PASSED


async def test_greylist_check_at_rcpt() -> None:
    clock = Clock()
    check = GreylistCheck(Greylist(MemoryGreylistStore(), delay=300, clock=clock))
    ctx = context(b"", stage=Stage.RCPT)
    ctx.rcpt = parse_address("bob@example.com")
    first = await check(ctx)
    assert first.forced is not None and first.forced.reply == replies.GREYLISTED
    assert str(first.forced.reply).startswith("451 4.7.1")
    clock.now += 301
    again = await check(ctx)
    assert again.forced is None and again.symbols[0].name == "GREYLIST_PASSED"
    relay = context(b"", stage=Stage.RCPT, authenticated_as="alice@example.com")
    relay.rcpt = parse_address("carol@example.org")
    assert (await check(relay)).forced is None


async def test_external_subject_tag_for_outside_mail_only() -> None:
    check = ExternalTagCheck(mode="subject", subject_tag="[EXTERNAL]")
    verdict, _ = await judge([check], mail())
    assert "EXTERNAL_SENDER" in names(verdict)
    assert Edit.subject_tag("[EXTERNAL]") in verdict.edits
    assert verdict.score == 0
    inside, _ = await judge([check], mail(), authenticated_as="alice@example.com")
    assert inside.edits == () and "EXTERNAL_SENDER" not in names(inside)


async def test_external_header_mode() -> None:
    verdict, _ = await judge([ExternalTagCheck(mode="header", header_value="outside")], mail())
    assert Edit.prepend("X-External-Sender", "outside") in verdict.edits
