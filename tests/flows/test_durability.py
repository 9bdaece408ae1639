"""Nothing lost, nothing delivered twice: a 250 is a promise, kept across SIGKILL.

While clients send a few hundred messages, the whole server is killed with SIGKILL several times and
restarted (mailbastion.testing.sigkill runs the scenario; bench/durability_bench.py is the long version).
At the end every message that got a 250 is in the mailbox (0 lost), and no queue entry reached the
mailbox twice (0 duplicates: the MDA delivers each queue id once). Messages the client sent again because
a kill cut its answer off arrive under two queue entries; that is SMTP's at-least-once, reported only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.sigkill import KillReport, durability_message, queue_entry_of, run_sigkill_scenario

MESSAGES = 300
KILLS = 4
CLIENTS = 4


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillReport]:
    root: Path = tmp_path_factory.mktemp("durability")
    with DnsTestServer() as dns:
        d = Deployment(root, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
                                                ("antivirus", "stale_policy"): '"alarm_only"'})
        d.init()
        d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
        d.start()
        try:
            yield run_sigkill_scenario(d, "alice@example.test", messages=MESSAGES, clients=CLIENTS, kills=KILLS)
        finally:
            d.stop()


@pytest.mark.slow
def test_every_acknowledged_message_survives_sigkill(killed: KillReport, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + killed.line())
    assert killed.acknowledged == MESSAGES
    assert killed.lost == [], f"acknowledged but never delivered: {killed.lost[:20]}"
    assert killed.corrupt == 0, "corrupt queue entries"


@pytest.mark.slow
def test_no_queue_entry_is_delivered_twice(killed: KillReport) -> None:
    assert killed.duplicates == 0, f"{killed.duplicates} queue entries delivered twice ({killed.duplicate_copies} copies)"


def test_a_copy_is_traced_to_its_queue_entry_by_our_received_field() -> None:
    copy = (b"Return-Path: <carol@partner.example>\r\nDelivered-To: alice@example.test\r\n"
            b"Received: from mda by mda (mailbastion) with LMTP id 99; Sat, 28 Nov 2026 03:10:01 +0000\r\n"
            b"Received: from mx.partner.example (unknown [127.0.0.1])\r\n\tby gw (mailbastion) with ESMTP id ab12.1;"
            b"\r\n\tSat, 28 Nov 2026 03:10:00 +0000\r\nReceived: from far.example by other.example; x\r\n"
            + durability_message(7, "alice@example.test"))
    assert queue_entry_of(copy) == (b"from mx.partner.example (unknown [127.0.0.1])\tby gw (mailbastion) with ESMTP "
                                    b"id ab12.1;\tSat, 28 Nov 2026 03:10:00 +0000")
