"""`mailbastion init`: a new deployment with secure defaults, in one folder; and what every new domain gets.

Writes `<dir>/mailbastion.toml` (every listener's address spelled out), the private CA and one
certificate per role, the SQLite directory with the first domain and `postmaster@<domain>`, and the
spool, mailbox and quarantine folders. Refuses to touch a folder that already holds a deployment.

`provision_domain` (run by `init` and by `mailbastion domain add`) adds a domain together with what
`mailbastion dns records` publishes for it, so that the records are complete and every address in them
exists at once:
- `dmarc-reports@` (DMARC `rua`) and `tls-reports@` (TLS-RPT `rua`): aliases of the account `reports@`,
  one mailbox where a report reader (parsedmarc, say) finds both kinds. Reports arrive daily from every
  large provider, so they do not go to the postmaster's inbox. Its password is not shown: whoever reads
  the reports sets one with `mailbastion account password reports@<domain>`.
- DKIM keys, RSA-2048 and ed25519 (`auth/keys.py`), pending until `mailbastion dns check` sees their
  records published (unless the domain has keys already, made by `dkim keygen` before).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailbastion.config import Settings, load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.pki import make_deployment_pki

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

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

[relay_in]                      # the gateway takes outbound mail from the internal host only (mutual TLS)
listen = ["127.0.0.1:2526"]

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


REPORTS_ACCOUNT = "reports"
REPORT_ALIASES = ("dmarc-reports", "tls-reports")  # the rua addresses of dns/records.py's DMARC and TLS-RPT


@dataclass(frozen=True, slots=True)
class DomainSetup:
    """What `provision_domain` made for a domain."""

    domain: str
    reports_mailbox: str  # reports@<domain>
    report_addresses: tuple[str, ...]  # dmarc-reports@, tls-reports@ (aliases of the mailbox)
    dkim_selectors: tuple[str, ...]  # new pending keys; empty when the domain had keys already

    def describe(self) -> list[str]:
        """Lines for the administrator."""
        lines = [(f"{', '.join(self.report_addresses)} deliver to {self.reports_mailbox} (DMARC and TLS reports; "
                  f"set its password with `mailbastion account password {self.reports_mailbox}` to read them)")]
        if self.dkim_selectors:
            lines.append(f"DKIM keys for {self.domain} made ({', '.join(self.dkim_selectors)}, pending): publish "
                         f"what `mailbastion dns records {self.domain}` prints; `mailbastion dns check` starts "
                         "signing once the records are live")
        return lines


def provision_domain(settings: Settings, directory: Directory, domain: str, *, by: str,
                     reason: str = "") -> DomainSetup:
    """Add `domain` to the directory with its reports mailbox and aliases, and make its DKIM keys.

    Raises what `Directory.add_domain` raises (malformed domain, DomainExists) before anything is made.
    When the keys cannot be made (a key folder not writable, say) the domain stays and ConfigError says
    so and how to finish: `mailbastion dkim keygen DOMAIN`."""
    from mailbastion.auth.keys import ALGORITHMS, KeyStore

    name = directory.add_domain(domain, by=by, reason=reason)
    mailbox = f"{REPORTS_ACCOUNT}@{name}"
    why = "DMARC and TLS-RPT reports (the rua addresses of `dns records`)"
    directory.add_account(mailbox, None, by=by, reason=why)  # generated password, not shown: set one to read it
    aliases = tuple(f"{local}@{name}" for local in REPORT_ALIASES)
    for alias in aliases:
        directory.add_alias(alias, mailbox, by=by, reason=why)
    keys = KeyStore(settings.path(settings.auth.dkim_keys_dir))
    selectors: tuple[str, ...] = ()
    try:
        if not keys.keys(name):
            selectors = tuple(keys.generate(name, alg, bits=settings.auth.rsa_bits).selector for alg in ALGORITHMS)
    except (ConfigError, OSError) as exc:
        raise ConfigError(f"domain {name} added, but its DKIM keys were not made ({exc}): "
                          f"run `mailbastion dkim keygen {name}`") from exc
    return DomainSetup(name, mailbox, aliases, selectors)


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
    setup = provision_domain(settings, directory_store, domain, by="init", reason="mailbastion init")
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
    return InitResult(config, f"postmaster@{domain}", password or "", (*setup.describe(), *notes))
