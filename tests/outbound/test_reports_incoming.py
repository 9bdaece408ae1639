"""Incoming DMARC aggregate and TLS-RPT reports in the reports@ Maildir, read by the real command line:
summaries, and hostile attachments (zip and gzip bombs, XXE, billion laughs, nested archives) refused
with a clear line while the good reports are still counted."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.outbound.requirement import ReportPolicy
from mailbastion.outbound.tlsrpt_report import build_report, report_mail
from mailbastion.outbound.tlsrpt_store import DaySessions, FailureDetail
from mailbastion.reports import Limits, ReportRejected, parse_dmarc, report_payloads

NOW = time.time()
DAY = time.strftime("%Y-%m-%d", time.gmtime(NOW - 86400))


def dmarc_xml(org: str, rows: list[tuple[str, int, str, str, str]], *, begin: int | None = None,
              domain: str = "ours.test", ns: str = "") -> bytes:
    begin = int(NOW - 86400) if begin is None else begin
    recs = "".join(f"""
  <record>
    <row><source_ip>{ip}</source_ip><count>{n}</count>
      <policy_evaluated><disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated>
    </row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><dkim><domain>{domain}</domain><result>{dkim}</result></dkim>
      <spf><domain>{domain}</domain><result>{spf}</result></spf></auth_results>
  </record>""" for ip, n, disp, dkim, spf in rows)
    xmlns = f' xmlns="{ns}"' if ns else ""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback{xmlns}>
  <report_metadata><org_name>{org}</org_name><email>noreply@{org}</email><report_id>{org}-1</report_id>
    <date_range><begin>{begin}</begin><end>{begin + 86399}</end></date_range></report_metadata>
  <policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><pct>100</pct>
  </policy_published>{recs}
</feedback>""".encode()


def mail_with(payload: bytes, filename: str, ctype: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "noreply@reporter.test"
    msg["To"] = "dmarc-reports@ours.test"
    msg["Subject"] = f"Report {filename}"
    msg.set_content("report attached")
    main, sub = ctype.split("/")
    msg.add_attachment(payload, maintype=main, subtype=sub, filename=filename)
    return msg.as_bytes()


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "mailbastion.toml"
    config.write_text('[server]\nhostname = "mx.ours.test"\n[mailbox]\nroot = "mail"\n', encoding="utf-8")
    maildir = tmp_path / "mail" / "ours.test" / "reports"
    for sub in ("new", "cur", "tmp", ".Junk/new", ".Junk/cur", ".Junk/tmp"):
        (maildir / sub).mkdir(parents=True)
    return config, maildir


def drop(maildir: Path, name: str, raw: bytes, *, junk: bool = False) -> None:
    (maildir / (".Junk/new" if junk else "new") / name).write_bytes(raw)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main_group, ["reports", *args, "-c", str(config)])
    return result.exit_code, result.stdout, result.stderr


def test_dmarc_reports_are_summarised_per_source(site: tuple[Path, Path]) -> None:
    config, maildir = site
    drop(maildir, "1", mail_with(gzip.compress(dmarc_xml("big.test", [
        ("192.0.2.10", 120, "none", "pass", "pass"), ("198.51.100.7", 4, "quarantine", "fail", "fail")])),
        "big.test!ours.test!1!2.xml.gz", "application/gzip"))
    other = dmarc_xml("other.test", [("192.0.2.10", 30, "none", "fail", "pass")],
                      ns="urn:ietf:params:xml:ns:dmarc-2.0")
    drop(maildir, "2", mail_with(zipped("r.xml", other), "other.test!ours.test.zip", "application/zip"),
         junk=True)  # in Junk: still read
    drop(maildir, "3", mail_with(dmarc_xml("old.test", [("203.0.113.1", 9, "reject", "fail", "fail")],
                                           begin=int(NOW - 40 * 86400)), "old.xml", "text/xml"))
    code, out, err = run(config, "dmarc", "--json", "--days", "7")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["reports"], summary["messages"]) == (2, 154)
    [good, bad] = sorted(summary["sources"], key=lambda s: s["source_ip"])
    assert (good["source_ip"], good["messages"]) == ("192.0.2.10", 150)
    assert (good["spf_aligned"], good["dkim_aligned"]) == (150, 120)
    assert (good["dmarc_pass"], good["dmarc_fail"], good["reporters"]) == (150, 0, ["big.test", "other.test"])
    assert (bad["dmarc_fail"], bad["disposition"]) == (4, {"quarantine": 4})
    assert summary["policies"] == {"ours.test": "p=quarantine pct=100"}
    code, out, _ = run(config, "dmarc", "--days", "60")  # the table, the old report included
    assert code == 0 and "203.0.113.1" in out and "198.51.100.7" in out and "4 FAIL" in out


def test_our_own_tlsrpt_reports_read_back_and_failures_per_sending_mta(site: tuple[Path, Path]) -> None:
    config, maildir = site
    policy = ReportPolicy("sts", "ours.test", ("version: STSv1",), ("mx.ours.test",)).as_json()
    sessions = [DaySessions("ours.test", policy,
                            95, (FailureDetail("certificate-expired", "192.0.2.50", "mx.ours.test", "mx.ours.test",
                                               "203.0.113.9", 5),))]
    report = build_report(DAY, "ours.test", sessions, organization="Sender Org", contact="mailto:a@sender.test",
                          report_id="r1")
    drop(maildir, "t1", report_mail(report, domain="ours.test", submitter="sender.test", mail_from="r@sender.test",
                                    to="tls-reports@ours.test", day=DAY))
    code, out, err = run(config, "tls", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["policy_domains"] == {"ours.test": {"successes": 95, "failures": 5}}
    [mta] = summary["sending_mtas"]
    assert (mta["reporter"], mta["sending_ip"], mta["failures"], mta["result_types"]) == (
        "Sender Org", "192.0.2.50", 5, {"certificate-expired": 5})
    code, out, _ = run(config, "tls")
    assert code == 0 and "192.0.2.50" in out and "certificate-expired 5" in out


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>"""


def test_hostile_reports_are_refused_with_a_clear_line_and_the_rest_still_read(site: tuple[Path, Path]) -> None:
    config, maildir = site
    drop(maildir, "good", mail_with(gzip.compress(dmarc_xml("big.test", [("192.0.2.10", 7, "none", "pass", "pass")])),
                                    "ok.xml.gz", "application/gzip"))
    drop(maildir, "zipbomb", mail_with(zipped("bomb.xml", b"<" + b"\0" * (60 * 1024 * 1024)), "bomb.zip",
                                       "application/zip"))
    drop(maildir, "gzbomb", mail_with(gzip.compress(b" " * (60 * 1024 * 1024)), "bomb.xml.gz", "application/gzip"))
    drop(maildir, "xxe", mail_with(XXE, "xxe.xml", "text/xml"))
    drop(maildir, "laughs", mail_with(LAUGHS, "laughs.xml", "text/xml"))
    drop(maildir, "nested", mail_with(zipped("inner.zip", zipped("r.xml", b"<feedback/>")), "outer.zip",
                                      "application/zip"))
    drop(maildir, "broken", mail_with(b"\x1f\x8b\x08\x00garbage", "broken.xml.gz", "application/gzip"))
    code, out, err = run(config, "dmarc", "--json")
    assert code == 1
    summary = json.loads(out)
    assert (summary["reports"], summary["messages"]) == (1, 7)
    problems = {Path(p["file"]).name: p["error"] for p in summary["problems"]}
    assert set(problems) == {"zipbomb", "gzbomb", "xxe", "laughs", "nested", "broken"}
    assert "compression bomb" in problems["zipbomb"] and "compression bomb" in problems["gzbomb"]
    assert "DTD" in problems["xxe"] and "DTD" in problems["laughs"] and "root:" not in out
    assert "inside the zip" in problems["nested"] and "gzip" in problems["broken"]
    assert "Traceback" not in err and "skipped" in err and "could not be read" in err


def test_limits_and_parsers_directly() -> None:
    with pytest.raises(ReportRejected, match="compressed bytes"):
        report_payloads(mail_with(b"\x1f\x8b" + b"x" * 2000, "a.gz", "application/gzip"), Limits(max_compressed=1000))
    with pytest.raises(ReportRejected, match="not a DMARC aggregate report"):
        parse_dmarc(b"<html/>")
    with pytest.raises(ReportRejected, match="not well-formed"):
        parse_dmarc(b"<feedback>")


@pytest.mark.parametrize("field", ["Content-Type: application/gzip; name=", "Content-Disposition: attachment; filename="])
def test_a_header_nested_too_deep_is_refused_not_a_traceback(field: str) -> None:
    """Comments nested a thousand deep make the stdlib MIME parser recurse past Python's limit (RecursionError,
    which escaped to the report reader); the report is refused with a clear line like any hostile one."""
    raw = f"From: a@b.example\r\nSubject: Report\r\nMIME-Version: 1.0\r\n{field}{'(a ' * 2000}\r\n\r\nAAAA\r\n"
    with pytest.raises(ReportRejected, match="nests too deep"):
        report_payloads(raw.encode())


def test_no_report_mailbox_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[mailbox]\nroot = "mail"\n', encoding="utf-8")
    code, _, err = run(config, "tls")
    assert code == 1 and "no report mailbox" in err and "Traceback" not in err
