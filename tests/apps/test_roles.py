"""Each role is a composition root that loads only what it runs, proved from the running process.

`mailbastion serve --role gateway` (the DMZ MTA) must hold no password hashing, ORM, directory or audit
database and no mailbox code, and must not open those files; the internal role holds them. Each process
writes what it loaded and holds open on SIGUSR2 (apps/selfcheck.py).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.apps.selfcheck import GATEWAY_MUST_NOT_LOAD
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer

NO_CLAMAV = {("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"'}


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


def selfchecks(d: Deployment, role: str, count: int, timeout: float = 60.0) -> list[dict[str, object]]:
    """SIGUSR2 to the server; the reports of `count` processes of `role` written after it."""
    assert d.proc is not None
    asked = time.time()
    d.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for path in (d.root / "run").glob(f"selfcheck-{role}-*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written
            if data["time"] >= asked:
                found.append(data)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} self-check report(s) of {role} not written within {timeout}s")


def held(report: dict[str, object]) -> tuple[list[str], list[str]]:
    must_not = report["must_not_hold"]
    assert isinstance(must_not, dict)
    return must_not["modules"], must_not["files"]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_gateway_role_holds_no_directory_password_or_mailbox(tmp_path: Path, dns: DnsTestServer,
                                                                  workers: int) -> None:
    d = Deployment(tmp_path / "gw", dns=dns, settings={**NO_CLAMAV, ("server", "workers"): str(workers)})
    d.init()
    d.start(role="gateway")
    try:
        # every process of the role: the one process, or the parent and each SMTP acceptor
        reports = selfchecks(d, "gateway", 1 if workers == 1 else 1 + workers)
    finally:
        d.stop()
    for report in reports:
        modules = report["modules"]
        assert isinstance(modules, list)
        assert "mailbastion.spool" in " ".join(modules) or "mailbastion.gateway.handler" in modules  # it is real
        assert held(report) == ([], []), report["must_not_hold"]
        loaded = {m for m in modules if any(m == p or m.startswith(p + ".") for p in GATEWAY_MUST_NOT_LOAD)}
        assert loaded == set()
        files = report["open_files"]
        assert isinstance(files, list)
        secret = ("directory.db", "audit.db", "ca.key")
        assert not [f for f in files if Path(f).name.startswith(secret) or "/mail/" in f], files
    assert any("mailbastion.gateway.handler" in r["modules"] for r in reports)  # type: ignore[operator]
    # The spam classifier is loaded (preloaded in the parent before the acceptors fork) but scores without
    # scikit-learn or SciPy, which only learning imports (spam/model.py): ~100 MB less in each process.
    assert all("mailbastion.spam.model" in r["modules"] for r in reports)  # type: ignore[operator]
    assert [sorted({"sklearn", "scipy"} & set(r["modules"])) for r in reports] == [[]] * len(reports)  # type: ignore[arg-type]


def test_the_internal_role_holds_what_the_gateway_must_not(tmp_path: Path, dns: DnsTestServer) -> None:
    # The contrast that shows the report can tell: the MDA loads the directory and the mailbox code.
    d = Deployment(tmp_path / "in", dns=dns, settings=NO_CLAMAV)
    d.init()
    d.start(role="internal")
    try:
        (report,) = selfchecks(d, "internal", 1)
    finally:
        d.stop()
    modules = report["modules"]
    assert isinstance(modules, list)
    assert "mailbastion.mailbox.lmtp_handler" in modules and "mailbastion.directory.store" in modules
    assert "mailbastion.gateway.handler" not in modules and "mailbastion.policy.pipeline" not in modules
