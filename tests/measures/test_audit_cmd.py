"""`mailbastion audit` against a running all-in-one deployment: real SMTP, real clamd, the loopback DNS server.

Healthy, it passes every built measure but 5 (an all-in-one is not a DMZ split: it says so and fails), and
says "not built" for 7 and 8. It names the failing measure when a leaver is still active,
when ClamAV is off, and when relay.networks lets every client of the listener relay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlalchemy import update

from mailbastion.config import load_settings
from mailbastion.directory.portal import ACCOUNTS
from mailbastion.directory.store import Directory
from mailbastion.measures.board import MET, NOT_MET
from mailbastion.measures.inventory import LastAuditProbe
from mailbastion.testing.clamd import ClamdTestServer
from mailbastion.testing.deployment import MB, Deployment

KEYS = {"id", "name", "status", "evidence", "fix"}


def audit(d: Deployment, *args: str) -> tuple[int, dict[int, dict[str, Any]], str]:
    res = subprocess.run([*MB, "audit", "-c", str(d.config), "--json", *args], capture_output=True, text=True,
                         timeout=600, check=False)
    assert "Traceback" not in res.stderr, res.stderr
    doc = json.loads(res.stdout)
    assert [m["id"] for m in doc["measures"]] == list(range(1, 11))
    for m in doc["measures"]:
        assert set(m) == KEYS, m
        assert m["status"] in ("pass", "fail", "not built")
        assert m["evidence"] and all(isinstance(e, str) for e in m["evidence"])
        assert isinstance(m["fix"], str) and (m["fix"] == "") == (m["status"] == "pass")
    return res.returncode, {m["id"]: m for m in doc["measures"]}, res.stderr


def statuses(measures: dict[int, dict[str, Any]]) -> dict[int, str]:
    return {n: m["status"] for n, m in measures.items()}


class Rows(HTMLParser):
    """The report's table rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_healthy_all_in_one(healthy: Deployment, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, ms, err = audit(healthy, "--html", str(page))
    assert statuses(ms) == {1: "pass", 2: "pass", 3: "pass", 4: "pass", 5: "fail", 6: "pass", 7: "fail",
                            8: "pass", 9: "pass", 10: "pass"}, json.dumps(ms, indent=1)
    assert code == 1  # measure 5: one host is not a DMZ split
    assert "no acceptable use policy in effect" in ms[7]["evidence"][0]  # none published (tests/aup publish one)
    assert "all-in-one" in ms[5]["evidence"][0] and "--role gateway" in ms[5]["fix"]
    one = "\n".join(ms[1]["evidence"])
    for wrapping in ("plain attachment", "zip", "base64 in a nested message"):
        assert f"EICAR, {wrapping}: 550 5.7.1 Message rejected: malware detected" in one
    assert "clamav" in ms[1]["evidence"][0] and "met by clamav" in ms[2]["evidence"][0]
    assert any(e.startswith("GTUBE: 550 5.7.1") for e in ms[3]["evidence"])
    assert any("trained on" in e for e in ms[3]["evidence"])
    four = "\n".join(ms[4]["evidence"])
    assert "from 127.0.0.2, RCPT TO:<relay-probe@relay-probe.invalid>: 550 5.7.1" in four
    assert four.count("554 5.6.11") == 3  # every smuggling variant refused
    nine = "\n".join(ms[9]["evidence"])
    assert "TLS 1.0 refused" in nine and "TLS 1.1 refused" in nine and "TLS 1.2 accepted" in nine
    assert "secp521r1 refused" in nine and "X448 refused" in nine
    for listener in ("SMTP", "LMTP", "portal", "submission"):
        assert f"\n{listener} " in f"\n{nine}", listener
    assert "p=none (monitoring) since" in "\n".join(ms[10]["evidence"])  # a dated rollout step
    assert "no leaver active, no joiner late" in ms[6]["evidence"][0]
    assert any(e.startswith("dates last checked ") for e in ms[6]["evidence"])  # the running scheduler's
    assert "measure(s) 5 fail" not in err  # --json keeps stderr for errors only
    # The page: one row per measure, the same statuses, nothing the evidence holds escapes into markup.
    parser = Rows()
    parser.feed(page.read_text())
    rows = [r for r in parser.rows if r]
    assert [(int(r[0]), r[2]) for r in rows] == [(n, ms[n]["status"]) for n in range(1, 11)]
    assert "script" not in parser.tags
    assert "&lt;relay-probe@relay-probe.invalid&gt;" in page.read_text()
    # The portal's dashboard shows 3, 4 and 5 from this run (it does not send test mail itself).
    last = {m.number: m for m in asyncio.run(LastAuditProbe(load_settings(healthy.config))())}
    assert (last[3].state, last[4].state, last[5].state) == (MET, MET, NOT_MET)


def mail_changes(d: Deployment) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MB, "audit", "-c", str(d.config), "--mail-changes"], capture_output=True, text=True,
                          timeout=600, check=False)


def set_leave_date(d: Deployment, address: str, when: dt.datetime | None) -> None:
    """What a leaver job that never ran leaves behind: an active account with its leave date passed."""
    directory = Directory.from_settings(load_settings(d.config))
    with directory.engine.begin() as conn:
        conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.address == address).values(deactivate_at=when))


def test_names_an_active_leaver_and_mails_what_changed(healthy: Deployment) -> None:
    before = len(healthy.delivered("postmaster@example.test"))
    first = mail_changes(healthy)
    assert "10 change(s) mailed to postmaster@example.test" in first.stdout, first.stdout + first.stderr
    mail = healthy.wait_delivered("postmaster@example.test", before + 1)[-1]
    assert b"measure 1 (Anti-virus on all mail, fresh signatures): pass" in mail
    again = mail_changes(healthy)
    assert "nothing changed since the last run; no mail" in again.stdout, again.stdout + again.stderr
    set_leave_date(healthy, "ann@example.test", dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    try:
        code, ms, _ = audit(healthy, "--mail-changes")
        assert code == 1 and ms[6]["status"] == "fail"
        assert "1 leaver(s) still active" in ms[6]["evidence"][0]
        assert "past its end date but still active: ann@example.test" in ms[6]["evidence"]
        assert "ann@example.test" in ms[6]["fix"]
        mail = healthy.wait_delivered("postmaster@example.test", before + 2)[-1]
        assert b"measure 6 (Joiners and leavers): pass -> fail" in mail
        assert b"measure 1 " not in mail  # only what changed
    finally:
        set_leave_date(healthy, "ann@example.test", None)


def test_names_clamav_off(healthy: Deployment, clamd: ClamdTestServer) -> None:
    clamd.stop()
    try:
        code, ms, _ = audit(healthy)
        assert code == 1 and ms[1]["status"] == "fail", ms[1]
        assert "clamav" in ms[1]["evidence"][0]
        assert ms[2]["status"] == "fail"  # no vendor engine answers
        assert all(ms[n]["status"] == "pass" for n in (3, 4, 9, 10))
        # Our MX fails closed without its engine (451): the change mail cannot pass it, and the command says so
        # (exit 3, the state kept, so the next run mails the change once mail flows again).
        res = mail_changes(healthy)
        assert res.returncode == 3 and "could not mail the audit's changes" in res.stderr and "451" in res.stderr
    finally:
        clamd.start()


def test_names_an_open_relay(healthy: Deployment) -> None:
    healthy.stop()
    healthy.set("relay", "networks", '["127.0.0.0/8"]')
    healthy.set("smtp", "require_starttls", "true")  # the mail probes say STARTTLS when it is offered
    healthy.start()
    try:
        code, ms, _ = audit(healthy)
        assert code == 1 and ms[4]["status"] == "fail"
        assert "open relay" in ms[4]["evidence"][0] and "relay.networks" in ms[4]["fix"]
        assert "could not probe relaying: every loopback source address is inside relay.networks" in ms[4]["evidence"]
        assert ms[1]["status"] == "pass" and ms[3]["status"] == "pass", (ms[1], ms[3])
    finally:
        healthy.stop()
        healthy.set("relay", "networks", "[]")
        healthy.set("smtp", "require_starttls", "false")
        healthy.start()
