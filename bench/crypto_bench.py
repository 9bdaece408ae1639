"""CPU per message of our S/MIME and OpenPGP encryption at 5 KB and 1 MB, next to `openssl cms -encrypt` and
`gpg --encrypt` on the same messages, and the outbound policy's throughput on confidential mail.

    PYTHONPATH=src python bench/crypto_bench.py [--count N]

Ours: CPU time of this process (time.process_time) per message, in process. The tools: CPU time of the child
processes (getrusage RUSAGE_CHILDREN: user + system) per message, which includes their start-up, since that
is what a mail system calling them per message pays. Keys are made at start (RSA-3072 certificate from our
S/MIME CA, gpg's ed25519/cv25519 key). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from cryptography import x509

from mailbastion.core.address import parse_address
from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.classify import Classifier
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.manage import generate, import_key
from mailbastion.crypto.mime_wrap import inner_entity
from mailbastion.crypto.outbound import OutboundPolicy, StoreKeys, protect_outbound
from mailbastion.crypto.smime_ca import SmimeAuthority


def make_message(size: int, subject: str = "Quarterly figures") -> bytes:
    head = (f"From: Alice <alice@example.org>\r\nTo: bob@partner.example\r\nSubject: {subject}\r\n"
            "Date: Mon, 1 Jun 2026 10:00:00 +0000\r\nMessage-ID: <b@example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, figures 0123456789 follow.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def ours(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1000


def children(cmd: list[str], data: bytes, n: int, env: dict[str, str] | None = None) -> float:
    subprocess.run(cmd, input=data, capture_output=True, check=True, env=env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        subprocess.run(cmd, input=data, capture_output=True, check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="messages per 5 KB row (1 MB rows: a fifth)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mb-cbench-"))
    try:
        store = KeyStore(tmp / "keys", tmp / "keys" / "d.key")
        ca = SmimeAuthority(store)
        generate(store, ca, "bob@partner.example", kinds=("smime", "openpgp"), key_bits=3072)
        s_rec = store.active("bob@partner.example", "smime")[0]
        p_rec = store.active("bob@partner.example", "openpgp")[0]
        cert = x509.load_pem_x509_certificates(s_rec.public)[0]
        pgp = openpgp.load_cert(p_rec.public)
        cert_pem, pub_asc = tmp / "bob.pem", tmp / "bob.asc"
        cert_pem.write_bytes(s_rec.public.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n")
        pub_asc.write_bytes(p_rec.public)
        home = tempfile.mkdtemp(prefix="mbgb-")
        os.chmod(home, 0o700)
        env = {**os.environ, "GNUPGHOME": home}
        print(f"S/MIME: RSA-3072 certificate, AES-256-CBC; OpenPGP: gpg-made cv25519 key; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"{'message':<8} {'operation':<44} {'CPU ms/msg':>11}")
        for size, label in ((5 * 1024, "5 KB"), (1024 * 1024, "1 MB")):
            n = args.count if size < 100_000 else max(3, args.count // 5)
            raw = make_message(size)
            inner = inner_entity(raw)
            rows = [
                ("S/MIME, ours (cryptography, in process)", ours(lambda raw=raw: smime.encrypt_message(raw, [cert]), n)),
                ("S/MIME, openssl cms -encrypt -aes256", children(
                    ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", str(cert_pem)], inner, n)),
                ("OpenPGP, ours (pysequoia, in process)", ours(lambda raw=raw: openpgp.encrypt_message(raw, [pgp]), n)),
                ("OpenPGP, gpg --encrypt --recipient-file", children(
                    ["gpg", "--batch", "--quiet", "--armor", "--trust-model", "always", "--encrypt",
                     "--recipient-file", str(pub_asc)], inner, n, env)),
            ]
            for name, ms in rows:
                print(f"{label:<8} {name:<44} {ms:>11.2f}")
        # The policy on the outbound path: classify + look up the key + encrypt, for a confidential 5 KB message.
        store2 = KeyStore(tmp / "k2", tmp / "k2" / "d.key")
        import_key(store2, "bob@partner.example", cert_pem.read_bytes())
        policy = OutboundPolicy(Classifier(), lambda d: d == "example.org")
        rcpt = [parse_address("bob@partner.example")]
        for subject, label in (("[confidential] figures", "confidential, encrypted"), ("figures", "not confidential")):
            msg = make_message(5 * 1024, subject)
            n = args.count * 4
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                protect_outbound(msg, rcpt, StoreKeys(store2), policy)
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            print(f"{'5 KB':<8} {'protect_outbound, ' + label:<44} {used / n * 1000:>11.2f}   ({n / wall:.0f} msg/s, one core)")
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
