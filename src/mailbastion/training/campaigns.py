"""Phishing-simulation campaigns: created, sent on schedule through our own spool, clicked, reported.

    store = CampaignStore(directory, settings)
    store.create("q4-quota", template="mailbox-full", target="staff", start_at=..., by="cli:root")
    sent = await store.send("q4-quota", spool)           # one signed copy per active member, committed
    await store.send_due(spool)                          # every campaign whose start time has come (scheduler)
    page = store.click("q4-quota", token)                # the landing page's facts; assigns the module
    store.reported("q4-quota", token, reporter)          # from the report loop (record_reported, below)
    store.results("q4-quota")                            # per user and per group

Each recipient gets a random link token (only its SHA-256 is stored) at `<portal>/l/<campaign>/<token>`.
"Delivered" means committed to our spool (250-equivalent: fsynced; the spool then delivers it to the
Maildir). A click records the first time and assigns the template's module again (re-opened when it was
completed), due `[training] due_days` later. "Ignored" is delivered, neither clicked nor reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.directory.database import write_transaction
from mailbastion.training.models import TrainingCampaign, TrainingTarget
from mailbastion.training.simulation import SimTemplate, SimulationHit, load_key, load_templates, simulation_message
from mailbastion.training.store import TrainingStore, norm

if TYPE_CHECKING:
    from mailbastion.config import Settings
    from mailbastion.directory.store import Directory
    from mailbastion.spool.writer import Spool

__all__ = ["ALL", "CampaignError", "CampaignInfo", "CampaignStore", "Click", "TargetResult", "record_reported",
           "token_hash"]

log = logging.getLogger("mailbastion.training")
ALL = "all"


class CampaignError(ValueError):
    """A campaign request that cannot be done; the message says why (one line)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    name: str
    template: str
    target: str
    module: str
    start_at: dt.datetime
    created_by: str
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TargetResult:
    address: str
    delivered: bool
    clicked: bool
    reported: bool

    @property
    def outcome(self) -> str:
        return ("reported" if self.reported else "clicked" if self.clicked else
                "ignored" if self.delivered else "not sent")


@dataclass(frozen=True, slots=True)
class Click:
    campaign: str
    address: str
    template: SimTemplate
    first: bool  # the first click of this recipient


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum()


class CampaignStore:
    def __init__(self, directory: Directory, settings: Settings) -> None:
        self.directory = directory
        self.settings = settings
        self.engine = directory.engine
        self.training = TrainingStore(directory)

    def now(self) -> dt.datetime:
        return self.directory.now()

    # -- campaigns ----------------------------------------------------------------------------------

    def create(self, name: str, *, template: str, target: str, start_at: dt.datetime | None = None,
               module: str | None = None, by: str) -> CampaignInfo:
        if not _valid_name(name):
            raise CampaignError(f"campaign name {name!r}: 1-64 letters, digits, - and _")
        templates = load_templates(self.settings)
        if template not in templates:
            raise CampaignError(f"no template {template!r} (there are: {', '.join(sorted(templates))})")
        if target != ALL:
            try:
                self.training.members(target)
            except KeyError as exc:
                raise CampaignError(str(exc.args[0])) from None
            target = norm(target) if "@" in target else target.lower()
        from mailbastion.training.modules import load_modules

        module = module or templates[template].module
        if module not in load_modules(self.settings):
            raise CampaignError(f"no training module {module!r} (see `mailbastion training modules`)")
        start = start_at or self.now()
        with self.directory.audited_change("training.campaign_created", by=by, subject=name, reason="campaign",
                                           details={"template": template, "target": target, "module": module,
                                                    "start": start.isoformat(timespec="seconds")}) as s:
            if s.get(TrainingCampaign, name) is not None:
                raise CampaignError(f"a campaign {name!r} exists already")
            s.add(TrainingCampaign(name=name, template=template, target=target, module=module, start_at=start,
                                   created_at=self.now(), created_by=by))
        info = self.campaign(name)
        assert info is not None
        return info

    def campaign(self, name: str) -> CampaignInfo | None:
        with Session(self.engine) as s:
            c = s.get(TrainingCampaign, name)
            return None if c is None else CampaignInfo(c.name, c.template, c.target, c.module, c.start_at,
                                                       c.created_by, c.sent_at)

    def campaigns(self) -> list[CampaignInfo]:
        with Session(self.engine) as s:
            return [CampaignInfo(c.name, c.template, c.target, c.module, c.start_at, c.created_by, c.sent_at)
                    for c in s.scalars(select(TrainingCampaign).order_by(TrainingCampaign.start_at))]

    def targets_of(self, info: CampaignInfo) -> list[str]:
        return self.training.active_accounts() if info.target == ALL else self.training.members(info.target)

    # -- sending ------------------------------------------------------------------------------------

    async def send(self, name: str, spool: Spool, *, portal_url: str) -> list[tuple[str, str]]:
        """Commit one signed copy per active target not yet sent one; [(address, queue id)]. The target row
        (with the token's hash) is written before the commit, so a click can never find no row."""
        import asyncio

        info = self.campaign(name)
        if info is None:
            raise CampaignError(f"no campaign {name!r}")
        template = load_templates(self.settings).get(info.template)
        if template is None:
            raise CampaignError(f"campaign {name}: its template {info.template!r} is gone")
        key = await asyncio.to_thread(load_key, self.settings)
        addresses = await asyncio.to_thread(self.targets_of, info)
        with Session(self.engine) as s:
            done = set(s.scalars(select(TrainingTarget.address).where(TrainingTarget.campaign == name,
                                                                      TrainingTarget.queue_id.is_not(None))))
        sent: list[tuple[str, str]] = []
        for address in addresses:
            if address in done:
                continue
            token = secrets.token_urlsafe(24)
            await asyncio.to_thread(self._target_row, name, address, token)
            domain = address.rpartition("@")[2]
            raw = simulation_message(template, key, campaign=name, token=token, recipient=address,
                                     link=f"{portal_url}/l/{name}/{token}", domain=domain, now=self.now())
            sender = f"{self.settings.training.sender_local_part}@{domain}"
            queue_id = await spool.commit(Envelope(parse_address(sender), (parse_address(address),)), raw,
                                          client=f"training-simulation:{name}")
            await asyncio.to_thread(self._delivered, name, address, queue_id)
            sent.append((address, queue_id))
        await asyncio.to_thread(self._sent, name, len(sent))
        log.info("training.campaign_sent campaign=%s messages=%d", name, len(sent))
        return sent

    def _target_row(self, name: str, address: str, token: str) -> None:
        with write_transaction(self.engine) as conn, Session(bind=conn) as s:
            row = s.scalar(select(TrainingTarget).where(TrainingTarget.campaign == name,
                                                        TrainingTarget.address == address))
            if row is None:
                s.add(TrainingTarget(campaign=name, address=address, token_hash=token_hash(token)))
            else:  # a copy committed earlier never reached the spool: the new token replaces the old
                row.token_hash = token_hash(token)
            s.flush()

    def _delivered(self, name: str, address: str, queue_id: str) -> None:
        with write_transaction(self.engine) as conn, Session(bind=conn) as s:
            row = s.scalar(select(TrainingTarget).where(TrainingTarget.campaign == name,
                                                        TrainingTarget.address == address))
            if row is not None:
                row.queue_id, row.delivered_at = queue_id, self.now()
                s.flush()

    def _sent(self, name: str, count: int) -> None:
        with self.directory.audited_change("training.campaign_sent", by="training", subject=name, reason="campaign",
                                           details={"messages": count}) as s:
            c = s.get(TrainingCampaign, name)
            if c is not None and c.sent_at is None:
                c.sent_at = self.now()

    async def send_due(self, spool: Spool, *, portal_url: str) -> dict[str, int]:
        """Send every campaign whose start time has come and that was not sent yet."""
        now = self.now()
        out: dict[str, int] = {}
        for info in self.campaigns():
            if info.sent_at is None and info.start_at <= now:
                out[info.name] = len(await self.send(info.name, spool, portal_url=portal_url))
        return out

    # -- what recipients do ---------------------------------------------------------------------------

    def _target(self, s: Session, name: str, token: str) -> TrainingTarget | None:
        return s.scalar(select(TrainingTarget).where(TrainingTarget.campaign == name,
                                                     TrainingTarget.token_hash == token_hash(token)))

    def click(self, name: str, token: str, *, client: str = "") -> Click | None:
        """The tracking link was opened: record the first click, assign the module. None: no such link."""
        if not _valid_name(name) or not token or len(token) > 200:
            return None
        info = self.campaign(name)
        if info is None:
            return None
        template = load_templates(self.settings).get(info.template)
        with Session(self.engine) as s:
            row = self._target(s, name, token)
            if row is None or template is None:
                return None
            address, first = row.address, row.clicked_at is None
        if first:
            with self.directory.audited_change("training.simulation_clicked", by="training", subject=address,
                                               reason=f"campaign {name}", details={"client": client[:64]}) as s:
                target = self._target(s, name, token)
                if target is not None and target.clicked_at is None:
                    target.clicked_at = self.now()
            due = self.now() + dt.timedelta(days=self.settings.training.due_days)
            self.training.assign([address], info.module, due_at=due, by="training:simulation",
                                 reason=f"clicked the link of phishing simulation {name}", reopen=True)
        return Click(name, address, template, first)

    def reported(self, name: str, token: str, reporter: str) -> bool:
        """`reporter` reported the copy with `token`; True when recorded now (False: no such copy, or its
        report was recorded before: nothing is written)."""
        with Session(self.engine) as s:
            row = self._target(s, name, token)
            if row is None or row.reported_at is not None:
                return False
            address = row.address
        with self.directory.audited_change("training.simulation_reported", by=f"report:{norm(reporter)}",
                                           subject=address, reason=f"reported phishing simulation {name}") as s:
            target = self._target(s, name, token)
            if target is None or target.reported_at is not None:
                return False
            target.reported_at = self.now()
        return True

    # -- results --------------------------------------------------------------------------------------

    def results(self, name: str) -> list[TargetResult]:
        with Session(self.engine) as s:
            rows = s.scalars(select(TrainingTarget).where(TrainingTarget.campaign == name)
                             .order_by(TrainingTarget.address))
            return [TargetResult(r.address, r.delivered_at is not None, r.clicked_at is not None,
                                 r.reported_at is not None) for r in rows]

    def results_by_group(self, name: str) -> dict[str, dict[str, int]]:
        """group alias (or "(no group)") -> counts of delivered, clicked, reported, ignored."""
        groups = self.training.groups_of()
        out: dict[str, dict[str, int]] = {}
        for r in self.results(name):
            for g in groups.get(r.address) or ["(no group)"]:
                c = out.setdefault(g, {"delivered": 0, "clicked": 0, "reported": 0, "ignored": 0})
                c["delivered"] += r.delivered
                c["clicked"] += r.clicked
                c["reported"] += r.reported
                c["ignored"] += r.outcome == "ignored"
        return dict(sorted(out.items()))


def record_reported(hit: SimulationHit, reporter: str, settings: Settings, *,
                    directory: Directory | None = None) -> bool:
    """The campaign records that `reporter` reported its copy. True when it was recorded now (False: unknown
    token, or already reported). The report loop then neither learns nor quarantines the message."""
    if directory is None:
        from mailbastion.directory.store import Directory

        directory = Directory.from_settings(settings)
    return CampaignStore(directory, settings).reported(hit.campaign, hit.token, reporter)
