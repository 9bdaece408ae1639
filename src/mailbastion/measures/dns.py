"""Measure 10: `dns check` of each of our domains, read-only (no DKIM key is switched): SPF, DKIM and DMARC
published and matching what we sign and send from; DMARC at p=reject, or p=none as a dated rollout step
(`auth.dmarc_none_max_days`; past it the check calls the record weak, and the measure fails)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from mailbastion.measures.board import MET, NOT_MET, WARN, MeasureResult

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["DnsProbe", "Domains", "dns_findings", "map_domains"]

Domains = Callable[[], Awaitable[Sequence[str]]]


def map_domains(settings: Settings) -> Domains:
    """Our domains from the recipient map (present on every role, as `dns check` reads them)."""

    async def read() -> Sequence[str]:
        from mailbastion.directory.recipient_map import read_map

        data = await asyncio.to_thread(read_map, settings.path(settings.directory.recipient_map))
        return sorted(data.domains)

    return read


async def dns_findings(settings: Settings, domains: Sequence[str]) -> dict[str, list[Any]]:
    from mailbastion.auth.keys import KeyStore
    from mailbastion.dns.resolver import DnsResolver
    from mailbastion.domain_dns.check import DomainChecker

    d = settings.dns
    checker = DomainChecker(DnsResolver(d.nameservers or None, port=d.port, timeout=d.timeout, cache_size=0),
                            KeyStore(settings.path(settings.auth.dkim_keys_dir)),
                            dmarc_none_max_days=settings.auth.dmarc_none_max_days,
                            retire_after_days=settings.auth.retired_key_days)
    results = await asyncio.gather(*(checker.check(dom, mx_host=settings.server.hostname, switch=False)
                                     for dom in domains))
    return dict(zip(domains, results, strict=True))


class DnsProbe:
    numbers: tuple[int, ...] = (10,)

    def __init__(self, settings: Settings, domains: Domains) -> None:
        self.settings = settings
        self.domains = domains

    async def __call__(self) -> Sequence[MeasureResult]:
        findings = await dns_findings(self.settings, await self.domains())
        src = "mailbastion dns check"
        problems = [f"{d}: {f.level} {f.purpose}: {f.message}" for d, fs in findings.items() for f in fs
                    if f.is_problem]
        # A weak DMARC record is p=none past its dated rollout step, or pct<100: not the measure.
        problems += [f"{d}: weak dmarc: {f.message}" for d, fs in findings.items() for f in fs
                     if f.level == "weak" and f.purpose == "dmarc" and "rua" not in f.message]
        weak = [f"{d}: weak {f.purpose}: {f.message}" for d, fs in findings.items() for f in fs if f.level == "weak"]
        good = [f"{d}: {f.level} {f.purpose}: {f.message}" for d, fs in findings.items() for f in fs
                if f.level in ("ok", "info")]
        if not findings:
            return [MeasureResult(10, NOT_MET, "no domains", (), src, fix="`mailbastion domain add`")]
        if problems:
            return [MeasureResult(10, NOT_MET, f"{len(problems)} record(s) missing, wrong or past their rollout "
                                  "step", tuple(problems + weak + good), src)]
        if weak:
            return [MeasureResult(10, WARN, f"{len(weak)} weak record(s)", tuple(weak + good), src)]
        return [MeasureResult(10, MET, "every record published and strong", tuple(good), src)]
