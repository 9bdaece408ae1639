"""Which probes speak for which measure: the portal's dashboard (cheap, read-only, every few minutes) and
`mailbastion audit` (live: it sends test mail through the MX listener and handshakes every listener).

    board = portal_board(settings, store)     # the portal: av status, directory, certificate files, dns check
    board = audit_board(settings)             # the audit: all of those, plus the live probes of 1, 3, 4, 5, 9

The portal does not send EICAR or GTUBE every five minutes: its measures 3, 4 and 5 say so and point at
`mailbastion audit`. Measure 7 is measures/aup.py; measure 8 is measures/training.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from mailbastion.measures.antivirus import AntivirusProbe, AvStatus, EicarProbe, av_status_command
from mailbastion.measures.aup import AupProbe, NoAupDirectory
from mailbastion.measures.board import (
    MET,
    NOT_BUILT,
    NOT_MET,
    UNKNOWN,
    MeasureBoard,
    MeasureProbe,
    MeasureResult,
)
from mailbastion.measures.dns import DnsProbe, Domains, map_domains
from mailbastion.measures.people import DirectoryProbe, NoDirectory
from mailbastion.measures.relay import RelayProbe
from mailbastion.measures.smtp_probe import MailTarget, connect_host, parse_hostport
from mailbastion.measures.spam import SpamProbe
from mailbastion.measures.split import SplitProbe
from mailbastion.measures.tls import ListenerTlsProbe, PolicyProbe, TlsProbe
from mailbastion.measures.training import NoTrainingRecords, TrainingProbe

if TYPE_CHECKING:
    from mailbastion.config import Settings
    from mailbastion.directory.portal import PortalStore

__all__ = ["AUDIT_TIMEOUT", "LAST_FILE", "MAILED_FILE", "LastAuditProbe", "audit_board", "audit_probes",
           "mail_target", "portal_board"]

AUDIT_TIMEOUT = 300.0  # one probe; a busy clamd scanning three messages, or a slow DNS
LAST_FILE = "state/audit-last.json"  # below data_dir: every audit's report, for the portal
MAILED_FILE = "state/audit-mailed.json"  # the report last mailed by --mail-changes: what changed is against it
LAST_AUDIT_MAX_AGE = dt.timedelta(hours=26)  # a daily timer's run, and some slack


def directory_domains(store: PortalStore) -> Domains:
    async def read() -> Sequence[str]:
        return list(await asyncio.to_thread(store.directory.list_domains))

    return read


class LastAuditProbe:
    """Measures 3, 4 and 5 on the dashboard: the last `mailbastion audit` run on this host (its live probes
    send test mail, not something to do every few minutes). None yet: NOT_BUILT, saying to run it; older
    than LAST_AUDIT_MAX_AGE: UNKNOWN (an old pass is not a pass now)."""

    numbers: tuple[int, ...] = (3, 4, 5)
    _STATES: ClassVar[dict[str, str]] = {"pass": MET, "fail": NOT_MET, "not built": NOT_BUILT}

    def __init__(self, settings: Settings, *, now: dt.datetime | None = None) -> None:
        self.path = settings.path(LAST_FILE)
        self.now = now

    async def __call__(self) -> Sequence[MeasureResult]:
        try:
            doc = json.loads(await asyncio.to_thread(self.path.read_text, encoding="utf-8"))
        except FileNotFoundError:
            return [MeasureResult(n, NOT_BUILT, "no audit yet: run `mailbastion audit` (or its daily timer)",
                                  source="mailbastion audit") for n in self.numbers]
        when = dt.datetime.strptime(doc["checked_at"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=dt.UTC)
        old = (self.now or dt.datetime.now(dt.UTC)) - when > LAST_AUDIT_MAX_AGE
        out = []
        for m in doc["measures"]:
            if m["id"] not in self.numbers:
                continue
            state = UNKNOWN if old else self._STATES.get(m["status"], UNKNOWN)
            summary = f"audit of {doc['checked_at']}{' (too old)' if old else ''}: {m['evidence'][0]}"
            out.append(MeasureResult(m["id"], state, summary, tuple(m["evidence"][1:]), "mailbastion audit",
                                     fix=m["fix"] or ("run `mailbastion audit`" if old else "")))
        return out


def portal_board(settings: Settings, store: PortalStore, av_status: AvStatus | None = None) -> MeasureBoard:
    return MeasureBoard([
        AntivirusProbe(av_status or av_status_command(settings)),
        LastAuditProbe(settings),
        DirectoryProbe(store, settings),
        AupProbe(settings, store.directory),
        TrainingProbe(settings, store.directory),
        TlsProbe(settings),
        DnsProbe(settings, directory_domains(store)),
    ])


def mail_target(settings: Settings, domains: Sequence[str]) -> tuple[MailTarget | None, str]:
    """Where the live mail probes go (the first MX listener, to postmaster of our first domain), or why not."""
    if settings.server.role == "internal":
        return None, "this is the internal host: the MX listener is on the gateway (run the audit there)"
    if not settings.smtp.listen:
        return None, "no MX listener (smtp.listen is empty)"
    if not domains:
        return None, "no domain of ours (recipient map empty): add one with `mailbastion domain add`"
    bound, port = parse_hostport(settings.smtp.listen[0])
    return MailTarget(connect_host(bound), port, f"postmaster@{domains[0]}"), ""


def audit_probes(settings: Settings, domains: Sequence[str]) -> list[MeasureProbe]:
    target, why = mail_target(settings, domains)
    people: MeasureProbe
    aup: MeasureProbe
    training: MeasureProbe
    if settings.server.role == "gateway":
        people, aup, training = NoDirectory(), NoAupDirectory(), NoTrainingRecords()
    else:
        from mailbastion.directory.portal import PortalStore
        from mailbastion.directory.store import Directory

        directory = Directory.from_settings(settings)
        people, aup = DirectoryProbe(PortalStore(directory), settings), AupProbe(settings, directory)
        training = TrainingProbe(settings, directory)
    return [
        AntivirusProbe(av_status_command(settings)),
        EicarProbe(target, why),
        SpamProbe(settings, target, why),
        RelayProbe(settings, target, domains[0] if domains else "invalid", why),
        SplitProbe(settings),
        people,
        aup,
        training,
        TlsProbe(settings, complete=True),
        ListenerTlsProbe(settings),
        PolicyProbe(settings),
        DnsProbe(settings, map_domains(settings)),
    ]


async def audit_board(settings: Settings) -> MeasureBoard:
    try:
        domains = list(await map_domains(settings)())
    except (OSError, ValueError):
        domains = []
    return MeasureBoard(audit_probes(settings, domains), timeout=AUDIT_TIMEOUT)
