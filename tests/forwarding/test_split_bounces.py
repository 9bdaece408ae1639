"""A burst of bounces on a split deployment: the gateway (its own process, with the queue manager and the sent
log) matches the DSNs to what erin sent, and the internal host (another process: the MDA, the directory and
submission with its sending meter) suspends her. The match crosses the mutual-TLS LMTP link as XBOUNCEOF
with the DSN itself; nothing else connects the two processes. Both are `mailbastion serve` from one
configuration, as tests/submission/test_outbox_flow.py starts them."""

from __future__ import annotations

import smtplib
from email.utils import make_msgid
from pathlib import Path

import pytest
from forwarding_world import ERIN, dsn, send_noted
from submission_world import DOMAIN, PASSWORD, World, deployment_with_remote_mx, message, publish_dkim, wait


def test_bounces_matched_by_the_gateway_suspend_sending_on_the_internal_host(tmp_path: Path) -> None:
    with deployment_with_remote_mx(tmp_path, (ERIN,), {("submission.hijack", "bounces"): "3"}) as (d, dns, sink):
        publish_dkim(d, dns)
        d.start(role="internal")
        try:
            with d.also_serving("gateway"):
                world = World(d, dns, sink)
                ids = send_noted(world, "erin's split note", 3)
                # Backscatter (DSNs about messages we never sent) reaches her mailbox and counts for nothing.
                for _ in range(3):
                    assert d.send("", [ERIN], dsn(make_msgid(domain=DOMAIN))) == {}
                d.wait_delivered(ERIN, 3, timeout=60)
                assert not world.log_has("lmtp bounce queue_id=")
                world.submit(message("still allowed", sender=ERIN), user=ERIN, sender=ERIN)
                for message_id in ids:
                    assert d.send("", [ERIN], dsn(message_id)) == {}
                wait(lambda: world.log_has(f"submission.alarm account={ERIN} sign=bounces"), "the hijack alarm")
                d.wait_delivered(ERIN, 6, timeout=60)
                log_text = d.log()
                assert log_text.count("lmtp bounce queue_id=") == 3 and f"of={ERIN}" in log_text  # over the link
                with world.connect() as s:
                    s.login(ERIN, PASSWORD)
                    with pytest.raises(smtplib.SMTPSenderRefused) as err:
                        s.sendmail(ERIN, ["bob@remote.test"], message("after the burst", sender=ERIN))
                    assert err.value.smtp_code == 550 and b"suspected hijack (bounces)" in err.value.smtp_error
        finally:
            d.stop()
