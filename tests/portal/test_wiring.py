"""`mailbastion serve` runs the portal in the internal (and all-in-one) role and never in the gateway role."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from portal_kit import client_context, portal_deployment, settings_of

from mailbastion.config.sections.portal import parse_listen

pytestmark = pytest.mark.slow


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_serving(log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while b"mailbastion serving (" not in (log.read_bytes() if log.exists() else b""):
        assert time.monotonic() < deadline, "serve never said it was serving"
        time.sleep(0.1)


def test_serve_internal_runs_the_portal_over_https(tmp_path: Path) -> None:
    d = portal_deployment(tmp_path, extra={("portal", "enabled"): "true"})
    _, port = parse_listen(settings_of(d).portal.listen)
    d.start(role="internal")
    try:
        wait_serving(d.log_path)
        assert listening(port)
        r = httpx.get(f"https://127.0.0.1:{port}/signin", verify=client_context(d), timeout=30)
        assert r.status_code == 200 and "frame-ancestors 'none'" in r.headers["content-security-policy"]
    finally:
        d.stop()


def test_serve_gateway_never_runs_the_portal(tmp_path: Path) -> None:
    d = portal_deployment(tmp_path, extra={("portal", "enabled"): "true"})
    _, port = parse_listen(settings_of(d).portal.listen)
    d.start(role="gateway")
    try:
        wait_serving(d.log_path)
        assert not listening(port)
        assert "portal" not in d.log().lower().split("mailbastion serving (")[-1]
    finally:
        d.stop()
