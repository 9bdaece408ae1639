"""TLS-RPT (RFC 8460): sessions recorded by real deliveries, the daily report's counts, its mail form and
its HTTPS POST to a test server."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from pathlib import Path

from outbound_client import MESSAGE, deliver, make_tls
from outbound_world import World

from mailbastion.outbound.mta_sts import https_context
from mailbastion.outbound.tlsrpt_report import TlsReportSender, parse_tlsrpt_record
from mailbastion.outbound.tlsrpt_store import utc_day
from mailbastion.testing.mx_sink import MxSink


async def test_daily_report_counts_sessions_and_reaches_every_rua(world: World, tmp_path: Path) -> None:
    tls, dns = make_tls(world, tmp_path)
    good = await MxSink.start(world.ips["mx.stsgood.test"], world.mx_port, world.certs["mx.stsgood.test"].chain_path,
                              world.certs["mx.stsgood.test"].key_path, hostname="mx.stsgood.test")
    bad = await MxSink.start(world.ips["mx.sts.test"], world.mx_port, world.certs["mx.sts.test"].chain_path,
                             world.certs["mx.sts.test"].key_path, hostname="mx.sts.test")
    try:
        for _ in range(3):
            assert (await deliver(tls, dns, "bob@stsgood.test", MESSAGE, port=world.mx_port)).status == "delivered"
        for _ in range(2):
            assert (await deliver(tls, dns, "bob@sts.test", MESSAGE, port=world.mx_port)).status == "deferred"
    finally:
        await good.stop()
        await bad.stop()

    mails: list[tuple[str, list[str], bytes]] = []

    async def mail(sender: str, rcpts: list[str], message: bytes) -> None:
        mails.append((sender, rcpts, message))

    assert tls.reports is not None
    sender = TlsReportSender(tls.reports, dns, mail=mail, organization="Ours Inc.",
                             contact="mailto:postmaster@ours.test", mail_from="tls-reports@ours.test",
                             submitter="ours.test", https_context=https_context(world.ca.cert_path),
                             https_port=world.web.port)
    posts_before = len(world.web.posts)
    results = await sender.send_day(utc_day())
    assert sorted((r.domain, r.rua.split(":")[0], r.ok) for r in results) == [
        ("sts.test", "mailto", True), ("stsgood.test", "https", True), ("stsgood.test", "mailto", True)]

    # The HTTPS POST: gzip'd JSON, application/tlsrpt+gzip (RFC 8460 §5.4).
    host, path, headers, body = world.web.posts[posts_before]
    assert (host, path, headers["content-type"]) == ("tlsrpt.stsgood.test", "/v1/report", "application/tlsrpt+gzip")
    report = json.loads(gzip.decompress(body))
    [policy] = report["policies"]
    assert policy["policy"]["policy-type"] == "sts" and policy["policy"]["policy-domain"] == "stsgood.test"
    assert policy["policy"]["mx-host"] == ["mx.stsgood.test"]
    assert policy["summary"] == {"total-successful-session-count": 3, "total-failure-session-count": 0}
    assert report["date-range"]["start-datetime"].endswith("T00:00:00Z") and report["organization-name"] == "Ours Inc."

    # The mail to sts.test: multipart/report; report-type="tlsrpt" with the gzip'd report (RFC 8460 §5.3).
    [(frm, rcpts, raw)] = [m for m in mails if m[1] == ["tlsrpt@sts.test"]]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == "sts.test" and msg["TLS-Report-Submitter"] == "ours.test"
    assert msg["Subject"].startswith("Report Domain: sts.test Submitter: ours.test Report-ID: <")
    [part] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/tlsrpt+gzip"]
    name = part.get_filename()
    assert name.startswith("ours.test!sts.test!") and name.endswith(".json.gz") and name.count("!") == 4
    sts_report = json.loads(gzip.decompress(part.get_content()))
    [p] = sts_report["policies"]
    assert p["summary"] == {"total-successful-session-count": 0, "total-failure-session-count": 2}
    [detail] = p["failure-details"]
    assert detail["result-type"] == "certificate-not-trusted" and detail["failed-session-count"] == 2
    assert detail["receiving-mx-hostname"] == "mx.sts.test" and detail["receiving-ip"] == world.ips["mx.sts.test"]
    assert detail["sending-mta-ip"].startswith("127.") and detail["receiving-mx-helo"] == "mx.sts.test"

    # Run again (a retried daily task): nothing is sent twice.
    assert await sender.send_day(utc_day()) == [] and len(world.web.posts) == posts_before + 1


def test_tlsrpt_record_parsing() -> None:
    assert parse_tlsrpt_record(["v=TLSRPTv1; rua=mailto:a@b.example,https://r.example/x"]) == [
        "mailto:a@b.example", "https://r.example/x"]
    assert parse_tlsrpt_record(["v=spf1 -all"]) == []
    assert parse_tlsrpt_record(["v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"]) == []  # two: none
    assert parse_tlsrpt_record(["v=TLSRPTv1;rua=ftp://x, mailto:a@b"]) == ["mailto:a@b"]
