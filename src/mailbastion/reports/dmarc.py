"""DMARC aggregate reports (RFC 7489 §7.2, appendix C): the XML read safely into values.

    report = parse_dmarc(xml_bytes)       # raises ReportRejected
    report.org_name, report.domain, report.policy_p, report.begin, report.end
    for row in report.rows: row.source_ip, row.count, row.disposition, row.dkim_aligned, row.spf_aligned

The XML goes through defusedxml: a DTD, an entity declaration or an external reference is refused
(billion laughs, XXE), with a clear message. Namespaces (the DMARCbis "urn:ietf:params:xml:ns:dmarc-2.0")
are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from mailbastion.reports.extract import ReportRejected


@dataclass(frozen=True, slots=True)
class DmarcRow:
    source_ip: str
    count: int
    disposition: str  # none | quarantine | reject
    dkim_aligned: bool  # policy_evaluated/dkim = pass (DKIM passed and aligned)
    spf_aligned: bool
    header_from: str
    dkim: tuple[tuple[str, str], ...] = ()  # auth_results: (domain, result)
    spf: tuple[tuple[str, str], ...] = ()

    @property
    def dmarc_pass(self) -> bool:
        return self.dkim_aligned or self.spf_aligned


@dataclass(frozen=True, slots=True)
class DmarcReport:
    org_name: str
    report_id: str
    begin: int
    end: int
    domain: str
    policy_p: str
    policy_pct: int
    rows: tuple[DmarcRow, ...]

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.rows)


def _strip(element: Element) -> Element:
    for el in element.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return element


def _text(el: Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    return (found.text or "").strip() if found is not None and found.text else default


def _int(el: Element | None, path: str, default: int = 0) -> int:
    try:
        return int(_text(el, path, str(default)))
    except ValueError:
        return default


def parse_dmarc(data: bytes, name: str = "report") -> DmarcReport:
    try:
        root = _strip(SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True))
    except DefusedXmlException as exc:
        raise ReportRejected(f"{name}: XML with a DTD, entities or external references refused ({exc})") from None
    except ParseError as exc:
        raise ReportRejected(f"{name}: not well-formed XML ({exc})") from None
    if root.tag != "feedback":
        raise ReportRejected(f"{name}: not a DMARC aggregate report (root <{root.tag}>, not <feedback>)")
    meta, policy = root.find("report_metadata"), root.find("policy_published")
    rows = []
    for rec in root.findall("record"):
        row, ids, auth = rec.find("row"), rec.find("identifiers"), rec.find("auth_results")
        evaluated = row.find("policy_evaluated") if row is not None else None
        rows.append(DmarcRow(
            source_ip=_text(row, "source_ip"),
            count=max(0, _int(row, "count")),
            disposition=_text(evaluated, "disposition", "none").lower(),
            dkim_aligned=_text(evaluated, "dkim").lower() == "pass",
            spf_aligned=_text(evaluated, "spf").lower() == "pass",
            header_from=_text(ids, "header_from").lower(),
            dkim=tuple((_text(d, "domain").lower(), _text(d, "result").lower())
                       for d in (auth.findall("dkim") if auth is not None else [])),
            spf=tuple((_text(s, "domain").lower(), _text(s, "result").lower())
                      for s in (auth.findall("spf") if auth is not None else [])),
        ))
    return DmarcReport(
        org_name=_text(meta, "org_name"), report_id=_text(meta, "report_id"),
        begin=_int(meta, "date_range/begin"), end=_int(meta, "date_range/end"),
        domain=_text(policy, "domain").lower(), policy_p=_text(policy, "p", "none").lower(),
        policy_pct=_int(policy, "pct", 100), rows=tuple(rows))


__all__ = ["DmarcReport", "DmarcRow", "parse_dmarc"]
