"""The Prometheus endpoint of a running server: messages by role and action, check latency, queue sizes, the
recipient map's age; off by default."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from split_kit import wait_for

from mailbastion import metrics
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

MESSAGE = (b"From: a@outside.example\r\nTo: alice@example.test\r\nSubject: counted\r\n"
           b"Message-ID: <m1@outside.example>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n")


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, int]]:
    port = free_port()
    with DnsTestServer() as dns:
        d = Deployment(tmp_path_factory.mktemp("metrics"), dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("server", "workers"): "2", ("metrics", "listen"): f'"127.0.0.1:{port}"'})
        d.init()
        d.mb("account", "add", "alice@example.test")
        d.start()
        try:
            yield d, port
        finally:
            d.stop()


def test_the_endpoint_counts_what_every_process_did(served: tuple[Deployment, int]) -> None:
    d, port = served
    d.send("a@outside.example", ["alice@example.test"], MESSAGE)
    wait_for("delivery to alice (INBOX or Junk)",
             lambda: d.delivered("alice@example.test") or d.delivered("alice@example.test", "Junk"), timeout=60)
    text = _scrape(port)
    # the acceptor processes counted the message, the parent the delivery (the all-in-one's queue manager hands
    # it to the MDA in its own process: stage "direct", not "lmtp"): one endpoint has both
    gateway = sum(_value(text, "mailbastion_messages_total", role="gateway", stage="data", action=a) or 0
                  for a in ("accept", "add_header", "junk", "quarantine"))
    assert gateway >= 1, text
    assert (_value(text, "mailbastion_messages_total", role="internal", stage="direct", action="delivered") or 0) >= 1
    assert _value(text, "mailbastion_messages_total", role="internal", stage="lmtp", action="delivered") is None
    assert (_value(text, "mailbastion_check_duration_seconds_count", check="recipient") or 0) >= 1
    for state in ("incoming", "active", "deferred", "hold", "corrupt"):
        assert _value(text, "mailbastion_queue_messages", state=state) is not None
    age = _value(text, "mailbastion_recipient_map_age_seconds")
    assert age is not None and 0 <= age < 3600
    assert (_value(text, "mailbastion_recipient_map_serial") or 0) > 0


def test_a_refused_recipient_is_counted_as_a_rejection(served: tuple[Deployment, int]) -> None:
    import smtplib

    d, port = served
    before = _value(_scrape(port), "mailbastion_messages_total", role="gateway", stage="rcpt", action="reject") or 0
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        d.send("a@outside.example", ["nobody@example.test"], MESSAGE)
    after = _value(_scrape(port), "mailbastion_messages_total", role="gateway", stage="rcpt", action="reject") or 0
    assert after == before + 1


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    d = Deployment(tmp_path).init()
    assert "[metrics]" not in d.config.read_text()
    from mailbastion.config import load_settings

    assert load_settings(d.config).metrics.listen == ""
    assert not metrics.is_enabled()
    metrics.message("gateway", "data", "accept")  # a no-op: nothing imported, nothing counted
    metrics.check_seconds("spf", 0.1)


def test_sources_are_measured_at_scrape_and_a_broken_one_is_left_out(tmp_path: Path) -> None:
    metrics.enable(tmp_path / "m")
    try:
        metrics.add_source(lambda: [metrics.Sample("queue_messages", "q", 7.0, {"state": "hold"})])

        def broken() -> list[metrics.Sample]:
            raise OSError("gone")

        metrics.add_source(broken)
        metrics.auth_failure("submission", "plain")
        endpoint = metrics.start_endpoint("127.0.0.1", 0)
        try:
            text = _scrape(endpoint.address[1])
        finally:
            endpoint.stop()
        assert _value(text, "mailbastion_queue_messages", state="hold") == 7.0
        assert _value(text, "mailbastion_auth_failures_total", service="submission", mechanism="PLAIN") == 1.0
    finally:
        metrics.disable()


def test_a_refused_submission_login_is_counted(served: tuple[Deployment, int]) -> None:
    import smtplib
    import ssl

    d, port = served
    labels = {"service": "submission", "mechanism": "PLAIN"}
    before = _value(_scrape(port), "mailbastion_auth_failures_total", **labels) or 0
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with smtplib.SMTP_SSL("127.0.0.1", d.submissions_port, context=ctx, timeout=60) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice@example.test", "not-her-password-at-all")
    assert (_value(_scrape(port), "mailbastion_auth_failures_total", **labels) or 0) == before + 1
