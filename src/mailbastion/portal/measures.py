"""The dashboard's ten measures, each from what can prove it today, and "not built" where nothing can.

    board = MeasureBoard.default(settings, portal_store)        # the probes that exist today
    board = board.with_probe(MyAupProbe())                      # issue 13: measures 7 and 8, by number
    results = await board.refresh()                             # every probe at once, each under a timeout
    board.results                                               # the last ones, for a page to show at once

A probe returns a `MeasureResult` whose state is one of STATES. A measure nothing checks yet is NOT_BUILT,
never MET: the dashboard must not claim what no code has proven (when `mailbastion audit` exists, its
checks replace these probes one by one). Probes never raise: a failure becomes UNKNOWN with the error.

Today's sources, the same as the commands: `av status` (measures 1 and 2, through `mailbastion av status
--json` unless the wiring hands a function in), the directory (measure 6: leavers past their date still
active, aliases whose target cannot receive, pending accounts), `tls status` (measure 9: the certificates
of every listener and the TLS floor) and `dns check` (measure 10, without switching DKIM keys).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mailbastion.config import Settings
    from mailbastion.directory.portal import PortalStore

log = logging.getLogger("mailbastion.portal")

__all__ = ["MET", "NOT_BUILT", "NOT_MET", "PARTIAL", "STATES", "UNKNOWN", "WARN", "AvStatus", "MeasureBoard",
           "MeasureProbe", "MeasureResult"]

MET, WARN, NOT_MET, PARTIAL, NOT_BUILT, UNKNOWN = "met", "attention", "not met", "partial", "not built", "unknown"
STATES = (MET, WARN, NOT_MET, PARTIAL, NOT_BUILT, UNKNOWN)
PROBE_TIMEOUT = 60.0

TITLES = {
    1: "Anti-virus on all mail, fresh signatures",
    2: "Mail engine differs from the workstations'",
    3: "Spam filter at server level",
    4: "No open relay",
    5: "MTA in the DMZ, MDA inside",
    6: "Joiners and leavers",
    7: "Acceptable use policy",
    8: "Training on email risks",
    9: "Encryption",
    10: "SPF, DKIM, DMARC",
}

AvStatus = Callable[[], Awaitable[Mapping[str, Any]]]  # the JSON report of `mailbastion av status --json`


@dataclass(frozen=True, slots=True)
class MeasureResult:
    number: int
    state: str
    summary: str
    details: tuple[str, ...] = ()
    source: str = ""  # the command that shows the same facts
    checked_at: str = ""

    @property
    def title(self) -> str:
        return TITLES[self.number]


class MeasureProbe(Protocol):
    @property
    def numbers(self) -> tuple[int, ...]: ...

    async def __call__(self) -> Sequence[MeasureResult]: ...


@dataclass(frozen=True, slots=True)
class NotBuilt:
    numbers: tuple[int, ...]
    why: str

    async def __call__(self) -> Sequence[MeasureResult]:
        return [MeasureResult(n, NOT_BUILT, self.why, source="") for n in self.numbers]


class AntivirusProbe:
    """Measures 1 and 2 from the `av status` report."""

    numbers: tuple[int, ...] = (1, 2)

    def __init__(self, status: AvStatus) -> None:
        self.status = status

    async def __call__(self) -> Sequence[MeasureResult]:
        report = await self.status()
        engines = list(report.get("engines", []))
        m2 = report.get("measure2", {})
        stale = [e["engine"] for e in engines if e.get("stale")]
        down = [e["engine"] for e in engines if not e.get("reachable") and not e.get("auto")]
        lines = tuple(f"{e['engine']} ({e['vendor']}): {e['state']}, signatures {e.get('signature_age') or '-'}"
                      for e in engines)
        signed = [e["engine"] for e in engines if e.get("vendor_signatures") and e.get("reachable")
                  and not e.get("stale")]
        if stale or down:
            one = MeasureResult(1, NOT_MET, "engines stale or unreachable: " + ", ".join(stale + down), lines,
                                "mailbastion av status")
        elif not signed:
            # Our YARA rules and attachment policy scan every message, but carry no vendor signatures to be fresh.
            one = MeasureResult(1, NOT_MET, "no engine with vendor signatures answers (start clamd, run freshclam)",
                                lines, "mailbastion av status")
        else:
            one = MeasureResult(1, MET, f"every message scanned; fresh signatures in {', '.join(signed)}", lines,
                                "mailbastion av status")
        if m2.get("met"):
            two = MeasureResult(2, MET, "met by " + ", ".join(m2.get("by", [])),
                                (f"workstations: {report.get('workstation_engine') or '(not declared)'}",),
                                "mailbastion av status")
        else:
            two = MeasureResult(2, NOT_MET, "no vendor engine unlike the workstations' answers",
                                tuple(m2.get("reasons", [])), "mailbastion av status")
        return [one, two]


def av_status_command(settings: Settings) -> AvStatus:
    """The default source of measures 1 and 2: `mailbastion av status --json`, run as a child process,
    exactly as an administrator would (the portal does not build the engines itself)."""

    async def run() -> Mapping[str, Any]:
        if settings.source is None:
            raise RuntimeError("no configuration file to hand to `mailbastion av status`")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailbastion", "av", "status", "--json", "-c", str(settings.source),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        try:
            data: Mapping[str, Any] = json.loads(out)
        except ValueError:
            raise RuntimeError(f"av status said: {err.decode(errors='replace').strip()[:300]}") from None
        return data

    return run


class DirectoryProbe:
    """Measure 6, the part the directory knows: leaver dates honoured, no alias pointing at nobody."""

    numbers: tuple[int, ...] = (6,)

    def __init__(self, store: PortalStore) -> None:
        self.store = store

    async def __call__(self) -> Sequence[MeasureResult]:
        overdue = await asyncio.to_thread(self.store.overdue_leavers)
        dead = await asyncio.to_thread(self.store.directory.dead_aliases)
        pending = await asyncio.to_thread(self.store.count_accounts, state="pending")
        details = (*(f"past its leave date but still active: {a}" for a in overdue[:20]),
                   *(f"alias {d.alias} -> {d.target}: {d.why}" for d in dead[:20]),
                   f"{pending} account(s) pending approval")
        if overdue or dead:
            return [MeasureResult(6, NOT_MET, f"{len(overdue)} leaver(s) still active, {len(dead)} dead alias(es)",
                                  details, "mailbastion account list")]
        return [MeasureResult(6, PARTIAL, "leaver dates honoured, every alias reaches someone; the joiner and "
                              "leaver procedures (issue 13) are not built", details, "mailbastion account list")]


class TlsProbe:
    """Measure 9, the part our certificates show: every listener's certificate present, matching its key,
    not expired; the TLS floor. (Outbound MTA-STS/DANE and encryption at rest are not probed here.)"""

    numbers: tuple[int, ...] = (9,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        from mailbastion.pki import key_matches, load_chain, load_key, read_certificate

        s = self.settings
        bad, warn, lines = [], [], [f"TLS floor: {s.tls.min_version} (Mozilla intermediate ciphers)"]
        for role, cert_key, key_key in (("public (MX, portal)", "cert", "key"), ("MDA", "mda_cert", "mda_key"),
                                        ("gateway client", "gateway_client_cert", "gateway_client_key")):
            cert, key = s.path(getattr(s.tls, cert_key)), s.path(getattr(s.tls, key_key))
            try:
                info = read_certificate(cert)
                if not key_matches(load_chain(cert)[0], load_key(key)):
                    bad.append(f"{role}: the key does not belong to the certificate")
                    continue
            except Exception as exc:  # noqa: BLE001 - missing or unreadable: reported, not raised
                bad.append(f"{role}: {str(exc).splitlines()[0][:200]}")
                continue
            left = info.days_left()
            lines.append(f"{role}: {info.subject}, until {info.not_after:%Y-%m-%d} ({left} days)")
            if info.not_after <= dt.datetime.now(dt.UTC):
                bad.append(f"{role}: expired")
            elif left < s.tls.expiry_warning_days:
                warn.append(f"{role}: expires in {left} days")
        if bad:
            return MeasureResult(9, NOT_MET, "; ".join(bad), tuple(lines), "mailbastion tls status")
        if warn:
            return MeasureResult(9, WARN, "; ".join(warn), tuple(lines), "mailbastion tls status")
        return MeasureResult(9, PARTIAL, "certificates valid, TLS 1.2 or newer; outbound TLS policy and "
                             "encryption at rest are not probed here", tuple(lines), "mailbastion tls status")


class DnsProbe:
    """Measure 10: `dns check` of each of our domains (read-only: no DKIM key is switched)."""

    numbers: tuple[int, ...] = (10,)

    def __init__(self, settings: Settings, store: PortalStore) -> None:
        self.settings = settings
        self.store = store

    async def __call__(self) -> Sequence[MeasureResult]:
        findings = await dns_findings(self.settings, await asyncio.to_thread(self.store.directory.list_domains))
        problems = [f"{d}: {f.level} {f.purpose}: {f.message}" for d, fs in findings.items() for f in fs
                    if f.is_problem]
        weak = [f"{d}: weak {f.purpose}: {f.message}" for d, fs in findings.items() for f in fs if f.level == "weak"]
        if not findings:
            return [MeasureResult(10, NOT_MET, "no domains", (), "mailbastion dns check")]
        if problems:
            return [MeasureResult(10, NOT_MET, f"{len(problems)} record(s) missing or wrong", tuple(problems + weak),
                                  "mailbastion dns check")]
        if weak:
            return [MeasureResult(10, WARN, f"{len(weak)} weak record(s)", tuple(weak), "mailbastion dns check")]
        return [MeasureResult(10, MET, "every record published and strong", (), "mailbastion dns check")]


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


class MeasureBoard:
    def __init__(self, probes: Sequence[MeasureProbe], *, ttl: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.probes = list(probes)
        self.ttl = ttl
        self._monotonic = monotonic
        self.results: dict[int, MeasureResult] = {n: MeasureResult(n, UNKNOWN, "not checked yet") for n in TITLES}
        self.refreshed_at: float | None = None
        self._running: asyncio.Task[dict[int, MeasureResult]] | None = None

    @staticmethod
    def default(settings: Settings, store: PortalStore, av_status: AvStatus | None = None) -> MeasureBoard:
        return MeasureBoard([
            AntivirusProbe(av_status or av_status_command(settings)),
            NotBuilt((3, 4, 5), "no live probe yet (`mailbastion audit` is not built); see the filter's and the "
                     "relay's own tests"),
            DirectoryProbe(store),
            NotBuilt((7, 8), "not built yet (issue 13)"),
            TlsProbe(settings),
            DnsProbe(settings, store),
        ])

    def with_probe(self, probe: MeasureProbe) -> MeasureBoard:
        """Replace whatever probed `probe.numbers` (issue 13 brings 7 and 8)."""
        kept = [p for p in self.probes if not set(p.numbers) & set(probe.numbers)]
        return MeasureBoard([*kept, probe], ttl=self.ttl, monotonic=self._monotonic)

    @property
    def is_stale(self) -> bool:
        return self.refreshed_at is None or self._monotonic() - self.refreshed_at > self.ttl

    def refresh_soon(self) -> None:
        """Start a refresh in the background unless one runs (a page shows the last results meanwhile)."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._refresh())

    async def refresh(self) -> dict[int, MeasureResult]:
        self.refresh_soon()
        assert self._running is not None
        return await asyncio.shield(self._running)

    async def _refresh(self) -> dict[int, MeasureResult]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        outcomes = await asyncio.gather(*(asyncio.wait_for(p(), PROBE_TIMEOUT) for p in self.probes),
                                        return_exceptions=True)
        fresh: dict[int, MeasureResult] = {}
        for probe, outcome in zip(self.probes, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("portal: measure probe %s failed: %s", type(probe).__name__, outcome)
                why = f"{type(outcome).__name__}: {outcome}".splitlines()[0][:300]
                fresh.update({n: MeasureResult(n, UNKNOWN, f"the check failed: {why}") for n in probe.numbers})
            else:
                fresh.update({r.number: replace(r, checked_at="" if r.state == NOT_BUILT else stamp) for r in outcome})
        self.results = {n: fresh.get(n, MeasureResult(n, NOT_BUILT, "nothing checks this")) for n in TITLES}
        self.refreshed_at = self._monotonic()
        return self.results
