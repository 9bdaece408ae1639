"""Where each active account stands with the acceptable use policy: accepted, due (inside the grace period)
or overdue; and the one reply that refuses sending to an overdue account.

    policy = AupPolicy.from_settings(settings)              # grace_days, enforce, the portal's address
    rows = standings(store, policy)                          # every active account, against the version in effect
    one = standing_of(store, policy, "alice@example.org")    # None: no version in effect (nothing to accept)
    reply = AupGate(store, policy).refusal("alice@example.org")   # Reply 550 5.7.1, or None: may send

An account's deadline is `grace_days` after the later of the version's effective date and the account's
activation (a joiner gets the whole grace period too). Only active accounts are counted: a pending,
suspended or departed one has nothing to accept until it is active again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mailbastion.core.replies import Reply

if TYPE_CHECKING:
    from mailbastion.aup.store import Acceptance, AupStore, PolicyVersion
    from mailbastion.config.schema import Settings

__all__ = ["AccountStanding", "AupGate", "AupPolicy", "State", "counts", "standing_of", "standings"]

ACCEPT_PATH = "/aup"


class State(StrEnum):
    ACCEPTED = "accepted"
    DUE = "due"  # not accepted, inside the grace period
    OVERDUE = "overdue"  # not accepted, past the grace period


@dataclass(frozen=True, slots=True)
class AupPolicy:
    grace: dt.timedelta
    enforce: str  # "submission" | "notify" | "off"
    portal_url: str  # https://portal.example.org (no trailing slash)
    notice_sender: str = ""

    @staticmethod
    def from_settings(settings: Settings) -> AupPolicy:
        a = settings.aup
        return AupPolicy(dt.timedelta(days=a.grace_days), a.enforce,
                         settings.portal.base_url(settings.server.hostname).rstrip("/"), a.notice_sender)

    @property
    def accept_url(self) -> str:
        return self.portal_url + ACCEPT_PATH


@dataclass(frozen=True, slots=True)
class AccountStanding:
    address: str
    version: str
    state: State
    due_at: dt.datetime
    accepted: Acceptance | None = None
    notified_at: dt.datetime | None = None


def _since(info: Any) -> dt.datetime:  # an AccountInfo or a row with the same fields
    return info.activated_at or info.created_at


def _one(info: Any, v: PolicyVersion, policy: AupPolicy, accepted: Acceptance | None,
         notified: dt.datetime | None, now: dt.datetime) -> AccountStanding:
    due = max(v.effective_at, _since(info)) + policy.grace
    state = State.ACCEPTED if accepted is not None else State.OVERDUE if now >= due else State.DUE
    return AccountStanding(info.address, v.version, state, due, accepted, notified)


def standings(store: AupStore, policy: AupPolicy, version: PolicyVersion | None = None,
              now: dt.datetime | None = None) -> list[AccountStanding]:
    """Every active account against `version` (default: the one in effect; [] when none is), by address."""
    from mailbastion.directory.models import AccountState

    now = now or store.now()
    v = version or store.current(now)
    if v is None:
        return []
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from mailbastion.directory.models import Account

    accepted = store.acceptances(v.version)
    notified = store.notices(v.version)
    # Only the columns a standing needs, not whole accounts: 10,000 of them are one page of the portal
    # (bench/portal_bench.py). Active means state active and no end date reached (Directory._is_active).
    query = (select(Account.address, Account.activated_at, Account.created_at, Account.deactivate_at)
             .where(Account.state == str(AccountState.ACTIVE)).order_by(Account.address))
    with Session(store.directory.engine) as s:
        people = [r for r in s.execute(query) if r.deactivate_at is None or r.deactivate_at > now]
    return [_one(r, v, policy, accepted.get(r.address), notified.get(r.address), now) for r in people]


def standing_of(store: AupStore, policy: AupPolicy, address: str,
                now: dt.datetime | None = None) -> AccountStanding | None:
    """`address` against the version in effect; None when no version is, or the account is not active."""
    now = now or store.now()
    v = store.current(now)
    if v is None:
        return None
    info = store.directory.account(address)
    if info is None or not info.is_active:
        return None
    return _one(info, v, policy, store.acceptance(info.address, v.version), None, now)


def counts(rows: Sequence[AccountStanding]) -> dict[State, int]:
    out = dict.fromkeys(State, 0)
    for r in rows:
        out[r.state] += 1
    return out


class AupGate:
    """The submission listener's question at MAIL FROM (submission/handler.py `sender_gate`): may this account
    send, as far as the policy goes? Only with `enforce = "submission"`; otherwise always yes."""

    def __init__(self, store: AupStore, policy: AupPolicy) -> None:
        self.store = store
        self.policy = policy

    def refusal(self, account: str) -> Reply | None:
        """550 5.7.1 naming the portal's policy page for an overdue account; None when it may send.
        Synchronous (database): call it with asyncio.to_thread."""
        if self.policy.enforce != "submission":
            return None
        s = standing_of(self.store, self.policy, account)
        if s is None or s.state is not State.OVERDUE:
            return None
        return Reply(550, "5.7.1", f"Sending is paused for {s.address}: the acceptable use policy (version "
                     f"{s.version}) was due by {s.due_at:%Y-%m-%d} and is not accepted yet. Read and accept it "
                     f"at {self.policy.accept_url} ; receiving still works")

    async def __call__(self, account: str) -> Reply | None:
        import asyncio

        return await asyncio.to_thread(self.refusal, account)
