"""The split made real: the gateway and the internal host in network namespaces of their own, joined by a
veth pair (10.77.0.1 <-> 10.77.0.2), a client namespace in front of the gateway (10.77.0.6 -> 10.77.0.5),
each host with the nftables rules `mailbastion firewall` generated from its configuration, each server
started as root and running as the service user.

Both hosts are made the way docs/deployment.md says: `init --role internal`, `pki issue-gateway`,
`init --role gateway --bundle`, `firewall`, accounts added with the CLI as the service user.
"""

from __future__ import annotations

import json
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from split_kit import (
    SERVICE_USER,
    Namespaces,
    as_service_user,
    ensure_service_user,
    identity,
    log_has,
    mb_argv,
    need_root_tools,
    open_tmpdir,
    reachable,
    server_pids,
    stop,
    wait_for,
)

from mailbastion.directory.recipient_map import read_map
from mailbastion.testing.deployment import _set_toml

pytestmark = pytest.mark.slow

GW, IN, CL = "10.77.0.1", "10.77.0.2", "10.77.0.6"
GW_FRONT = "10.77.0.5"  # the gateway's address towards the client
DNS_SERVER = """
import time
from mailbastion.testing.dns_server import DnsTestServer
DnsTestServer("127.0.0.1", 53).start()
print("dns ready", flush=True)
while True:
    time.sleep(3600)
"""
SEND = """
import json, smtplib, sys
host, sender, rcpts = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
msg = ("From: " + sender + "\\r\\nTo: " + rcpts[0] + "\\r\\nSubject: " + sys.argv[4] + "\\r\\nMessage-ID: <" + sys.argv[4]
       + "@outside.example>\\r\\nDate: Tue, 01 Dec 2026 10:00:00 +0000\\r\\n\\r\\nhello from outside\\r\\n").encode()
try:
    with smtplib.SMTP(host, 25, local_hostname="mx.outside.example", timeout=60) as s:
        refused = s.sendmail(sender, rcpts, msg)
    print(json.dumps({"refused": {k: v[0] for k, v in refused.items()}}))
except smtplib.SMTPRecipientsRefused as exc:
    print(json.dumps({"error": {k: v[0] for k, v in exc.recipients.items()}}))
"""
CONNECT = """
import json, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(type(exc).__name__ + ": " + str(exc)))
"""
FETCH = """
import json, sys, urllib.request
print(json.dumps(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode()))
"""


@dataclass(eq=False)
class Split:
    ns: Namespaces
    root: Path
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def config(self, host: str) -> Path:
        return self.root / host / "mailbastion.toml"

    def log(self, host: str) -> Path:
        return self.root / f"{host}.log"

    def start(self, host: str) -> None:
        ns = "gw" if host == "gw" else "in"
        since = self.log(host).stat().st_size if self.log(host).exists() else 0
        self.servers[host] = self.ns.popen(ns, reachable(mb_argv("serve", "-c", str(self.config(host)))), self.log(host))
        role = "gateway" if host == "gw" else "internal"
        wait_for(f"the {role} serving", lambda: self._ready(host, role, since))

    def _ready(self, host: str, role: str, since: int) -> bool:
        if self.servers[host].poll() is not None:
            raise RuntimeError(f"{role} exited: {self.log(host).read_text()[-3000:]}")
        return log_has(self.log(host), f"mailbastion serving ({role})", since)

    def stop(self, host: str) -> None:
        stop(self.servers.pop(host))

    def admin(self, *args: str) -> str:
        """A CLI command on the internal host, as the service user (as docs/deployment.md says)."""
        return self.ns.run("in", as_service_user(mb_argv(*args, "-c", str(self.config("in"))))).stdout

    def send(self, rcpts: list[str], subject: str) -> dict[str, object]:
        return self.ns.python("cl", SEND, GW_FRONT, "sender@outside.example", ",".join(rcpts), subject)  # type: ignore[return-value]

    def maildir(self, address: str) -> list[Path]:
        local, domain = address.split("@")
        base = self.root / "in" / "mail" / domain / local
        return [p for d in (base / "new", base / ".Junk" / "new") if d.is_dir() for p in d.iterdir()]

    def gateway_map(self) -> set[str]:
        try:
            return set(read_map(self.root / "gw" / "recipient-map.json").addresses)
        except (OSError, ValueError):
            return set()


def _configure(path: Path, values: dict[tuple[str, str], str]) -> None:
    text = path.read_text()
    for (section, key), value in values.items():
        text = _set_toml(text, section, key, value)
    path.write_text(text)


@pytest.fixture(scope="module")
def split() -> Iterator[Split]:
    need_root_tools("ip", "nft", "unshare", "runuser")
    ensure_service_user()
    root = open_tmpdir("mb-split-")
    links = [("gw", GW, "in", IN), ("gw", GW_FRONT, "cl", CL)]
    try:
        with Namespaces(["gw", "in", "cl"], links) as ns:
            s = Split(ns, root)
            _make_hosts(s)
            s.ns.popen("gw", [*mb_argv()[:1], "-c", DNS_SERVER], root / "dns.log")
            wait_for("the gateway's DNS server", lambda: log_has(root / "dns.log", "dns ready"))
            s.start("in")
            s.start("gw")
            wait_for("the first map push", lambda: "alice@example.test" in s.gateway_map())
            yield s
            for host in list(s.servers):
                s.stop(host)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _make_hosts(s: Split) -> None:
    r = s.root
    s.ns.run("in", mb_argv("init", "--role", "internal", "--dir", str(r / "in"), "--domain", "example.test",
                           "--link-address", IN, "--gateway-address", GW))
    s.ns.run("in", mb_argv("pki", "issue-gateway", "-c", str(s.config("in")), "--out", str(r / "gateway.tar"),
                           "--hostname", "mx.example.test"))
    s.ns.run("gw", mb_argv("init", "--role", "gateway", "--bundle", str(r / "gateway.tar"), "--dir", str(r / "gw")))
    _configure(s.config("in"), {("map_push", "check_interval"): "0.5",
                                ("metrics", "allow_remote"): "true", ("metrics", "listen"): f'"{IN}:9325"',
                                ("firewall", "admin_from"): '["192.0.2.0/28"]'})
    _configure(s.config("gw"), {("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
                                ("dns", "nameservers"): '["127.0.0.1"]', ("dns", "timeout"): "2.0",
                                ("spool", "scan_interval_seconds"): "0.2", ("spool", "min_backoff_seconds"): "1",
                                ("spool", "max_backoff_seconds"): "2", ("metrics", "listen"): '"127.0.0.1:9325"'})
    for host, ns in (("in", "in"), ("gw", "gw")):
        rules = r / f"{host}.nft"
        rules.write_text(s.ns.run(ns, mb_argv("firewall", "-c", str(s.config(host)))).stdout)
        s.ns.run(ns, ["nft", "-f", str(rules)])
    for user in ("alice", "bob"):
        s.admin("account", "add", f"{user}@example.test")  # a generated password


def test_mail_flows_from_the_client_through_the_gateway_to_the_internal_maildir(split: Split) -> None:
    assert split.send(["alice@example.test"], "flow1") == {"refused": {}}
    files = wait_for("delivery to alice", lambda: split.maildir("alice@example.test"))
    assert b"hello from outside" in files[0].read_bytes()  # type: ignore[index]
    assert files[0].stat().st_uid == pwd.getpwnam(SERVICE_USER).pw_uid  # type: ignore[index]
    # the gateway relayed it over the link: its queue logged the delivery to the MDA at 10.77.0.2
    assert log_has(split.log("gw"), "status=delivered")


def test_connections_the_rules_do_not_allow_fail(split: Split) -> None:
    # Something listens on the internal host's link address (its metrics, from inside it) ...
    text = split.ns.python("in", FETCH, f"http://{IN}:9325/metrics")
    assert "mailbastion_messages_total" in str(text) or "mailbastion_map_push" in str(text)
    # ... but the gateway may not open it: its output chain allows only LMTP inward.
    before = _counter(split, "gw", "output", "nothing else towards the internal host")
    outcome = split.ns.python("gw", CONNECT, IN, "9325", "3")
    assert outcome != "connected" and "refused" not in str(outcome).lower(), outcome
    assert _counter(split, "gw", "output", "nothing else towards the internal host") > before
    # The push port is the internal host's only: the client's attempt dies in the gateway's input chain.
    before = _counter(split, "gw", "input", "everything else")
    outcome = split.ns.python("cl", CONNECT, GW_FRONT, "2426", "3")
    assert outcome != "connected" and "refused" not in str(outcome).lower(), outcome
    assert _counter(split, "gw", "input", "everything else") > before
    # LMTP, which the rules allow, connects.
    assert split.ns.python("gw", CONNECT, IN, "2424", "10") == "connected"


def _counter(split: Split, ns: str, chain: str, comment: str) -> int:
    """Packets counted by the rule of `chain` whose comment starts with `comment`."""
    listing = split.ns.run(ns, ["nft", "-j", "list", "chain", "inet", "mailbastion", chain]).stdout
    for item in json.loads(listing)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment", "").startswith(comment):
            return int(next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e))
    raise AssertionError(f"no rule {comment!r} with a counter in {chain}")


def test_the_map_reaches_the_gateway_within_seconds_of_a_deactivation(split: Split) -> None:
    assert "bob@example.test" in split.gateway_map()
    since = split.log("gw").stat().st_size
    split.admin("account", "deactivate", "bob@example.test", "--reason", "leaver")
    wait_for("bob gone from the gateway's map", lambda: "bob@example.test" not in split.gateway_map(), timeout=30)
    assert log_has(split.log("gw"), "recipient_map.applied", since)
    refused = split.send(["bob@example.test"], "to-the-leaver")
    assert refused == {"error": {"bob@example.test": 550}}


def test_with_the_internal_host_down_the_gateway_queues_then_delivers(split: Split) -> None:
    split.stop("in")
    before = len(split.maildir("alice@example.test"))
    assert split.send(["alice@example.test"], "while-down") == {"refused": {}}  # accepted: queued on the gateway
    wait_for("a deferred delivery on the gateway", lambda: log_has(split.log("gw"), "status=deferred"))
    assert len(split.maildir("alice@example.test")) == before
    split.start("in")
    wait_for("delivery after the internal host is back", lambda: len(split.maildir("alice@example.test")) > before)


def test_the_gateway_holds_no_directory_password_or_mailbox_code(split: Split) -> None:
    gw = split.servers["gw"]
    report = split.root / "gw" / "run" / f"selfcheck-gateway-{gw.pid}.json"
    report.unlink(missing_ok=True)
    gw.send_signal(signal.SIGUSR2)
    wait_for("the gateway's self-check", report.exists)
    data = json.loads(report.read_text())
    assert data["clean"] and data["must_not_hold"] == {"modules": [], "files": []}
    assert "mailbastion.apps.map_push" in data["modules"]  # the push listener runs here ...
    assert not [m for m in data["modules"] if m.startswith(("mailbastion.apps.map_publisher", "mailbastion.directory.s",
                                                            "mailbastion.mailbox", "argon2", "sqlalchemy"))]
    assert not [f for f in data["open_files"] if "directory.db" in f or "/mail/" in f or f.endswith("ca.key")]
    assert not (split.root / "gw" / "tls" / "ca.key").exists()  # ... and the CA key never came here


def test_both_servers_run_as_the_service_user_with_no_capability(split: Split) -> None:
    uid = pwd.getpwnam(SERVICE_USER).pw_uid
    for host, proc in split.servers.items():
        pids = server_pids(proc)
        assert pids, host
        for pid in pids:
            for thread in identity(pid):
                assert thread["uids"] == [uid] * 4, (host, thread)
                assert thread["CapEff"] == thread["CapPrm"] == thread["CapAmb"] == 0, (host, thread)


def _audit(split: Split, host: str) -> dict[int, dict[str, object]]:
    """`mailbastion audit --json` on a host, as root (it reads the nftables table), inside its namespace."""
    ns = "gw" if host == "gw" else "in"
    res = split.ns.run(ns, reachable(mb_argv("audit", "-c", str(split.config(host)), "--json")), check=False,
                       timeout=600)
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    return {m["id"]: m for m in json.loads(res.stdout)["measures"]}


def test_audit_proves_the_split_on_both_hosts(split: Split) -> None:
    gw = _audit(split, "gw")
    assert gw[5]["status"] == "pass", gw[5]
    five = "\n".join(gw[5]["evidence"])  # type: ignore[arg-type]
    assert "role: gateway" in five and "no CA key on this host" in five and "recipient map: serial" in five
    assert "firewall: table inet mailbastion in force" in five
    assert gw[9]["status"] == "pass", gw[9]  # SMTP, the relay and map-push listeners (mutual TLS)
    assert gw[3]["status"] == "pass" and gw[4]["status"] == "pass", (gw[3], gw[4])
    assert gw[6]["status"] == "not built" and "internal host" in gw[6]["evidence"][0]  # type: ignore[index]
    assert gw[1]["status"] == "fail"  # ClamAV is off on this gateway: only YARA and the attachment policy
    inside = _audit(split, "in")
    assert inside[5]["status"] == "pass", inside[5]
    five = "\n".join(inside[5]["evidence"])  # type: ignore[arg-type]
    assert f"{GW}:2426: last map push accepted" in five and "table inet mailbastion in force" in five
    assert inside[9]["status"] == "pass", inside[9]  # LMTP (mutual TLS), the portal, submission
    assert inside[6]["status"] == "pass", inside[6]  # dates applied on time by the running scheduler
    for n in (1, 3, 4):  # the MX is on the gateway: said, not passed
        assert inside[n]["status"] == "fail" and "gateway" in "\n".join(inside[n]["evidence"]), inside[n]  # type: ignore[arg-type]
    # Run as root, the audit leaves its report to the service user, who owns data_dir (the portal reads it).
    uid = pwd.getpwnam(SERVICE_USER).pw_uid
    for host in ("gw", "in"):
        assert (split.root / host).stat().st_uid == uid
        assert (split.root / host / "state" / "audit-last.json").stat().st_uid == uid
        assert (split.root / host / "state").stat().st_uid == uid
