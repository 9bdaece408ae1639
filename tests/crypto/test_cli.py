"""`mailbastion keys ...` and `mailbastion pickup show` as a user runs them (child processes, a real deployment)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from crypto_testkit import Identity, gpg_decrypt, message, openssl_decrypt

from mailbastion.audit.log import AuditLog
from mailbastion.config import load_settings
from mailbastion.core.address import parse_address
from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.classify import Classifier
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.mime_wrap import canonical
from mailbastion.crypto.outbound import OutboundPolicy, StoreKeys, protect_outbound
from mailbastion.crypto.pickup import PickupStore


def mb(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbastion", *args[:2], "-c", str(config), *args[2:]],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var = tmp_path_factory.mktemp("deploy") / "var"
    res = subprocess.run([sys.executable, "-m", "mailbastion", "init", "--dir", str(var), "--domain", "example.org"],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    return var / "mailbastion.toml"


def test_generate_export_and_use_keys(deployment: Path, tmp_path: Path) -> None:
    res = mb(deployment, "keys", "generate", "Alice@Example.org", "--name", "Alice")
    assert res.returncode == 0, res.stderr
    assert "smime key" in res.stdout and "openpgp key" in res.stdout
    settings = load_settings(deployment)
    store = KeyStore.from_settings(settings)
    records = store.records("alice@example.org")
    assert {r.kind for r in records} == {"smime", "openpgp"} and all(r.has_private for r in records)
    # Private keys are sealed on disk: no PEM or armored secret anywhere in the key store.
    for path in (settings.path("keys")).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"PRIVATE KEY" not in data and b"PGP PRIVATE KEY" not in data, path
            if path.suffix in (".json", ".key", ".sealed"):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The public export is what a correspondent needs; the private one needs --private, is 0600 and audited.
    pub = tmp_path / "alice.pem"
    assert mb(deployment, "keys", "export", "alice@example.org", "--kind", "smime", "--out", str(pub)).returncode == 0
    assert b"PRIVATE" not in pub.read_bytes()
    priv = tmp_path / "alice-private.pem"
    res = mb(deployment, "keys", "export", "alice@example.org", "--kind", "smime", "--private", "--out", str(priv),
             "--reason", "handed to Alice")
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and b"PRIVATE KEY" in priv.read_bytes()
    again = mb(deployment, "keys", "export", "alice@example.org", "--private", "--out", str(priv))
    assert again.returncode == 1 and "exists" in again.stderr
    events = AuditLog(settings.audit_url).events(subject="alice@example.org")
    assert [e.action for e in events].count("keys.generate") == 2
    exported = [e for e in events if e.action == "keys.export_private"]
    assert len(exported) == 1 and exported[0].reason == "handed to Alice"

    # The exported key opens mail encrypted to the certificate (openssl, as the user's client would).
    from cryptography import x509

    cert = x509.load_pem_x509_certificates(pub.read_bytes())[0]
    out = smime.encrypt_message(message(to="alice@example.org"), [cert])
    assert openssl_decrypt(out, pub, priv) == canonical(message(to="alice@example.org"))
    sec = tmp_path / "alice.sec.asc"
    assert mb(deployment, "keys", "export", "alice@example.org", "--kind", "openpgp", "--private",
              "--out", str(sec)).returncode == 0
    pgp = openpgp.encrypt_message(b"Subject: x\r\n\r\nhi\r\n", [openpgp.load_cert(store.active(
        "alice@example.org", "openpgp")[0].public)])
    assert gpg_decrypt(pgp, sec.read_bytes()) == b"Subject: x\r\n\r\nhi\r\n"

    # Revoked keys are no longer used, but listed.
    res = mb(deployment, "keys", "revoke", "alice@example.org", "--kind", "openpgp", "--reason", "laptop lost")
    assert res.returncode == 0 and "revoked" in res.stdout
    assert store.encryption_key("alice@example.org", prefer="openpgp").kind == "smime"  # type: ignore[union-attr]
    listing = mb(deployment, "keys", "list", "alice@example.org").stdout
    assert "revoked" in listing and "active" in listing


def test_import_refuses_a_key_for_another_address(deployment: Path, bob: Identity) -> None:
    res = mb(deployment, "keys", "import", "someone@partner.example", str(bob.cert_path))
    assert res.returncode == 1 and "names bob@partner.example, not someone@partner.example" in res.stderr
    res = mb(deployment, "keys", "import", "bob@partner.example", str(bob.cert_path), "--key", str(bob.key_path))
    assert res.returncode == 0 and "with private key" in res.stdout
    nothing = mb(deployment, "keys", "export", "nobody@example.org", "--out", "/dev/null")
    assert nothing.returncode == 1 and "no" in nothing.stderr and "Traceback" not in nothing.stderr


def test_pickup_show_opens_once_with_the_code(deployment: Path) -> None:
    settings = load_settings(deployment)
    secret = message(subject="[confidential] salaries", body="Salary table.\r\n")
    d = protect_outbound(secret, [parse_address("zed@nokey.example")], StoreKeys(KeyStore.from_settings(settings)),
                         OutboundPolicy(Classifier(), lambda dom: dom == "example.org", without_key="pickup",
                                        pickup=PickupStore.from_settings(settings)),
                         sender=parse_address("alice@example.org"))
    ticket = d.pickups[0]
    wrong = mb(deployment, "pickup", "show", ticket.token, "--code", "WRONG-CODE0")
    assert wrong.returncode == 1 and "wrong code (4 attempts left)" in wrong.stderr
    res = subprocess.run([sys.executable, "-m", "mailbastion", "pickup", "show", "-c", str(deployment),
                          f"https://mail.example.org/pickup/{ticket.token}", "--code", ticket.code.lower()],
                         capture_output=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout == secret
    gone = mb(deployment, "pickup", "show", ticket.token, "--code", ticket.code)
    assert gone.returncode == 1 and "no such pick-up" in gone.stderr
    assert os.listdir(settings.path("pickup")) == []


def test_a_pickup_token_never_starts_with_a_dash_so_the_command_line_takes_it(deployment: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # one base64url token in 16 starts with '-' (a first byte 0xf8-0xfb); `pickup show -Xy...` was read as an
    # option, "No such option", so a recipient holding such a link could not open it from the command line
    import mailbastion.crypto.pickup as pickup_module

    real, draws = pickup_module.secrets.token_bytes, []

    def dash_first(n: int) -> bytes:
        draws.append(n)
        return b"\xf8" + real(n - 1) if len(draws) == 1 else real(n)

    monkeypatch.setattr(pickup_module.secrets, "token_bytes", dash_first)
    ticket = PickupStore.from_settings(load_settings(deployment)).deposit(b"Subject: x\r\n\r\nbody\r\n",
                                                                          recipient="zed@nokey.example",
                                                                          sender="alice@example.org")
    monkeypatch.undo()
    assert draws[0] == 32 and not ticket.token.startswith("-")
    res = mb(deployment, "pickup", "show", ticket.token, "--code", ticket.code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["Subject: x", "", "body"]
