"""Incoming TLS-RPT reports (RFC 8460 §4.4): the JSON read into values.

    report = parse_tlsrpt(json_bytes)     # raises ReportRejected
    report.org_name, report.start, report.end
    for p in report.policies: p.policy_type, p.policy_domain, p.successes, p.failures, p.details
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from mailbastion.reports.extract import ReportRejected


@dataclass(frozen=True, slots=True)
class TlsFailure:
    result_type: str
    sending_ip: str
    receiving_mx: str
    receiving_ip: str
    count: int
    info: str = ""


@dataclass(frozen=True, slots=True)
class TlsPolicyResult:
    policy_type: str
    policy_domain: str
    successes: int
    failures: int
    details: tuple[TlsFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsReport:
    org_name: str
    report_id: str
    start: int  # epoch seconds
    end: int
    policies: tuple[TlsPolicyResult, ...]


def _epoch(text: Any) -> int:
    try:
        return int(dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_tlsrpt(data: bytes, name: str = "report") -> TlsReport:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise ReportRejected(f"{name}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("policies"), list):
        raise ReportRejected(f"{name}: not a TLS-RPT report (no policies list)")
    dates = _dict(doc.get("date-range"))
    policies = []
    for entry in doc["policies"]:
        if not isinstance(entry, dict):
            continue
        pol, summary = _dict(entry.get("policy")), _dict(entry.get("summary"))
        details = []
        for d in entry.get("failure-details") or []:
            if isinstance(d, dict):
                details.append(TlsFailure(str(d.get("result-type", "")), str(d.get("sending-mta-ip", "")),
                                          str(d.get("receiving-mx-hostname", "")), str(d.get("receiving-ip", "")),
                                          _count(d.get("failed-session-count")),
                                          str(d.get("additional-information", ""))[:200]))
        policies.append(TlsPolicyResult(str(pol.get("policy-type", "")), str(pol.get("policy-domain", "")).lower(),
                                        _count(summary.get("total-successful-session-count")),
                                        _count(summary.get("total-failure-session-count")), tuple(details)))
    return TlsReport(str(doc.get("organization-name", "")), str(doc.get("report-id", "")),
                     _epoch(dates.get("start-datetime")), _epoch(dates.get("end-datetime")), tuple(policies))


__all__ = ["TlsFailure", "TlsPolicyResult", "TlsReport", "parse_tlsrpt"]
