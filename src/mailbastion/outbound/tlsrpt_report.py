"""TLS-RPT reports (RFC 8460): one day's sessions per policy domain, as JSON, gzip, and delivered to the
domain's `rua` (mailto: through a callable the caller wires to our spool; https: POST).

    sender = TlsReportSender(store, resolver, mail=spool_mail, organization="example.org",
                             contact="mailto:postmaster@example.org", mail_from="tls-reports@example.org",
                             submitter="example.org")
    results = await sender.send_day("2026-05-01")         # [SendResult(domain, rua, ok, detail)]

`build_report` gives the RFC 8460 §4.4 JSON; `report_mail` the §5.3 message: multipart/report;
report-type="tlsrpt", a text/plain part and the application/tlsrpt+gzip report named
`submitter!policy-domain!begin!end!id.json.gz` (§5.1). Domains without a `_smtp._tls` TXT record
(v=TLSRPTv1) get no report; a report already sent for (day, domain, rua) is not sent again, so the
daily task can be run again after a failure. A domain's report goes to every rua it lists.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import json
import logging
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

import httpx

from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound.tlsrpt_store import DaySessions, TlsRptStore

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

log = logging.getLogger("mailbastion.outbound.tlsrpt")

MailFn = Callable[[str, list[str], bytes], Awaitable[None]]  # (envelope sender, recipients, message)


def parse_tlsrpt_record(records: list[str] | tuple[str, ...]) -> list[str]:
    """The rua URIs of a `_smtp._tls` TXT RRset (RFC 8460 §3); [] when there is no single valid record."""
    found = [r for r in records if re.match(r"^v=TLSRPTv1\s*(;|$)", r)]
    if len(found) != 1:
        return []
    for field in found[0].split(";")[1:]:
        key, sep, value = field.strip().partition("=")
        if sep and key.strip() == "rua":
            return [u.strip() for u in value.split(",") if u.strip().lower().startswith(("mailto:", "https:"))]
    return []


def day_range(day: str) -> tuple[int, int]:
    start = calendar.timegm(dt.datetime.strptime(day, "%Y-%m-%d").timetuple())
    return start, start + 86399


def build_report(day: str, domain: str, sessions: list[DaySessions], *, organization: str, contact: str,
                 report_id: str) -> dict[str, object]:
    """RFC 8460 §4.4 for `domain`'s sessions of `day` (UTC)."""
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"},
        "contact-info": contact,
        "report-id": report_id,
        "policies": [
            {
                "policy": s.policy,
                "summary": {"total-successful-session-count": s.successes,
                            "total-failure-session-count": s.failure_count},
                **({"failure-details": [f.as_json() for f in s.failures]} if s.failures else {}),
            }
            for s in sessions if s.policy_domain == domain
        ],
    }


def report_filename(submitter: str, domain: str, day: str, report_id: str) -> str:
    begin, end = day_range(day)
    return f"{submitter}!{domain}!{begin}!{end}!{report_id}.json.gz"  # RFC 8460 §5.1


def report_mail(report: dict[str, object], *, domain: str, submitter: str, mail_from: str, to: str,
                day: str) -> bytes:
    """RFC 8460 §5.3: the report as a multipart/report; report-type="tlsrpt" message."""
    rid = str(report["report-id"])
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=submitter)
    msg["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{rid}>"
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(f"This is an aggregate TLS report from {submitter} for {domain} on {day} (RFC 8460).\n")
    msg.add_attachment(gzip.compress(json.dumps(report, indent=1).encode()), maintype="application",
                       subtype="tlsrpt+gzip", filename=report_filename(submitter, domain, day, rid))
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"; boundary="'
                       + str(msg.get_boundary()) + '"')
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@dataclass(frozen=True, slots=True)
class SendResult:
    domain: str
    rua: str
    ok: bool
    detail: str


class TlsReportSender:
    def __init__(self, store: TlsRptStore, resolver: DnsResolver, *, mail: MailFn | None, organization: str,
                 contact: str, mail_from: str, submitter: str, https_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0, https_port: int = 443) -> None:
        self.store = store
        self.resolver = resolver
        self.mail = mail
        self.organization = organization
        self.contact = contact
        self.mail_from = mail_from
        self.submitter = submitter
        self.https_context = https_context or ssl.create_default_context()
        self.timeout = timeout
        self.https_port = https_port  # 443; tests receive the POSTs elsewhere on loopback

    async def rua_of(self, domain: str) -> list[str]:
        try:
            return parse_tlsrpt_record((await self.resolver.lookup(f"_smtp._tls.{domain}", "TXT")).records)
        except LookupTimeout as exc:
            raise _Retry(f"_smtp._tls.{domain} lookup failed: {exc}") from None

    async def send_day(self, day: str) -> list[SendResult]:
        """Send `day`'s reports (once per domain and rua). Never raises for one destination's failure."""
        sessions = self.store.sessions(day)
        out: list[SendResult] = []
        for domain in sorted({s.policy_domain for s in sessions}):
            try:
                ruas = await self.rua_of(domain)
            except _Retry as exc:
                out.append(SendResult(domain, "", False, str(exc)))
                continue
            if not ruas:
                self.store.mark_sent(day, domain, "", "no-rua")  # nothing to do for this day and domain
                continue
            report_id = f"{day}.{domain}.{secrets.token_hex(6)}@{self.submitter}"
            report = build_report(day, domain, sessions, organization=self.organization, contact=self.contact,
                                  report_id=report_id)
            for rua in ruas:
                if self.store.was_sent(day, domain, rua):
                    continue
                try:
                    await self._deliver(rua, report, domain, day)
                except Exception as exc:  # one destination's trouble must not stop the others
                    log.warning("tls-rpt: report for %s to %s not sent: %s", domain, rua, exc)
                    out.append(SendResult(domain, rua, False, str(exc)))
                    continue
                self.store.mark_sent(day, domain, rua, report_id)
                log.info("tls-rpt: report %s for %s sent to %s", report_id, domain, rua)
                out.append(SendResult(domain, rua, True, report_id))
        return out

    async def _deliver(self, rua: str, report: dict[str, object], domain: str, day: str) -> None:
        if rua.lower().startswith("mailto:"):
            to = rua[len("mailto:"):].split("?", 1)[0].split("!", 1)[0]  # RFC 8460 §3: no size suffix for us
            if self.mail is None:
                raise RuntimeError("no mail transport wired for mailto: reports")
            message = report_mail(report, domain=domain, submitter=self.submitter, mail_from=self.mail_from,
                                  to=to, day=day)
            await self.mail(self.mail_from, [to], message)
            return
        await self._post(rua, gzip.compress(json.dumps(report).encode()))

    async def _post(self, url: str, body: bytes) -> None:
        """RFC 8460 §5.4: POST application/tlsrpt+gzip; any 2xx is success. The host is resolved with our
        resolver; its name goes in SNI and Host and the certificate is verified for it."""
        parsed = httpx.URL(url)
        host = parsed.host
        addresses = list((await self.resolver.lookup(host, "A")).records) + list(
            (await self.resolver.lookup(host, "AAAA")).records)
        if not addresses:
            raise RuntimeError(f"{host} has no address")
        port = parsed.port or self.https_port
        literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
        target = parsed.copy_with(host=literal, port=port)
        async with httpx.AsyncClient(verify=self.https_context, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout) as client:
            response = await client.post(str(target), content=body,
                                         headers={"Host": host, "Content-Type": "application/tlsrpt+gzip"},
                                         extensions={"sni_hostname": host})
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"HTTP {response.status_code} from {url}")


class _Retry(Exception):
    pass




def sender_from_settings(settings: Settings, store: TlsRptStore, resolver: DnsResolver,
                         mail: MailFn | None) -> TlsReportSender:
    """Our reports' identity from the settings: the organization (default server.hostname), the contact
    (default mailto:postmaster@<hostname's domain>), the From (default noreply-tls-reports@<hostname>)."""
    o, host = settings.outbound, settings.server.hostname.lower().rstrip(".")
    parent = host.split(".", 1)[1] if host.count(".") >= 2 else host
    ca = settings.path(o.ca_file) if o.ca_file else None
    return TlsReportSender(store, resolver, mail=mail, organization=o.tls_rpt_organization or host,
                           contact=o.tls_rpt_contact or f"mailto:postmaster@{parent}",
                           mail_from=o.tls_rpt_from or f"noreply-tls-reports@{host}", submitter=host,
                           https_context=ssl.create_default_context(cafile=str(ca) if ca else None),
                           timeout=o.tls_rpt_post_timeout)


class TlsReportTask:
    """The daily job: send every finished day's reports not sent yet, then forget old sessions. Run it
    once a day (or more often: what was sent is not sent again). `run_once` never raises for a
    destination's failure; it returns what happened."""

    def __init__(self, sender: TlsReportSender, *, keep_days: int = 30) -> None:
        self.sender = sender
        self.keep_days = keep_days

    async def run_once(self) -> list[SendResult]:
        out: list[SendResult] = []
        for day in self.sender.store.days_pending():
            out += await self.sender.send_day(day)
        self.sender.store.prune(self.keep_days)
        return out


__all__ = ["SendResult", "TlsReportSender", "TlsReportTask", "build_report", "parse_tlsrpt_record",
           "report_filename", "report_mail", "sender_from_settings"]
