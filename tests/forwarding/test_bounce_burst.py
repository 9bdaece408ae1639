"""A burst of bounces from the Internet as a sign of a hijacked account, through a real `mailbastion serve`:
erin's messages reach the remote MX (the gateway's sent log remembers them), then DSNs (RFC 3464) for them
arrive over SMTP at our MX; at `[submission.hijack] bounces` (3 here) her sending is suspended, audited,
alarmed and postmaster told, as for a fan-out. DSNs about messages we never sent (backscatter) count for
nothing."""

from __future__ import annotations

import json
import smtplib
from email.utils import make_msgid

import pytest
from forwarding_world import ERIN, dsn, send_noted
from submission_world import DOMAIN, PASSWORD, World, message, wait


def _audit(world: World, subject: str) -> list[dict[str, object]]:
    out = world.d.mb("audit-log", "list", "--json", "--subject", subject, "--limit", "50")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_bounces_of_her_mail_from_the_internet_suspend_sending(world: World) -> None:
    ids = send_noted(world, "erin's note", 3)
    # Forged DSNs about messages we never sent: delivered to her like any mail, counted for nothing.
    for _ in range(3):
        assert world.d.send("", [ERIN], dsn(make_msgid(domain=DOMAIN))) == {}
    world.d.wait_delivered(ERIN, 3, timeout=60)
    world.submit(message("still allowed", sender=ERIN), user=ERIN, sender=ERIN)
    assert not world.log_has(f"submission.alarm account={ERIN}")
    # Real ones: below the threshold nothing happens, at it sending is suspended.
    for message_id in ids:
        assert world.d.send("", [ERIN], dsn(message_id)) == {}
    wait(lambda: world.log_has(f"submission.alarm account={ERIN} sign=bounces"), "the hijack alarm")
    assert world.log_has("outbound.bounce queue_id=")
    with world.connect() as s:
        s.login(ERIN, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            s.sendmail(ERIN, ["bob@remote.test"], message("after the burst", sender=ERIN))
        assert err.value.smtp_code == 550 and b"suspected hijack (bounces)" in err.value.smtp_error
    found = [r for r in _audit(world, ERIN) if r["action"] == "account.sending_suspended"]
    assert len(found) == 1 and "bounces from the Internet" in str(found[0]["reason"]), found
    postmaster = f"postmaster@{DOMAIN}"
    alert = wait(lambda: [m for m in world.d.delivered(postmaster) if f"sending suspended for {ERIN}".encode() in m],
                 "the alert to postmaster")
    assert b"mailbastion account unsuspend" in alert[0]
