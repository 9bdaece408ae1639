"""`mailbastion scan` of stored mail: date rules judged against the message's arrival (its newest Received
header), not against today; `--now` overrides; scanning keeps no state (rate limits, greylisting)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.core.header_block import HeaderBlock
from mailbastion.spam.arrival import received_time
from mailbastion.testing.dns_server import DnsTestServer

OLD = (
    "Received: from mx.partner.example (mx.partner.example [192.0.2.9])\r\n"
    "\tby mx.example.com with ESMTP id 1A2B; Tue, 10 Sep 2002 10:00:00 +0000\r\n"
    "Received: from laptop (unknown [10.0.0.2]) by mx.partner.example; Tue, 10 Sep 2002 09:59:00 +0000\r\n"
    "From: Alice <alice@partner.example>\r\nTo: bob@example.com\r\nSubject: Minutes of the meeting\r\n"
    "Date: {date}\r\nMessage-ID: <1@partner.example>\r\n\r\nThe minutes are below.\r\n"
)


def test_received_time_is_the_newest_received_field_with_a_date() -> None:
    raw = ("Received: by relay.example (no date here)\r\n" + OLD.format(date="Tue, 10 Sep 2002 09:58:00 +0000")).encode()
    assert received_time(HeaderBlock.parse(raw)) == pytest.approx(1031652000.0)  # 2002-09-10 10:00:00 UTC
    assert received_time(HeaderBlock.parse(b"Subject: no trace\r\n\r\nx")) is None
    assert received_time(HeaderBlock.parse(b"Received: from x by y; not a date\r\n\r\n")) is None


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    with DnsTestServer() as dns:  # loopback: every name answers NXDOMAIN
        path = tmp_path / "mb.toml"
        path.write_text(
            f'[server]\ndata_dir = "{tmp_path}"\n[dns]\nnameservers = ["{dns.host}"]\nport = {dns.port}\n'
            '[antivirus]\nworkstation_engine = "microsoft"\nstale_policy = "alarm_only"\n'
            '[antivirus.clamav]\nenabled = false\n'
            "[spam.ratelimit]\nper_client = 1\nper_sender = 1\n")
        yield path


def scan(config: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    out = CliRunner().invoke(main_group, ["scan", "-c", str(config), "--json", *args])
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]


def symbols(verdict: dict) -> set[str]:  # type: ignore[type-arg]
    return {s["name"] for s in verdict["symbols"]}


def test_old_mail_is_judged_as_of_its_arrival(config: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.eml"  # written a minute before it arrived, in 2002
    fresh.write_text(OLD.format(date="Tue, 10 Sep 2002 09:58:00 +0000"), newline="")
    stale = tmp_path / "stale.eml"  # dated nine days before it arrived
    stale.write_text(OLD.format(date="Sun, 01 Sep 2002 09:58:00 +0000"), newline="")
    got = {Path(v["file"]).name: symbols(v) for v in scan(config, str(fresh), str(stale))}
    assert "DATE_IN_PAST" not in got["fresh.eml"]
    assert "DATE_IN_PAST" in got["stale.eml"]
    # Against today (the old behaviour, now asked for explicitly), the fresh one is 20+ years old.
    assert "DATE_IN_PAST" in symbols(scan(config, "--now", "now", str(fresh))[0])
    # Against a given instant: the day before the Date header, it is dated in the future.
    assert "DATE_IN_FUTURE" in symbols(scan(config, "--now", "2002-09-09T00:00Z", str(fresh))[0])


def test_scanning_a_folder_counts_no_rate_limit(config: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mails"
    folder.mkdir()
    for n in range(3):  # the configured limit is one message per client and sender
        (folder / f"{n}.eml").write_text(OLD.format(date="Tue, 10 Sep 2002 09:58:00 +0000"), newline="")
    verdicts = scan(config, "--from", "alice@partner.example", str(folder))
    assert len(verdicts) == 3
    for v in verdicts:
        assert not {n for n in symbols(v) if n.startswith(("RATELIMIT", "GREYLIST"))}, v
        assert v["action"] == "accept", v


def test_a_bad_now_is_refused_with_one_line(config: Path, tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    mail.write_text(OLD.format(date="Tue, 10 Sep 2002 09:58:00 +0000"), newline="")
    out = CliRunner().invoke(main_group, ["scan", "-c", str(config), "--now", "yesterday", str(mail)])
    assert out.exit_code == 2 and "--now" in out.output and "Traceback" not in out.output
