"""`mailbastion serve` with a configured certificate or key missing: it refuses to start, saying which
(every role builds its contexts with `tls_policy.server_context_from_settings`)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from mailbastion.testing.deployment import MB, Deployment


def serve_outcome(d: Deployment, role: str, port: int, timeout: float = 60.0) -> tuple[int | None, str]:
    """Start `serve --role ROLE`; return (exit code, output) once it exits, or (None, output) when it
    listens on `port` instead (it is then stopped)."""
    proc = subprocess.Popen([*MB, "serve", "-c", str(d.config), "--role", role], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode, proc.stdout.read().decode() if proc.stdout else ""
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return None, "it started"
            time.sleep(0.1)
        raise TimeoutError("serve neither exited nor listened")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_mda_without_its_key_refuses_to_start(tmp_path: Path) -> None:
    with Deployment(tmp_path / "var") as d:
        (d.root / "tls" / "mda.key").unlink()
        code, out = serve_outcome(d, "mda", d.lmtp_port)
    assert code not in (None, 0) and "tls.mda_key" in out and "mda.key" in out and "Traceback" not in out, out


def test_gateway_without_its_certificate_refuses_to_start(tmp_path: Path) -> None:
    with Deployment(tmp_path / "var") as d:
        (d.root / "tls" / "gateway.crt").unlink()
        code, out = serve_outcome(d, "gateway", d.smtp_port)
    assert code not in (None, 0), "the gateway started without STARTTLS"
    assert "tls.cert" in out and "gateway.crt" in out and "Traceback" not in out, out
