"""`mailbastion init`: a new deployment with secure defaults, in one folder.

Writes `<dir>/mailbastion.toml` (every listener's address spelled out), the private CA and one
certificate per role, the SQLite directory with the first domain and `postmaster@<domain>`, and the
spool, mailbox and quarantine folders. Refuses to touch a folder that already holds a deployment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mailbastion.config import load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.pki import make_deployment_pki

CONFIG_NAME = "mailbastion.toml"

TEMPLATE = """\
# mailbastion configuration, written by `mailbastion init` for {domain}.
# Every key has a secure default; `mailbastion config show` prints the effective values.
# Relative paths are below server.data_dir, itself relative to this file.

[server]
hostname = "{hostname}"
data_dir = "."
workers = 1                     # SMTP acceptor processes (one per core for load)
log_level = "info"

[smtp]                          # the gateway's inbound MX listener
listen = ["127.0.0.1:2525"]
max_message_size = 26214400     # 25 MiB
max_recipients = 100
max_connections = 1000
max_connections_per_client = 20
proxy_protocol = false          # true only behind a load balancer that sends PROXY headers
xclient_hosts = []              # Postfix XCLIENT: trusted load generators only

[relay]
networks = []                   # default deny: nobody relays without authentication

[tls]
min_version = "TLSv1.2"
cert = "tls/gateway.crt"        # replace with a certificate for {hostname} from a public CA
key = "tls/gateway.key"
ca = "tls/ca.crt"               # the private CA of the gateway <-> MDA link

[lmtp]                          # the MDA; the only path from the gateway inward (mutual TLS)
listen = "127.0.0.1:2424"
require_client_cert = true

[spool]
dir = "spool"

[directory]
url = "sqlite:///directory.db"
recipient_map = "recipient-map.json"

[mailbox]
root = "mail"

[dns]
nameservers = []                # empty: the system resolver

[antivirus]
workstation_engine = "microsoft"  # the workstations' anti-virus vendor: mail must be scanned by another
stale_policy = "soft_reject"    # signatures older than the limit: 451 until they are fresh again

[antivirus.clamav]
enabled = "auto"                # used whenever clamd answers with signatures: {clamav_note}
socket = "{clamav_socket}"
max_signature_age_hours = 24.0
"""

CLAMD_SOCKET = "/var/run/clamav/clamd.ctl"
CLAMAV_DB = Path("/var/lib/clamav")


def clamav_available() -> tuple[bool, str]:
    """Whether clamd has signatures on this host now, and what to tell the administrator. ClamAV is written
    `enabled = "auto"` either way: the gateway uses it as soon as clamd answers (docs/antivirus.md)."""
    if not Path("/usr/sbin/clamd").exists():
        return False, "clamd is not installed yet (apt-get install clamav-daemon clamav-freshclam)"
    if not any(CLAMAV_DB.glob("*.c[lvu]d")) and not any(CLAMAV_DB.glob("*.[hn]db")):
        return False, "no ClamAV signatures in /var/lib/clamav yet (run freshclam)"
    return True, "clamd with the signatures in /var/lib/clamav (freshclam keeps them fresh)"


@dataclass(frozen=True, slots=True)
class InitResult:
    config: Path
    postmaster: str
    password: str
    notes: tuple[str, ...] = ()


def initialise(directory: Path, domain: str, *, hostname: str | None = None) -> InitResult:
    """Create a deployment in `directory`. Raises ConfigError when one is already there."""
    from mailbastion.core.address import parse_address

    domain = parse_address(f"postmaster@{domain}").domain  # validates and normalises the domain
    directory = directory.resolve()
    config = directory / CONFIG_NAME
    if config.exists():
        raise ConfigError("a deployment already exists here; refusing to overwrite it", file=str(config))
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o750)
    hostname = hostname or f"mail.{domain}"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        clamav_on, clamav_note = clamav_available()
        f.write(TEMPLATE.format(domain=domain, hostname=hostname, clamav_note=clamav_note,
                                clamav_socket=CLAMD_SOCKET))
    settings = load_settings(config)
    make_deployment_pki(settings.base_dir / "tls", hostname)
    for sub in (settings.spool.dir, settings.mailbox.root, "local.d"):
        path = settings.path(sub)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    (settings.path("local.d") / "scores.toml").write_text(
        "# Site overrides of the shipped symbol weights and action thresholds, e.g.\n"
        "# [actions]\n# reject = 15.0\n# [symbols.R_SPF_FAIL]\n# weight = 3.0\n",
        encoding="utf-8",
    )
    from mailbastion.directory import Directory

    directory_store = Directory.create(settings)
    directory_store.add_domain(domain, by="init", reason="mailbastion init")
    password = directory_store.add_account(f"postmaster@{domain}", None, by="init", reason="mailbastion init")
    # The spam filter learns what our users forward to these; they must exist to be reachable.
    report = settings.spam.report
    for local in (report.spam_local_part, report.ham_local_part):
        directory_store.add_alias(f"{local}@{domain}", f"postmaster@{domain}", by="init",
                                  reason="spam report address")
    db_url = settings.directory_url
    if db_url.startswith("sqlite:///"):
        os.chmod(db_url[len("sqlite:///"):], 0o600)  # password hashes: the service only
    notes = () if clamav_on else ((
        f"antivirus: {clamav_note}. Until clamd answers with signatures, measure 2 is not met and mail is deferred "
        "(451, senders retry); ClamAV comes on by itself within a minute of that. `mailbastion av status` tells."),)
    return InitResult(config, f"postmaster@{domain}", password or "", notes)
