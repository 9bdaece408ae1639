"""`serve --role gateway` with the relay listener and SMTP acceptor processes: the relay listener runs in the
parent (with the queue manager) on a policy stack of its own, applies a reload, and the role still holds
no directory, password or mailbox code (the self-check of tests/apps/test_roles.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from mailbastion.apps.selfcheck import GATEWAY_MUST_NOT_LOAD
from mailbastion.config import load_settings
from mailbastion.core.outcome import DeliveryOutcome
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.delivery.relay_client import relay_agent_from_settings
from mailbastion.dns.resolver import DnsResolver
from mailbastion.testing.av import WRAPPINGS
from mailbastion.testing.clamd import EICAR
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

SUBJECT = b"MINUTES OF THE MEETING TODAY"


def message(subject: bytes = b"minutes") -> bytes:
    return (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: " + subject + b"\r\nMessage-ID: <"
            + str(time.time_ns()).encode() + b"@example.test>\r\nDate: " + formatdate().encode() + b"\r\n\r\nhello\r\n")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with DnsTestServer() as dns:
        d = Deployment(tmp_path_factory.mktemp("gw-role") / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("server", "workers"): "2", ("relay_in", "listen"): f'["127.0.0.1:{free_port()}"]',
        })
        d.init()
        d.start(role="gateway")
        try:
            yield d
        finally:
            d.stop()


def relay(d: Deployment, msg: bytes) -> DeliveryOutcome:
    settings = load_settings(d.config)
    agent = relay_agent_from_settings(settings, DnsResolver(["127.0.0.1"], port=9, timeout=1))
    request = DeliveryRequest("", "alice@example.test", (DeliveryRecipient("bob@remote.test"),), msg)

    async def go() -> DeliveryOutcome:
        try:
            return (await agent.deliver(request))["bob@remote.test"]
        finally:
            await agent.close()

    return asyncio.run(go())


def wait_log(d: Deployment, text: str, since: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in d.log()[since:]:
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{d.log()[-3000:]}"
        time.sleep(0.1)


def test_the_relay_listener_checks_outbound_mail_beside_acceptor_processes(gateway: Deployment) -> None:
    assert "SMTP relay (internal)" in gateway.log()
    assert relay(gateway, message()).reply.code == 250
    eicar = relay(gateway, WRAPPINGS["plain_attachment"](EICAR, "eicar.com"))
    assert eicar.reply.code == 554 and "malware detected" in eicar.reply.text


def test_a_reload_applies_new_scores_to_the_outbound_checks(gateway: Deployment) -> None:
    assert relay(gateway, message(SUBJECT)).reply.code == 250
    local = gateway.root / "local.d"
    local.mkdir(exist_ok=True)
    (local / "scores.toml").write_text("[actions]\nquarantine = 7.0\nreject = 20.0\n"
                                       "[symbols.SUBJECT_ALL_CAPS]\nweight = 8.0\n")
    since = len(gateway.log())
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGHUP)
    wait_log(gateway, "configuration reloaded", since)
    refused = relay(gateway, message(SUBJECT))
    assert refused.reply.code == 554 and "looks like spam" in refused.reply.text, refused


def test_the_gateway_with_its_relay_still_holds_no_directory_password_or_mailbox(gateway: Deployment) -> None:
    assert gateway.proc is not None
    asked = time.time()
    gateway.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 60
    reports: list[dict[str, object]] = []
    while len(reports) < 3:  # the parent (relay listener, queue) and both acceptors
        assert time.monotonic() < deadline, "self-check reports not written"
        time.sleep(0.1)
        reports = []
        for path in (gateway.root / "run").glob("selfcheck-gateway-*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data["time"] >= asked:
                reports.append(data)
    parent = [r for r in reports if "mailbastion.gateway.relay_handler" in r["modules"]]  # type: ignore[operator]
    assert parent, "the relay listener runs in one of the processes"
    for report in reports:
        modules = report["modules"]
        assert isinstance(modules, list)
        assert not {m for m in modules if any(m == p or m.startswith(p + ".") for p in GATEWAY_MUST_NOT_LOAD)}
        files = report["open_files"]
        assert isinstance(files, list)
        assert not [f for f in files if Path(f).name.startswith(("directory.db", "audit.db", "ca.key"))
                    or "/mail/" in f], files
