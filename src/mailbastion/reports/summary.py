"""Read the report mailboxes and summarise: DMARC per source IP and From domain, TLS-RPT per sending MTA.

    found = read_reports(settings_mailbox_root, kind="dmarc", days=7)       # ReadResult
    summary = summarise_dmarc(found.dmarc)          # -> dict ready for JSON or a table
    summary = summarise_tls(found.tls)

The mailboxes are `<mailbox root>/<domain>/reports/` (the account `reports@<domain>` whose aliases
`dmarc-reports@` and `tls-reports@` are published in rua), INBOX and Junk, new/ and cur/. A report whose
period ended more than `days` ago is left out. A message this reader refuses (a bomb, XXE, broken
gzip) is listed as a problem with its file name, and the rest are still read.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mailbastion.reports.dmarc import DmarcReport, parse_dmarc
from mailbastion.reports.extract import Limits, ReportRejected, report_payloads
from mailbastion.reports.tlsrpt import TlsReport, parse_tlsrpt

MAX_MESSAGE_BYTES = 20 * 1024 * 1024


@dataclass
class ReadResult:
    dmarc: list[DmarcReport] = field(default_factory=list)
    tls: list[TlsReport] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    messages: int = 0


def report_maildirs(mail_root: Path, domains: list[str] | None = None, local: str = "reports") -> list[Path]:
    """The Maildirs of the report accounts: `<root>/<domain>/<local>/`, each domain or the given ones."""
    if domains:
        candidates = [mail_root / d / local for d in domains]
    else:
        candidates = sorted(p / local for p in mail_root.iterdir() if p.is_dir()) if mail_root.is_dir() else []
    return [p for p in candidates if p.is_dir()]


def _message_files(maildir: Path) -> list[Path]:
    files: list[Path] = []
    for folder in (maildir, maildir / ".Junk"):
        for sub in ("new", "cur"):
            d = folder / sub
            if d.is_dir():
                files += sorted(p for p in d.iterdir() if p.is_file())
    return files


def read_reports(maildirs: list[Path], *, days: int | None = None, now: float | None = None,
                 limits: Limits | None = None) -> ReadResult:
    out = ReadResult()
    since = (now or time.time()) - days * 86400 if days else None
    for maildir in maildirs:
        for path in _message_files(maildir):
            try:
                if since is not None and path.stat().st_mtime < since - 7 * 86400:
                    continue  # delivered long before the window: its report period ended earlier still
                if path.stat().st_size > MAX_MESSAGE_BYTES:
                    out.problems.append((str(path), f"message larger than {MAX_MESSAGE_BYTES} bytes; skipped"))
                    continue
                raw = path.read_bytes()
            except OSError as exc:
                out.problems.append((str(path), f"cannot read: {exc.strerror}"))
                continue
            out.messages += 1
            try:
                payloads = report_payloads(raw, limits)
            except ReportRejected as exc:
                out.problems.append((str(path), str(exc)))
                continue
            for name, data in payloads:
                try:
                    if data.lstrip()[:1] == b"<":
                        d = parse_dmarc(data, name)
                        if since is None or d.end >= since:
                            out.dmarc.append(d)
                    elif data.lstrip()[:1] == b"{":
                        t = parse_tlsrpt(data, name)
                        if since is None or t.end >= since:
                            out.tls.append(t)
                except ReportRejected as exc:
                    out.problems.append((str(path), str(exc)))
    return out


def summarise_dmarc(reports: list[DmarcReport]) -> dict[str, object]:
    """Per (source IP, header From domain): messages, SPF/DKIM aligned passes, DMARC pass/fail, the
    dispositions receivers applied, who reported; and the policy each domain published."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for rep in reports:
        for r in rep.rows:
            entry = rows.setdefault((r.source_ip, r.header_from or rep.domain), {
                "source_ip": r.source_ip, "header_from": r.header_from or rep.domain, "messages": 0,
                "spf_aligned": 0, "dkim_aligned": 0, "dmarc_pass": 0, "dmarc_fail": 0,
                "disposition": defaultdict(int), "reporters": set()})
            entry["messages"] += r.count  # type: ignore[operator]
            entry["spf_aligned"] += r.count if r.spf_aligned else 0  # type: ignore[operator]
            entry["dkim_aligned"] += r.count if r.dkim_aligned else 0  # type: ignore[operator]
            entry["dmarc_pass" if r.dmarc_pass else "dmarc_fail"] += r.count  # type: ignore[operator]
            entry["disposition"][r.disposition] += r.count  # type: ignore[index]
            entry["reporters"].add(rep.org_name)  # type: ignore[attr-defined]
    sources = sorted(rows.values(), key=lambda e: (-int(e["dmarc_fail"]), -int(e["messages"]),  # type: ignore[call-overload]
                                                   str(e["source_ip"])))
    for e in sources:
        e["disposition"] = dict(sorted(e["disposition"].items()))  # type: ignore[attr-defined]
        e["reporters"] = sorted(e["reporters"])  # type: ignore[call-overload]
    return {
        "reports": len(reports),
        "messages": sum(r.messages for r in reports),
        "policies": {r.domain: f"p={r.policy_p} pct={r.policy_pct}" for r in sorted(reports, key=lambda r: r.end)},
        "sources": sources,
    }


def summarise_tls(reports: list[TlsReport]) -> dict[str, object]:
    """Per policy domain: sessions that succeeded and failed; per sending MTA (reporter and IP): failures by
    result type and receiving MX."""
    domains: dict[str, dict[str, int]] = defaultdict(lambda: {"successes": 0, "failures": 0})
    senders: dict[tuple[str, str], dict[str, object]] = {}
    for rep in reports:
        for p in rep.policies:
            domains[p.policy_domain]["successes"] += p.successes
            domains[p.policy_domain]["failures"] += p.failures
            for d in p.details:
                e = senders.setdefault((rep.org_name, d.sending_ip), {
                    "reporter": rep.org_name, "sending_ip": d.sending_ip, "failures": 0,
                    "result_types": defaultdict(int), "receiving_mx": set()})
                e["failures"] += d.count  # type: ignore[operator]
                e["result_types"][d.result_type] += d.count  # type: ignore[index]
                if d.receiving_mx:
                    e["receiving_mx"].add(d.receiving_mx)  # type: ignore[attr-defined]
    out_senders = sorted(senders.values(), key=lambda e: (-int(e["failures"]), str(e["reporter"])))  # type: ignore[call-overload]
    for e in out_senders:
        e["result_types"] = dict(sorted(e["result_types"].items()))  # type: ignore[attr-defined]
        e["receiving_mx"] = sorted(e["receiving_mx"])  # type: ignore[call-overload]
    return {"reports": len(reports), "policy_domains": dict(sorted(domains.items())), "sending_mtas": out_senders}


__all__ = ["ReadResult", "read_reports", "report_maildirs", "summarise_dmarc", "summarise_tls"]
