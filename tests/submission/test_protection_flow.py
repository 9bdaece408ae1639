"""The outbound encryption policy on the submission path, through a real `mailbastion serve`: a confidential
message to an outside recipient whose S/MIME certificate we hold leaves encrypted (openssl decrypts it to the
original), DKIM-signed over the encrypted form, by verified TLS only (REQUIRETLS); one to an outsider without a
key never leaves in clear: the original is kept in the outbox's hold/ and the sender gets a notice. REQUIRETLS
needs MTA-STS (or DNSSEC) for the remote domain: its policy is served over HTTPS on 127.0.0.7:443."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from submission_world import ALICE, PASSWORD, SinkThread, World, message, publish_dkim, remote_mx

from mailbastion.spool.layout import QueueState, SpoolLayout
from mailbastion.testing.deployment import MB, Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crypto"))
from crypto_testkit import SmimeTestCa, openssl_decrypt

BOB = "bob@remote.test"
STS_IP = "127.0.0.7"  # the MTA-STS policy host: port 443 there (REQUIRETLS needs MTA-STS or DNSSEC, RFC 8689)


def sts_server(cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    policy = b"version: STSv1\r\nmode: enforce\r\nmx: mx.remote.test\r\nmax_age: 86400\r\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(policy)))
            self.end_headers()
            self.wfile.write(policy)

    httpd = http.server.ThreadingHTTPServer((STS_IP, 443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path, Path]]:
    tmp = tmp_path_factory.mktemp("protection-flow")
    port = free_port()
    bob = SmimeTestCa.create(tmp / "bob-ca").issue(tmp / "bob", BOB)
    with DnsTestServer() as dns, SinkThread() as sinks:
        sink = remote_mx(tmp, dns, sinks, port)
        from mailbastion.testing.certificates import CertAuthority

        web_ca = CertAuthority.create(tmp / "web-ca", "Remote web CA")
        web = web_ca.issue(tmp / "web", ["mta-sts.remote.test", "mta-sts.nokey.test"])
        trusted = tmp / "trusted.pem"
        trusted.write_bytes(sink.ca_path.read_bytes() + web_ca.cert_path.read_bytes())  # type: ignore[attr-defined]
        httpd = sts_server(web.chain_path, web.key_path)
        dns.add("_mta-sts.remote.test", "TXT", "v=STSv1; id=20261202T1")
        dns.add("mta-sts.remote.test", "A", STS_IP)
        # nokey.test: the same remote MX (mx.remote.test), MTA-STS too; its user has no key at first.
        dns.add("nokey.test", "MX", "10 mx.remote.test")
        dns.add("_mta-sts.nokey.test", "TXT", "v=STSv1; id=20261202T1")
        dns.add("mta-sts.nokey.test", "A", STS_IP)
        d = Deployment(tmp / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("delivery", "remote_port"): str(port), ("outbound", "ca_file"): f'"{trusted}"'})
        d.init()
        d.mb("account", "add", ALICE, "--password-stdin", input=f"{PASSWORD}\n")
        d.mb("keys", "import", BOB, str(bob.cert_path))
        publish_dkim(d, dns)
        d.start()
        try:
            yield World(d, dns, sink), bob.cert_path, tmp
        finally:
            d.stop()
            httpd.shutdown()


def test_confidential_to_a_keyed_outsider_leaves_encrypted_and_signed(world: tuple[World, Path, Path]) -> None:
    w, cert, tmp = world
    key = tmp / "bob" / "user.key"
    secret = "The merger closes on Friday; price 41.20."
    raw = message("[confidential] merger", to=BOB, body=secret + "\r\n")
    assert w.submit(raw, [BOB]) == {}
    got = w.wait_at_sink(lambda m: b"pkcs7-mime" in m.content.lower())
    assert secret.encode() not in got.content and got.rcpt_tos == [BOB]
    assert "REQUIRETLS" in [o.upper() for o in got.mail_options] and got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert secret.encode() in openssl_decrypt(got.content, cert, key)
    results = w.dkim_verify(got.content)
    assert len(results) == 2 and all(ok for _, ok in results), results


def test_confidential_to_an_outsider_without_key_is_held_never_sent(world: tuple[World, Path, Path]) -> None:
    w, _, _ = world
    secret = "Salary list attached: do not forward."
    before = len(w.d.delivered(ALICE))
    with w.connect() as s:
        s.login(ALICE, PASSWORD)
        s.mail(ALICE)
        s.rcpt("carol@nokey.test")
        code, text = s.data(message("[confidential] salaries", to="carol@nokey.test", body=secret + "\r\n"))
    assert code == 250 and b"kept for 1 recipient(s) without a key" in text, text
    hold = SpoolLayout(w.d.root / "spool-submission").ids(QueueState.HOLD)
    assert hold, "the original is kept in the outbox's hold/"
    notice = w.d.wait_delivered(ALICE, before + 1)[-1]
    assert b"carol@nokey.test" in notice
    assert w.log_has("submission.held id=")
    # Never in clear to the outside: nothing for her left, and the secret is nowhere at the remote MX.
    assert not [m for m in w.sink.received if secret.encode() in m.content]
    assert not [m for m in w.sink.received if "carol@nokey.test" in m.rcpt_tos]


def test_a_held_message_is_released_encrypted_once_the_key_exists(world: tuple[World, Path, Path]) -> None:
    w, _, tmp = world
    held = w.d.mb("submission", "held")
    (line,) = [x for x in held.splitlines() if "carol@nokey.test" in x]
    queue_id = line.split()[0]
    # Still no key: it stays held, nothing leaves.
    res = subprocess.run([*MB, "submission", "release", queue_id, "--reason", "try", "-c", str(w.d.config)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1 and "stays held: still no key for carol@nokey.test" in res.stderr, res
    carol = SmimeTestCa.create(tmp / "carol-ca").issue(tmp / "carol", "carol@nokey.test")
    w.d.mb("keys", "import", "carol@nokey.test", str(carol.cert_path))
    out = w.d.mb("submission", "release", queue_id, "--reason", "carol's certificate imported")
    assert f"{queue_id} released: 1 part(s) queued" in out
    got = w.wait_at_sink(lambda m: "carol@nokey.test" in m.rcpt_tos)
    assert b"Salary list attached" not in got.content
    assert b"Salary list attached" in openssl_decrypt(got.content, carol.cert_path, carol.key_path)
    assert all(ok for _, ok in w.dkim_verify(got.content))
    assert "no message is held" in w.d.mb("submission", "held")
