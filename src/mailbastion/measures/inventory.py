"""Which probes speak for which measure: the portal's dashboard (cheap, read-only, every few minutes) and
`mailbastion audit` (live: it sends test mail through the MX listener and handshakes every listener).

    board = portal_board(settings, store)     # the portal: av status, directory, certificate files, dns check
    board = audit_board(settings)             # the audit: all of those, plus the live probes of 1, 3, 4, 5, 9

The portal does not send EICAR or GTUBE every five minutes: its measures 3, 4 and 5 say so and point at
`mailbastion audit`. Measures 7 and 8 are not built anywhere (issue 13).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.antivirus import AntivirusProbe, AvStatus, EicarProbe, av_status_command
from mailbastion.measures.board import MeasureBoard, MeasureProbe, NotBuilt
from mailbastion.measures.dns import DnsProbe, Domains, map_domains
from mailbastion.measures.people import DirectoryProbe, NoDirectory
from mailbastion.measures.relay import RelayProbe
from mailbastion.measures.smtp_probe import MailTarget, connect_host, parse_hostport
from mailbastion.measures.spam import SpamProbe
from mailbastion.measures.split import SplitProbe
from mailbastion.measures.tls import ListenerTlsProbe, PolicyProbe, TlsProbe

if TYPE_CHECKING:
    from mailbastion.config import Settings
    from mailbastion.directory.portal import PortalStore

__all__ = ["AUDIT_TIMEOUT", "audit_board", "audit_probes", "mail_target", "portal_board"]

AUDIT_TIMEOUT = 300.0  # one probe; a busy clamd scanning three messages, or a slow DNS
NOT_BUILT_7_8 = "not built: no record of who accepted the policy or took the training (issue 13)"


def directory_domains(store: PortalStore) -> Domains:
    async def read() -> Sequence[str]:
        return list(await asyncio.to_thread(store.directory.list_domains))

    return read


def portal_board(settings: Settings, store: PortalStore, av_status: AvStatus | None = None) -> MeasureBoard:
    return MeasureBoard([
        AntivirusProbe(av_status or av_status_command(settings)),
        NotBuilt((3, 4, 5), "probed live by `mailbastion audit` (it sends test mail; not every few minutes "
                 "from here)"),
        DirectoryProbe(store),
        NotBuilt((7, 8), NOT_BUILT_7_8),
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
    if settings.server.role == "gateway":
        people = NoDirectory()
    else:
        from mailbastion.directory.portal import PortalStore
        from mailbastion.directory.store import Directory

        people = DirectoryProbe(PortalStore(Directory.from_settings(settings)))
    return [
        AntivirusProbe(av_status_command(settings)),
        EicarProbe(target, why),
        SpamProbe(settings, target, why),
        RelayProbe(settings, target, domains[0] if domains else "invalid", why),
        SplitProbe(settings),
        people,
        NotBuilt((7, 8), NOT_BUILT_7_8),
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
