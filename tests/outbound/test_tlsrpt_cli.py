"""`mailbastion reports tls-send`: a finished day's recorded sessions become an RFC 8460 report committed
to the spool for the destination's mailto: rua (the loopback DNS server publishes _smtp._tls)."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import time
from pathlib import Path

from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.outbound.requirement import ReportPolicy
from mailbastion.outbound.tlsrpt_store import TlsRptStore, utc_day
from mailbastion.spool.layout import QueueState, SpoolLayout
from mailbastion.testing.dns_server import DnsTestServer


def test_tls_send_commits_reports_to_the_spool_once(tmp_path: Path) -> None:
    yesterday = time.time() - 86400
    with DnsTestServer() as dns:
        dns.add("_smtp._tls.dest.test", "TXT", "v=TLSRPTv1; rua=mailto:tlsrpt@dest.test")
        config = tmp_path / "mailbastion.toml"
        config.write_text(f'[server]\nhostname = "mx.ours.test"\n[dns]\nnameservers = ["{dns.host}"]\n'
                          f"port = {dns.port}\n[outbound]\ntls_rpt_organization = \"Ours\"\n", encoding="utf-8")
        store = TlsRptStore(tmp_path / "tlsrpt.db", clock=lambda: yesterday)
        policy = ReportPolicy("no-policy-found", "dest.test")
        for _ in range(4):
            store.record(policy, result_type=None)
        store.record(policy, result_type="starttls-not-supported", receiving_mx="mx.dest.test")
        store.record(ReportPolicy("no-policy-found", "silent.test"), result_type=None)  # no rua: no report
        runner = CliRunner()
        result = runner.invoke(main_group, ["reports", "tls-send", "-c", str(config)])
        assert result.exit_code == 0, result.output
        assert "sent dest.test -> mailto:tlsrpt@dest.test" in result.stdout
        again = runner.invoke(main_group, ["reports", "tls-send", "-c", str(config)])
        assert again.exit_code == 0 and "no report to send" in again.stdout
        bad = runner.invoke(main_group, ["reports", "tls-send", "--day", utc_day(), "-c", str(config)])
        assert bad.exit_code == 1 and "not over yet" in bad.stderr
    layout = SpoolLayout(tmp_path / "spool")
    [queue_id] = layout.ids(QueueState.INCOMING)
    record = layout.load(QueueState.INCOMING, queue_id)
    assert record.sender == "noreply-tls-reports@mx.ours.test"
    assert [r.address for r in record.recipients] == ["tlsrpt@dest.test"]
    # The spool's own reader (one API before the queue rewrite, another after it).
    reader = getattr(layout, "message", None)
    raw = reader(QueueState.INCOMING, queue_id) if reader else layout.message_path(
        QueueState.INCOMING, queue_id).read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_param("report-type") == "tlsrpt" and msg["TLS-Report-Domain"] == "dest.test"
    [part] = [p for p in msg.iter_attachments() if p.get_content_type() == "application/tlsrpt+gzip"]
    report = json.loads(gzip.decompress(part.get_content()))
    assert report["organization-name"] == "Ours" and report["contact-info"] == "mailto:postmaster@ours.test"
    assert report["policies"][0]["summary"] == {"total-successful-session-count": 4,
                                                "total-failure-session-count": 1}
