"""protect_outbound: a confidential message never leaves in clear; encrypted copies open with the recipients'
keys (openssl, gpg); held, pick-up and refusal for recipients without keys; verified TLS always required."""

from __future__ import annotations

from pathlib import Path

import pytest
from crypto_testkit import Identity, gpg_decrypt, message, openssl_decrypt, openssl_verify

from mailbastion.core.address import parse_address
from mailbastion.crypto import openpgp
from mailbastion.crypto.classify import Classifier
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.manage import generate, import_key
from mailbastion.crypto.mime_wrap import canonical
from mailbastion.crypto.outbound import OutboundPolicy, Protection, StoreKeys, protect_outbound
from mailbastion.crypto.pickup import PickupStore
from mailbastion.crypto.smime_ca import SmimeAuthority

SECRET = "The acquisition closes on 3 July."
A = parse_address


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", tmp_path / "keys" / "deployment.key")


@pytest.fixture(scope="module")
def dave_pgp() -> tuple[bytes, bytes]:
    return openpgp.generate_key("dave@other.example", days=30)


def policy(tmp_path: Path, **kw: object) -> OutboundPolicy:
    return OutboundPolicy(Classifier(), lambda d: d == "example.org", pickup=PickupStore(tmp_path / "pickup"),
                          pickup_url="https://mail.example.org/pickup/", notice_from="postmaster@example.org",
                          **kw)  # type: ignore[arg-type]


def confidential(to: str = "bob@partner.example") -> bytes:
    return message(subject="[confidential] deal", body=f"{SECRET}\r\n", to=to)


def assert_never_clear(decision: object) -> None:
    for out in decision.outgoing:  # type: ignore[attr-defined]
        if out.protection is not Protection.INTERNAL:
            assert SECRET.encode() not in out.message, out.protection
        assert out.require_tls


def test_not_confidential_leaves_as_it_is(tmp_path: Path, store: KeyStore) -> None:
    raw = message()
    d = protect_outbound(raw, [A("bob@partner.example")], StoreKeys(store), policy(tmp_path), sender=A("alice@example.org"))
    assert not d.classification and len(d.outgoing) == 1
    assert d.outgoing[0].message == raw and d.outgoing[0].protection is Protection.NONE and not d.require_tls


@pytest.mark.parametrize("mode", ["hold", "pickup", "refuse"])
def test_confidential_to_an_outsider_without_key_is_never_in_clear(tmp_path: Path, store: KeyStore, mode: str) -> None:
    rcpt = A("bob@partner.example")
    d = protect_outbound(confidential(), [rcpt], StoreKeys(store), policy(tmp_path, without_key=mode),
                         sender=A("alice@example.org"))
    assert d.classification.reasons == ("subject tag [confidential]",)
    assert_never_clear(d)
    if mode == "hold":
        assert d.held == (rcpt,) and d.outgoing == () and d.notice is not None
        assert b"bob@partner.example" in d.notice and SECRET.encode() not in d.notice
    elif mode == "refuse":
        assert d.outgoing == () and d.held == () and d.notice is None
        assert d.refused[0].recipient == rcpt and d.refused[0].reply.code == 550
        assert d.refused[0].reply.status == "5.7.1" and "in clear" in d.refused[0].reply.text
    else:
        (notice,) = d.outgoing
        assert notice.protection is Protection.PICKUP_NOTICE and notice.recipients == (rcpt,)
        (ticket,) = d.pickups
        assert f"https://mail.example.org/pickup/{ticket.token}".encode() in notice.message
        assert ticket.code.encode() not in notice.message  # the code goes to the sender only
        assert d.notice is not None and ticket.code.encode() in d.notice
        assert PickupStore(tmp_path / "pickup").open(ticket.token, ticket.code) == confidential()


def test_outsiders_with_keys_get_it_encrypted_and_can_read_it(tmp_path: Path, store: KeyStore, bob: Identity,
                                                              dave_pgp: tuple[bytes, bytes]) -> None:
    import_key(store, "bob@partner.example", bob.cert_path.read_bytes(), source="collected")
    import_key(store, "dave@other.example", dave_pgp[0], source="wkd")
    raw = confidential(to="bob@partner.example, dave@other.example, carol@example.org")
    rcpts = [A("bob@partner.example"), A("dave@other.example"), A("carol@example.org"), A("eve@nokey.example")]
    d = protect_outbound(raw, rcpts, StoreKeys(store), policy(tmp_path), sender=A("alice@example.org"))
    assert_never_clear(d)
    by = {o.protection: o for o in d.outgoing}
    assert by[Protection.SMIME].recipients == (A("bob@partner.example"),)
    assert by[Protection.OPENPGP].recipients == (A("dave@other.example"),)
    assert by[Protection.INTERNAL].recipients == (A("carol@example.org"),)
    assert by[Protection.INTERNAL].message == raw
    assert d.held == (A("eve@nokey.example"),)
    assert openssl_decrypt(by[Protection.SMIME].message, bob.cert_path, bob.key_path) == canonical(raw)
    assert gpg_decrypt(by[Protection.OPENPGP].message, dave_pgp[1]) == canonical(raw)
    assert d.require_tls


def test_a_bcc_recipient_gets_a_copy_of_their_own(tmp_path: Path, store: KeyStore, smime_ca: object) -> None:
    ca = SmimeAuthority(store)
    for who in ("x@partner.example", "y@partner.example", "hidden@partner.example"):
        generate(store, ca, who, kinds=("smime",), key_bits=2048)
    raw = confidential(to="x@partner.example, y@partner.example")
    d = protect_outbound(raw, [A("x@partner.example"), A("y@partner.example"), A("hidden@partner.example")],
                         StoreKeys(store), policy(tmp_path))
    groups = sorted(tuple(str(r) for r in o.recipients) for o in d.outgoing)
    assert groups == [("hidden@partner.example",), ("x@partner.example", "y@partner.example")]


def test_a_key_that_cannot_encrypt_falls_back_to_the_policy(tmp_path: Path, store: KeyStore,
                                                            dave_pgp: tuple[bytes, bytes]) -> None:
    record = import_key(store, "dave@other.example", dave_pgp[0])
    from dataclasses import replace

    store.put(replace(record, public=b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\ngarbage\n-----END PGP PUBLIC KEY BLOCK-----\n"))
    d = protect_outbound(confidential(to="dave@other.example"), [A("dave@other.example")], StoreKeys(store),
                         policy(tmp_path, without_key="refuse"))
    assert d.outgoing == () and d.refused[0].recipient == A("dave@other.example")
    assert any("openpgp encryption failed" in n for n in d.notes)


def test_signing_by_policy_then_encryption(tmp_path: Path, store: KeyStore, bob: Identity) -> None:
    ca = SmimeAuthority(store)
    generate(store, ca, "alice@example.org", kinds=("smime",), key_bits=2048)
    import_key(store, "bob@partner.example", bob.cert_path.read_bytes())
    raw = confidential()
    d = protect_outbound(raw, [A("bob@partner.example")], StoreKeys(store), policy(tmp_path, sign="confidential"),
                         sender=A("alice@example.org"))
    assert d.signed
    inner = openssl_decrypt(d.outgoing[0].message, bob.cert_path, bob.key_path)
    assert b"multipart/signed" in inner
    assert canonical(openssl_verify(inner, ca.cert_path)) == canonical(raw)
    # A sender without a key: sent unsigned, said in the notes, still encrypted.
    d2 = protect_outbound(raw, [A("bob@partner.example")], StoreKeys(store), policy(tmp_path, sign="always"),
                          sender=A("nokey@example.org"))
    assert not d2.signed and d2.notes and d2.outgoing[0].protection is Protection.SMIME


def test_pickup_link_expires(tmp_path: Path, store: KeyStore) -> None:
    now = [1000.0]
    pickup = PickupStore(tmp_path / "p", lifetime_days=1, clock=lambda: now[0])
    p = OutboundPolicy(Classifier(), lambda d: False, without_key="pickup", pickup=pickup)
    d = protect_outbound(confidential(), [A("bob@partner.example")], StoreKeys(store), p, sender=A("a@example.org"))
    now[0] += 86400 + 1
    from mailbastion.crypto.pickup import PickupExpired

    with pytest.raises(PickupExpired):
        pickup.open(d.pickups[0].token, d.pickups[0].code)
