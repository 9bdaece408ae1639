"""Inbound encrypted mail at the gateway: opaque, reported (ENCRYPTED_SMIME / ENCRYPTED_PGP), held or refused by
setting; the attachment policy's recogniser; and the whole pipeline through `mailbastion scan`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from crypto_testkit import Identity, message, openssl_sign

from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action
from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.inbound import EncryptedMailCheck
from mailbastion.engines.attachments import AttachmentPolicy, encrypted_mail_kind
from mailbastion.engines.mime_walk import build_subject
from mailbastion.policy.check import CheckContext


@pytest.fixture(scope="module")
def pgp_public() -> bytes:
    return openpgp.generate_key("alice@example.org", days=30)[0]


@pytest.fixture
def samples(bob: Identity, pgp_public: bytes) -> dict[str, bytes]:
    raw = message(to="alice@example.org", sender="bob@partner.example")
    inline = message(body=openpgp.encrypt_armored(b"hi", [openpgp.load_cert(pgp_public)]).decode())
    return {"smime": smime.encrypt_message(raw, [bob.cert]),
            "pgp": openpgp.encrypt_message(raw, [openpgp.load_cert(pgp_public)]),
            "inline-pgp": inline, "signed": openssl_sign(raw, bob), "plain": raw}


async def run(check: EncryptedMailCheck, raw: bytes) -> object:
    return await check(CheckContext(Stage.DATA, PeerInfo("192.0.2.1"), Envelope(None), message=SpooledMessage(raw)))


async def test_symbols_and_actions(samples: dict[str, bytes]) -> None:
    accept = EncryptedMailCheck()
    for name, symbol in (("smime", "ENCRYPTED_SMIME"), ("pgp", "ENCRYPTED_PGP"), ("inline-pgp", "ENCRYPTED_PGP")):
        result = await run(accept, samples[name])
        assert [s.name for s in result.symbols] == [symbol], name  # type: ignore[attr-defined]
        assert result.forced is None  # type: ignore[attr-defined]
    for name in ("signed", "plain"):  # a signature is no encryption
        assert (await run(accept, samples[name])).symbols == ()  # type: ignore[attr-defined]
    held = await run(EncryptedMailCheck(action="hold"), samples["smime"])
    assert held.forced.action is Action.QUARANTINE  # type: ignore[attr-defined]
    refused = await run(EncryptedMailCheck(action="reject"), samples["pgp"])
    assert refused.forced.action is Action.REJECT and refused.forced.reply.code == 550  # type: ignore[attr-defined]


async def test_attachment_policy_sees_an_opaque_part_and_blocks_nothing(samples: dict[str, bytes]) -> None:
    subject = build_subject(samples["smime"])
    kinds = [encrypted_mail_kind(p.declared_type, p.filename, p.data) for p in subject.parts]
    assert "smime" in kinds
    assert AttachmentPolicy().judge(subject) == ()  # not an encrypted-archive finding: the check reports it
    assert encrypted_mail_kind("application/pkcs7-mime", "smime.p7m", b"\x30\x82\x01\x00" + b"\x00" * 40) == ""


def test_the_pipeline_reports_encrypted_mail(tmp_path: Path, samples: dict[str, bytes]) -> None:
    var = tmp_path / "var"
    res = subprocess.run([sys.executable, "-m", "mailbastion", "init", "--dir", str(var), "--domain", "example.org"],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    config = var / "mailbastion.toml"
    text = config.read_text()
    config.write_text(text + '\n[encryption]\ninbound_encrypted = "hold"\n')
    # No clamd in this test: say that the path runs without a vendor engine (as the flow tests do).
    config.write_text(config.read_text().replace('stale_policy = "soft_reject"', 'stale_policy = "alarm_only"', 1))
    eml = tmp_path / "smime.eml"
    eml.write_bytes(samples["smime"])
    res = subprocess.run([sys.executable, "-m", "mailbastion", "scan", "-c", str(config), "--json",
                          "--from", "bob@partner.example", "--rcpt", "postmaster@example.org", str(eml)],
                         capture_output=True, text=True, timeout=180, check=False)
    assert "ENCRYPTED_SMIME" in res.stdout, res.stdout + res.stderr
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["action"] == "quarantine" and line["forced_by"] == "encrypted_mail", line
