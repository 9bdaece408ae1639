"""Users send mail through a real `mailbastion serve` (all-in-one): submission on the STARTTLS and the
implicit-TLS port, AUTH against the directory, the sender bound to the login, DKIM signing with the keys
`dns check` switched on, the relay hop to the gateway (mutual TLS), the gateway's outbound checks, and
delivery to a remote MX of ours found through the loopback DNS."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from submission_world import ALICE, DOMAIN, PASSWORD, World, deployment_with_remote_mx, message, publish_dkim, wait

from mailbastion.testing.av import WRAPPINGS
from mailbastion.testing.clamd import EICAR

BOB = f"bob@{DOMAIN}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("submission-flow")
    with deployment_with_remote_mx(tmp, (ALICE, BOB), {
            ("login", "max_failures_per_account"): "3", ("login", "lockout_seconds"): "600",
            ("submission.hijack", "fanout_recipients"): "8", ("submission.hijack", "new_clients"): "3",
            ("submission.limits", "recipients_per_hour"): "20",
    }) as (d, dns, sink):
        d.mb("account", "alias", "add", f"sales@{DOMAIN}", ALICE)
        selectors = publish_dkim(d, dns)
        assert len(selectors) == 2, selectors  # rsa-sha256 and ed25519-sha256, both live now
        d.start()
        try:
            yield World(d, dns, sink)
        finally:
            d.stop()


def _at_sink(world: World, subject: str) -> bytes:
    return world.wait_at_sink(lambda m: f"Subject: {subject}".encode() in m.content).content  # type: ignore[no-any-return]


@pytest.mark.parametrize("port", ["starttls", "implicit"])
def test_sent_message_reaches_the_remote_mx_signed_twice(world: World, port: str) -> None:
    subject = f"quarterly report via {port}"
    assert world.submit(message(subject), port=port) == {}
    got = world.wait_at_sink(lambda m: f"Subject: {subject}".encode() in m.content)
    assert got.mail_from == ALICE and got.rcpt_tos == ["bob@remote.test"]
    results = world.dkim_verify(got.content)
    assert sorted(results) == [(b"ed25519-sha256", True), (b"rsa-sha256", True)], results


def test_auth_is_not_offered_nor_accepted_before_tls(world: World) -> None:
    with world.connect(tls=False) as s:
        assert not s.has_extn("auth")
        code, text = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABDb3JyZWN0LUhvcnNlLUJhdHRlcnktOQ==")
        assert code in (530, 538), (code, text)
        code, _ = s.docmd("MAIL", f"FROM:<{ALICE}>")
        assert code == 530
    with world.connect() as s:  # after STARTTLS: offered
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]


def test_mail_without_login_is_refused(world: World) -> None:
    with world.connect() as s:
        code, text = s.docmd("MAIL", f"FROM:<{ALICE}>")
        assert code == 530 and b"Authentication required" in text


def test_wrong_and_unknown_get_one_reply_then_the_account_is_throttled(world: World) -> None:
    replies = []
    for user, pw in ((BOB, "wrong-1"), ("nobody@example.test", "wrong-2"), (BOB, "wrong-3")):
        with world.connect() as s, pytest.raises(smtplib.SMTPAuthenticationError) as err:
            s.login(user, pw)
        replies.append((err.value.smtp_code, err.value.smtp_error))
    assert replies[0] == replies[1] == (535, b"5.7.8 Authentication credentials invalid")
    # BOB has 3 failures: locked out now, even with the right password, until the lockout ends.
    with world.connect() as s, pytest.raises(smtplib.SMTPAuthenticationError) as err:
        s.login(BOB, PASSWORD)
    assert err.value.smtp_code == 454 and b"4.7.0" in err.value.smtp_error
    assert wait(lambda: "login.locked_out service=submission account=" + BOB in world.d.log(), "the lockout log line")
    locked = [r for r in _audit(world, BOB) if r["action"] == "login.locked_out"]
    assert locked and locked[0]["actor"] == "submission:throttle", locked


def test_sender_must_be_the_login_an_alias_or_a_grant(world: World) -> None:
    with world.connect() as s:
        s.login(ALICE, PASSWORD)
        code, text = s.docmd("MAIL", f"FROM:<{BOB}>")
        assert code == 553 and b"5.7.1" in text and b"not owned by user alice@example.test" in text
        s.rset()
        # The envelope is hers, the From header is not: refused at the end of DATA.
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail(ALICE, ["bob@remote.test"], message("spoof", sender=BOB))
        assert err.value.smtp_code == 550 and b"5.7.1" in err.value.smtp_error
    # An alias of hers is hers; with +tag too.
    subject = "from the sales alias"
    world.submit(message(subject, sender=f"sales+q4@{DOMAIN}"), sender=f"sales@{DOMAIN}")
    assert world.dkim_verify(_at_sink(world, subject))[0][1]
    # A grant makes BOB's address hers to send as; revoking it takes it back.
    world.d.mb("account", "send-as", ALICE, "--grant", BOB, "--reason", "assistant")
    subject = "on behalf of Bob"
    world.submit(message(subject, sender=BOB), sender=BOB)
    _at_sink(world, subject)
    world.d.mb("account", "send-as", ALICE, "--revoke", BOB, "--reason", "assistant left")
    with pytest.raises(smtplib.SMTPSenderRefused):
        world.submit(message("again on behalf of Bob", sender=BOB), sender=BOB)


def test_eicar_outbound_is_refused_with_the_gateways_reply(world: World) -> None:
    raw = WRAPPINGS["plain_attachment"](EICAR, "eicar.com").replace(b"sender@example.net", ALICE.encode())
    with pytest.raises(smtplib.SMTPDataError) as err:
        world.submit(raw)
    assert err.value.smtp_code == 554 and b"malware detected" in err.value.smtp_error
    assert not [m for m in world.sink.received if EICAR in m.content]


CAROL, DAVE = f"carol@{DOMAIN}", f"dave@{DOMAIN}"


def _audit(world: World, subject: str) -> list[dict[str, object]]:
    import json

    out = world.d.mb("audit-log", "list", "--json", "--subject", subject, "--limit", "50")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_fanout_suspends_sending_alerts_postmaster_and_unsuspend_lifts_it(world: World) -> None:
    world.d.mb("account", "add", CAROL, "--password-stdin", input=f"{PASSWORD}\n")
    postmaster = f"postmaster@{DOMAIN}"
    alerts_before = len(world.d.delivered(postmaster))
    rcpts = [f"r{i}@remote.test" for i in range(8)]  # hijack.fanout_recipients = 8 in this deployment
    with world.connect() as s:
        s.login(CAROL, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail(CAROL, rcpts, message("buy now", sender=CAROL))
        assert err.value.smtp_code == 550 and b"Sending is suspended for carol@example.test" in err.value.smtp_error
        code, text = s.docmd("MAIL", f"FROM:<{CAROL}>")  # the next transaction too
        assert code == 550 and b"5.7.1" in text and b"suspected hijack (fanout)" in text
    assert not [m for m in world.sink.received if b"Subject: buy now" in m.content]
    # Audited with why; the alarm line; postmaster told through our own path.
    audited = _audit(world, CAROL)
    found = [r for r in audited if r["action"] == "account.sending_suspended"]
    assert len(found) == 1, audited
    record = found[0]
    assert record["actor"] == "submission:hijack" and "8 distinct recipients" in str(record["reason"])
    assert "submission.alarm account=carol@example.test sign=fanout" in world.d.log()
    alert = world.d.wait_delivered(postmaster, alerts_before + 1)[-1]
    assert b"sending suspended for carol@example.test" in alert and b"mailbastion account unsuspend" in alert
    assert f"{CAROL}  since" in world.d.mb("account", "sending")
    # Logging in and receiving still work.
    with world.connect() as s:
        assert s.login(CAROL, PASSWORD)[0] == 235
    world.d.send("someone@outside.example", [CAROL], b"From: someone@outside.example\r\nSubject: hi\r\n\r\nhi\r\n")
    world.d.wait_delivered(CAROL, 1)
    # Lifted by the administrator, with a reason: she sends again.
    assert "sending resumed for carol@example.test" in world.d.mb("account", "unsuspend", CAROL, "--reason",
                                                                    "password reset after phishing")
    assert [r for r in _audit(world, CAROL) if r["action"] == "account.sending_unsuspended"]
    world.submit(message("back in business", sender=CAROL), user=CAROL, sender=CAROL)
    _at_sink(world, "back in business")
    err_text = world.d.mb("account", "unsuspend", CAROL, "--reason", "again", check=False)
    assert "resumed" not in err_text


def test_logins_from_many_new_networks_suspend_sending(world: World) -> None:
    world.d.mb("account", "add", DAVE, "--password-stdin", input=f"{PASSWORD}\n")
    # hijack.new_clients = 3 here: home network, then three new /24s within the window.
    for n, source in enumerate(("127.0.10.1", "127.0.11.1", "127.0.12.1", "127.0.13.1")):
        s = smtplib.SMTP("127.0.0.1", world.d.submission_port, timeout=60, source_address=(source, 0))
        try:
            s.ehlo("laptop")
            s.starttls(context=world.tls_context())
            s.ehlo("laptop")
            s.login(DAVE, PASSWORD)  # logging in is never refused for this
            code, text = s.docmd("MAIL", f"FROM:<{DAVE}>")
            s.docmd("RSET")
        finally:
            s.quit()
        if n < 3:
            assert code == 250, (n, code, text)
    assert code == 550 and b"suspected hijack (new_networks)" in text
    (record,) = [r for r in _audit(world, DAVE) if r["action"] == "account.sending_suspended"]
    assert "127.0.13.0/24" in str(record["reason"])


def test_limits_refuse_with_a_temporary_reply(world: World) -> None:
    erin = f"erin@{DOMAIN}"
    world.d.mb("account", "add", erin, "--password-stdin", input=f"{PASSWORD}\n")
    rcpts = [f"team{i}@remote.test" for i in range(7)]  # under the fan-out sign (8 distinct)
    with world.connect() as s:
        s.login(erin, PASSWORD)
        for i in range(2):  # submission.limits.recipients_per_hour = 20 here
            assert s.sendmail(erin, rcpts, message(f"limit {i}", sender=erin)) == {}
        assert s.docmd("MAIL", f"FROM:<{erin}>")[0] == 250
        codes = [s.docmd("RCPT", f"TO:<{r}>") for r in rcpts]
    assert [c for c, _ in codes[:6]] == [250] * 6
    assert codes[6][0] == 450 and b"4.7.1" in codes[6][1] and b"20 recipients per hour" in codes[6][1]
    assert "account.sending_suspended" not in world.d.mb("audit-log", "list", "--subject", erin)


def _selectors(raw: bytes) -> set[str]:
    import re

    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    return {m.decode() for m in re.findall(rb"^DKIM-Signature:.*?\bs=([A-Za-z0-9_.-]+)", head, re.MULTILINE | re.IGNORECASE)}


def test_rotation_signs_with_the_new_selector_only_once_dns_check_sees_it(world: World) -> None:
    from mailbastion.auth.keys import KeyStore

    store = KeyStore(world.d.root / "dkim")
    old = {k.selector for k in store.active(DOMAIN)}
    world.d.mb("dkim", "rotate", DOMAIN)
    new = {k.selector for k in store.pending(DOMAIN)}
    assert len(new) == 2 and not new & old
    world.submit(message("during the rotation"))
    during = _at_sink(world, "during the rotation")
    assert _selectors(during) == old  # the new keys are not published yet: the old ones keep signing
    assert all(ok for _, ok in world.dkim_verify(during))
    world.d.mb("dns", "check", DOMAIN, check=False)  # not published yet: nothing switches
    assert {k.selector for k in store.active(DOMAIN)} == old
    for key in store.pending(DOMAIN):
        world.dns.add(key.record_name, "TXT", key.record)
    world.d.mb("dns", "check", DOMAIN, check=False)
    assert {k.selector for k in store.active(DOMAIN)} == new
    world.submit(message("after the rotation"))
    after = _at_sink(world, "after the rotation")
    assert _selectors(after) == new
    assert sorted(ok for _, ok in world.dkim_verify(after)) == [True, True]
    assert all(ok for _, ok in world.dkim_verify(during))  # retired records stay published: still verifies


def test_an_inactive_account_cannot_log_in(world: World) -> None:
    frank = f"frank@{DOMAIN}"
    world.d.mb("account", "add", frank, "--password-stdin", input=f"{PASSWORD}\n")
    with world.connect() as s:
        assert s.login(frank, PASSWORD)[0] == 235
    world.d.mb("account", "state", frank, "suspended", "--reason", "on leave")
    with world.connect("implicit") as s, pytest.raises(smtplib.SMTPAuthenticationError) as err:
        s.login(frank, PASSWORD)  # the right password: the same reply as a wrong one
    assert (err.value.smtp_code, err.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
