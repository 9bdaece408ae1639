"""SIGHUP reloads the configuration: a changed threshold applies to the next message, no restart."""

import signal
import time
from pathlib import Path

from flow_messages import business_message

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


def test_sighup_applies_new_scores_and_keeps_serving(tmp_path: Path) -> None:
    with DnsTestServer() as dns:
        d = Deployment(tmp_path, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"'})
        d.init()
        d.start()
        try:
            assert d.send("carol@partner.example", ["postmaster@example.test"],
                          business_message(to="postmaster@example.test")) == {}
            # The site now rejects everything that scores 0 or more: an obvious change to observe.
            (tmp_path / "local.d" / "scores.toml").write_text("[actions]\nreject = -1000.0\n")
            assert d.proc is not None
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            code = 250
            while time.monotonic() < deadline:
                with d.smtp() as s:
                    s.mail("carol@partner.example")
                    s.rcpt("postmaster@example.test")
                    code, _ = s.data(business_message(to="postmaster@example.test"))
                if code != 250:
                    break
                time.sleep(0.5)
            assert code == 550
            assert "configuration reloaded" in d.log()
            # A broken edit is refused and the running configuration stays.
            (tmp_path / "local.d" / "scores.toml").write_text("[actions]\nexplode = 1\n")
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while "checks refused" not in d.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert d.proc.poll() is None
            assert "reload of the gateway's checks refused, keeping the running ones" in d.log()
            with d.smtp() as s:
                s.mail("carol@partner.example")
                assert s.rcpt("postmaster@example.test")[0] == 250
        finally:
            d.stop()
