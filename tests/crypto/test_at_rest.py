"""Encryption at rest through a real LMTP delivery to our MDA: no plaintext body on disk, each stored file
decrypts (openssl / gpg) to the delivered copy byte for byte, 451 without a key, quota and exactly-once kept.
And the S/MIME certificate of a signed inbound message is collected and used to encrypt the reply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from crypto_testkit import Identity, SmimeTestCa, gpg_decrypt, message, openssl_decrypt, openssl_sign
from mda_testkit import Lmtp, client_context, lmtp_settings

from mailbastion.apps.mda import build_mda
from mailbastion.config.schema import Settings
from mailbastion.core.address import parse_address
from mailbastion.crypto.classify import Classifier
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.manage import export_key, generate
from mailbastion.crypto.mime_wrap import canonical
from mailbastion.crypto.outbound import OutboundPolicy, Protection, StoreKeys, protect_outbound
from mailbastion.crypto.smime_ca import SmimeAuthority
from mailbastion.directory import Directory
from mailbastion.mailbox import quota
from mailbastion.mailbox.lmtp_server import MdaServer
from mailbastion.pki import make_deployment_pki

BODY = "Board minutes: the plant in Lyon closes in March.\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment_pki(tmp_path_factory.mktemp("pki") / "tls", "localhost")


@dataclass
class Site:
    server: MdaServer
    settings: Settings
    store: KeyStore
    mail: Path
    port: int


def settings_with(tmp_path: Path, pki: dict[str, Path], encryption: dict[str, object]) -> Settings:
    base = lmtp_settings(tmp_path, pki).model_dump(mode="json")
    return Settings.model_validate({**base, "encryption": encryption})


@pytest.fixture
async def site(tmp_path: Path, pki: dict[str, Path], smime_ca: SmimeTestCa) -> AsyncIterator[Site]:
    settings = settings_with(tmp_path, pki, {"at_rest": ["alice@example.org", "enc.example"], "system_ca": False,
                                             "extra_ca_files": [str(smime_ca.cert_path)]})
    directory = Directory.from_settings(settings)
    for domain in ("example.org", "enc.example"):
        directory.add_domain(domain, by="test")
    for who in ("alice@example.org", "bob@example.org", "carol@enc.example", "dora@enc.example"):
        directory.add_account(who, None, "test")
    store = KeyStore.from_settings(settings)
    ca = SmimeAuthority(store)
    generate(store, ca, "alice@example.org", kinds=("smime",), key_bits=2048)
    generate(store, ca, "dora@enc.example", kinds=("openpgp",))
    server = build_mda(settings, directory=directory)
    await server.start()
    try:
        yield Site(server, settings, store, tmp_path / "mail", server.port)
    finally:
        await server.stop()


async def deliver(site: Site, pki: dict[str, Path], raw: bytes, rcpts: list[str], queue_id: str = "Q1") -> list[str]:
    client = await Lmtp.connect(site.port, client_context(pki))
    try:
        assert "XMAILBASTION" in await client.cmd("LHLO gateway.test")
        assert (await client.cmd(f"MAIL FROM:<sender@partner.example> XQUEUEID={queue_id}")).startswith("250")
        for r in rcpts:
            assert (await client.cmd(f"RCPT TO:<{r}>")).startswith("250")
        return await client.data(raw, len(rcpts))
    finally:
        await client.close()


def files(box: Path) -> list[Path]:
    return sorted(p for p in box.rglob("*") if p.is_file())


def messages(box: Path) -> list[Path]:
    return sorted(p for p in box.rglob("*") if p.is_file() and p.parent.name in ("new", "cur"))


def copy_of(raw: bytes, box: str) -> bytes:
    return canonical(f"Return-Path: <sender@partner.example>\r\nDelivered-To: {box}\r\n".encode() + raw)


def user_key(site: Site, address: str, kind: str, tmp_path: Path) -> tuple[Path, Path]:
    record = site.store.active(address, kind)[0]
    pem = export_key(site.store, record, private=True)
    cert, key = tmp_path / f"{address}.crt", tmp_path / f"{address}.key"
    cert.write_bytes(record.public)
    key.write_bytes(pem)
    return cert, key


async def test_stored_mail_is_encrypted_and_decrypts_to_the_delivered_copy(
        site: Site, pki: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = message(subject="Board", body=BODY, to="alice@example.org", sender="sender@partner.example")
    caplog.set_level(logging.INFO, logger="mailbastion.mda")
    replies = await deliver(site, pki, raw, ["alice@example.org", "bob@example.org", "dora@enc.example",
                                             "carol@enc.example"])
    assert replies[0].startswith("250") and replies[1].startswith("250") and replies[2].startswith("250")
    assert replies[3].startswith("451 4.7.5"), replies[3]
    assert "keys generate carol@enc.example" in caplog.text

    alice = site.mail / "example.org" / "alice"
    stored = messages(alice)
    assert len(stored) == 1
    for path in files(alice):  # every file of the Maildir, counters and locks included
        assert b"plant in Lyon" not in path.read_bytes(), path
    cert, key = user_key(site, "alice@example.org", "smime", tmp_path)
    assert openssl_decrypt(stored[0].read_bytes(), cert, key) == copy_of(raw, "alice@example.org")
    # Quota counts what is on disk: the encrypted size.
    assert quota.read_usage(alice) == (stored[0].stat().st_size, 1)
    assert "at_rest=encrypted" in caplog.text

    dora = messages(site.mail / "enc.example" / "dora")
    assert len(dora) == 1 and b"plant in Lyon" not in dora[0].read_bytes()
    secret = export_key(site.store, site.store.active("dora@enc.example", "openpgp")[0], private=True)
    assert gpg_decrypt(dora[0].read_bytes(), secret) == copy_of(raw, "dora@enc.example")

    assert b"plant in Lyon" in messages(site.mail / "example.org" / "bob")[0].read_bytes()  # not listed: clear
    assert messages(site.mail / "enc.example" / "carol") == []  # refused, nothing written in clear

    # Exactly once: the same queue entry again writes nothing more.
    again = await deliver(site, pki, raw, ["alice@example.org"])
    assert again[0].startswith("250") and len(messages(alice)) == 1


async def test_signed_inbound_certificate_is_collected_and_encrypts_the_reply(
        site: Site, pki: dict[str, Path], bob_outside: Identity, tmp_path: Path) -> None:
    signed = openssl_sign(message(subject="Offer", body="Our offer, signed.\r\n", to="bob@example.org",
                                  sender="bob@partner.example"), bob_outside)
    assert (await deliver(site, pki, signed, ["bob@example.org"], queue_id="S1"))[0].startswith("250")
    (record,) = site.store.active("bob@partner.example")
    assert record.source == "collected" and record.kind == "smime" and not record.has_private

    reply = message(subject="[confidential] Re: Offer", body="We accept at 1.2 M.\r\n", to="bob@partner.example",
                    sender="bob@example.org")
    decision = protect_outbound(reply, [parse_address("bob@partner.example")], StoreKeys(site.store),
                                OutboundPolicy(Classifier(), lambda d: d in ("example.org", "enc.example")),
                                sender=parse_address("bob@example.org"))
    (out,) = decision.outgoing
    assert out.protection is Protection.SMIME and b"1.2 M" not in out.message and out.require_tls
    assert openssl_decrypt(out.message, bob_outside.cert_path, bob_outside.key_path) == canonical(reply)


async def test_a_forged_signature_collects_nothing(site: Site, pki: dict[str, Path], tmp_path: Path) -> None:
    rogue = SmimeTestCa.create(tmp_path / "rogue", "Rogue").issue(tmp_path / "m", "bob@partner.example")
    signed = openssl_sign(message(sender="bob@partner.example", to="bob@example.org"), rogue)
    assert (await deliver(site, pki, signed, ["bob@example.org"], queue_id="F1"))[0].startswith("250")
    assert site.store.records("bob@partner.example") == []


@pytest.fixture
def bob_outside(smime_ca: SmimeTestCa, tmp_path: Path) -> Identity:
    return smime_ca.issue(tmp_path / "bob-out", "bob@partner.example")
