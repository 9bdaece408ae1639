"""sslyze 6.3.1 (`--mozilla_config intermediate`) against our live listeners: compliant by default.

sslyze lives in the tools venv that `make test` creates (`make tools`: .venv-tools, apart from the project's
venv because it pins its own cryptography and nassl). Under `make test` (MAILBASTION_TOOLS_VENV set) a
missing sslyze is a failure; a developer running pytest by hand without it gets a skip saying how to get it.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from tls_testkit import HOST, HOSTNAME, Listeners, make_deployment, start_listeners

from mailbastion.apps.gateway import build_gateway
from mailbastion.config import load_settings
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.testing.fakes import FakeRecipients, FakeSpool

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
SSLYZE_VERSION = "6.3.1"


@pytest.fixture(scope="module")
def sslyze() -> Path:
    venv = os.environ.get("MAILBASTION_TOOLS_VENV")
    exe = Path(venv or REPO / ".venv-tools") / "bin" / "sslyze"
    if not exe.exists():
        message = f"sslyze not found at {exe}: `make tools` creates the tools venv"
        if venv:  # under `make test`: the Makefile should have made it
            pytest.fail(message)
        pytest.skip(message)
    import subprocess

    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    assert f"SSLyze version {SSLYZE_VERSION}" in out, f"{exe} is not sslyze {SSLYZE_VERSION}"
    return exe


async def run_sslyze(exe: Path, target: str, *args: str, tmp: Path) -> tuple[int, str, dict[str, Any]]:
    """Run sslyze against `target` (host:port{ip}); returns its exit code, its text and its JSON result."""
    out = tmp / f"sslyze-{abs(hash(target))}.json"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "--mozilla_config", "intermediate", "--json_out", str(out), *args, target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 300)
    data = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode or 0, text.decode(), data


def scan(data: dict[str, Any]) -> dict[str, Any]:
    result = data["server_scan_results"][0]
    assert result["scan_status"] == "COMPLETED", result
    return result["scan_result"]  # type: ignore[no-any-return]


def curves(data: dict[str, Any]) -> set[str]:
    return {c["name"] for c in scan(data)["elliptic_curves"]["result"]["supported_curves"]}


def accepted(data: dict[str, Any], version: str) -> list[str]:
    res = scan(data)[f"{version}_cipher_suites"]["result"]
    return [c["cipher_suite"]["name"] for c in res["accepted_cipher_suites"]]


@pytest.fixture
async def listeners(tmp_path: Path) -> Listeners:
    lst = await start_listeners(make_deployment(tmp_path / "var"))
    yield lst  # type: ignore[misc]
    await lst.stop()


def assert_intermediate(rc: int, text: str, data: dict[str, Any], label: str) -> None:
    assert rc == 0 and f"{label}: OK - Compliant." in text, text[-3000:]
    assert curves(data) <= {"X25519", "secp256r1", "secp384r1"}
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted(data, old) == [], old
    assert accepted(data, "tls_1_2") and accepted(data, "tls_1_3")
    assert all("ECDHE" in c and ("GCM" in c or "CHACHA20" in c) for c in accepted(data, "tls_1_2"))


async def test_starttls_and_implicit_tls_smtp_are_mozilla_intermediate(
        sslyze: Path, listeners: Listeners, tmp_path: Path) -> None:
    ca = str(listeners.settings.path(listeners.settings.tls.ca))
    for label, args in (
        (f"{HOSTNAME}:{listeners.starttls_port}", ("--starttls", "smtp")),
        (f"{HOSTNAME}:{listeners.implicit_port}", ()),
    ):
        host, port = label.split(":")
        rc, text, data = await run_sslyze(sslyze, f"{host}:{port}{{{HOST}}}", "--certinfo_ca_file", ca, *args,
                                          tmp=tmp_path)
        assert_intermediate(rc, text, data, label)
        # the certificate `init` makes validates strictly (key identifiers, usages) and lives under 366 days
        deployments = scan(data)["certificate_info"]["result"]["certificate_deployments"]
        assert all(d["verified_certificate_chain"] for d in deployments)


async def test_lmtp_of_the_mda_is_mozilla_intermediate(sslyze: Path, listeners: Listeners, tmp_path: Path) -> None:
    s = listeners.settings
    rc, text, data = await run_sslyze(
        sslyze, f"mda:{listeners.lmtp_port}{{{HOST}}}", "--certinfo_ca_file", str(s.path(s.tls.ca)),
        "--cert", str(s.path(s.tls.gateway_client_cert)), "--key", str(s.path(s.tls.gateway_client_key)),
        tmp=tmp_path)
    assert_intermediate(rc, text, data, f"mda:{listeners.lmtp_port}")


async def test_sslyze_fails_a_listener_with_openssl_defaults(sslyze: Path, tmp_path: Path) -> None:
    """The control: the same gateway with a context of OpenSSL's defaults (what main had for groups)
    is judged non-compliant, so the tests above can fail."""
    config = make_deployment(tmp_path / "var")
    settings = load_settings(config)
    weak = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    weak.load_cert_chain(settings.path(settings.tls.cert), settings.path(settings.tls.key))
    gateway = build_gateway(settings, pipeline=Pipeline([], Scorer(load_score_table())), spool=FakeSpool(),
                            recipients=FakeRecipients({"alice@example.test": "local"}), tls_context=weak)
    await gateway.start()
    try:
        port = gateway.ports[0]
        rc, text, data = await run_sslyze(sslyze, f"{HOSTNAME}:{port}{{{HOST}}}", "--starttls", "smtp",
                                          "--certinfo_ca_file", str(settings.path(settings.tls.ca)), tmp=tmp_path)
    finally:
        await gateway.stop(0.5)
    assert rc != 0 and "FAILED - Not compliant." in text
    assert "tls_curves" in text and {"X448", "secp521r1"} <= curves(data)
