"""Crafted spoofing samples of issue 8 (items 3 and 4) for `mailbastion scan`, with the DNS they need.

    python tests/auth/spoofing_samples.py OUTDIR     # writes OUTDIR/*.eml and OUTDIR/mailbastion.toml,
                                                     # then serves their DNS on loopback until Ctrl-C
    mailbastion scan -c OUTDIR/mailbastion.toml --from ... --ip ... OUTDIR/<sample>.eml   (commands printed)

Run the same `scan` with PYTHONPATH pointing at another checkout to compare. Not a test (pytest does not
collect it): the before/after figures of the DKIM l= and look-alike checks were made with it. Keys are generated on each run.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import dkim
import idna
from authkit import SigningKey, message, rsa_key

from mailbastion.testing.dns_server import DnsTestServer

ATTACKER = "198.51.100.66"
BANK_MX = "192.0.2.25"
FORWARDER = "203.0.113.7"  # a mailing list or forwarder: SPF passes for its own domain, never aligned with bank.test
HOMOGRAPH = idna.encode("pаypal.com").decode()  # Cyrillic а: xn--pypal-4ve.com


def samples(dns: DnsTestServer) -> dict[str, tuple[bytes, str, str]]:
    """name -> (message, MAIL FROM, client IP)."""
    dns.add("bank.test", "TXT", f"v=spf1 ip4:{BANK_MX} -all")
    dns.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    bank = rsa_key("bank.test", "s1")
    dns.add(f"{bank.selector}._domainkey.bank.test", "TXT", bank.record)
    dns.add("evil.test", "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    dns.add("forwarder.test", "TXT", f"v=spf1 ip4:{FORWARDER} -all")
    dns.add(HOMOGRAPH, "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    dns.add(f"_dmarc.{HOMOGRAPH}", "TXT", "v=DMARC1; p=reject")
    fake: SigningKey = rsa_key(HOMOGRAPH, "k1")
    dns.add(f"k1._domainkey.{HOMOGRAPH}", "TXT", fake.record)

    statement = message("Bank <news@bank.test>", to="bob@ours.test", subject="Your statement",
                        body="Your monthly statement is ready in online banking.\r\n")
    with_l = dkim.sign(statement, b"s1", b"bank.test", bank.private, length=True,
                       canonicalize=(b"relaxed", b"relaxed")) + statement
    tail = b"\r\nURGENT: your account is locked. Confirm it at http://bank-verify.evil.test/login\r\n"
    phish = "Your account is limited. Restore it at https://{d}/signin\r\n"
    return {
        "l-tail": (with_l + tail, "bounce@evil.test", ATTACKER),
        "homograph-alabel": (fake.sign(message(f"PayPal <service@{HOMOGRAPH}>", subject="Account limited",
                                               body=phish.format(d=HOMOGRAPH))), f"bounce@{HOMOGRAPH}", ATTACKER),
        "homograph-utf8": (fake.sign(message("PayPal <service@pаypal.com>", subject="Account limited",
                                             body=phish.format(d="pаypal.com"))), f"bounce@{HOMOGRAPH}", ATTACKER),
        # Genuine bank mail whose header starts folded, forwarded: only DKIM can carry DMARC.
        "folded-first-line": (b" folded first line\r\n" + bank.sign(statement), "fwd@forwarder.test", FORWARDER),
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    dns = DnsTestServer().start()
    (out / "mailbastion.toml").write_text(
        f'[server]\nhostname = "mx.ours.test"\ndata_dir = "{out / "data"}"\n'
        f'[dns]\nnameservers = ["{dns.host}"]\nport = {dns.port}\n[antivirus]\nenabled = false\n')
    for name, (raw, sender, ip) in samples(dns).items():
        (out / f"{name}.eml").write_bytes(raw)
        print(f"mailbastion scan -c {out}/mailbastion.toml --from {sender} --ip {ip} "
              f"{out}/{name}.eml")
    sys.stdout.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    dns.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
