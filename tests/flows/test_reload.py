"""SIGHUP reloads the configuration: a changed threshold or feature setting applies to the next message,
no restart; a change that needs one is named."""

import signal
import time
from collections.abc import Callable
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


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_sighup_applies_a_feature_setting_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    # [spam.external] is read when the spam feature is built: a reload builds the features again, so the
    # [EXTERNAL] subject tag starts with the next message, no restart (it used to need one).
    with DnsTestServer() as dns:
        d = Deployment(tmp_path, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
                                                    ("antivirus", "stale_policy"): '"alarm_only"'})
        d.init()
        d.start()
        try:
            assert d.send("carol@partner.example", ["postmaster@example.test"],
                          business_message(to="postmaster@example.test", subject="before")) == {}
            [first] = d.wait_delivered("postmaster@example.test", 1)
            assert b"[EXTERNAL]" not in first
            config = d.config.read_text()
            d.config.write_text(config.replace("max_recipients = 100", "max_recipients = 50")
                                + '\n[spam.external]\nmode = "subject"\n')
            assert d.proc is not None
            d.proc.send_signal(signal.SIGHUP)
            assert _wait_for(lambda: "configuration reloaded" in d.log())
            assert "apply only after a restart: smtp.max_recipients" in d.log()
            assert d.send("carol@partner.example", ["postmaster@example.test"],
                          business_message(to="postmaster@example.test", subject="after")) == {}
            copies = d.wait_delivered("postmaster@example.test", 2)
            assert any(b"Subject: [EXTERNAL] after" in c for c in copies), copies
        finally:
            d.stop()
