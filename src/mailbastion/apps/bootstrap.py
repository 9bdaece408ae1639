"""`mailbastion init`: a new deployment with secure defaults, in one folder; and what every new domain gets.

Writes `<dir>/mailbastion.toml` (every listener's address spelled out), the private CA and one
certificate per role, the SQLite directory with the first domain and `postmaster@<domain>`, and the
spool, mailbox and quarantine folders. Refuses to touch a folder that already holds a deployment.

Roles (`init --role`, docs/deployment.md):
- "all" (the default): everything on one machine, as above.
- "internal": the internal host of a split deployment: the CA (its key stays here), the MDA's certificate
  and the internal client certificate, the directory and mailboxes; no MX listener. It pushes the recipient
  map to the gateway; `mailbastion pki issue-gateway` makes the gateway's bundle here.
- "gateway": the DMZ host, from that bundle (`--bundle FILE`): the MX, spool, quarantine and checks, the
  gateway's certificates and the CA certificate; no directory, no mailboxes, no CA key.

Run as root, `init` also creates the service user (`server.user`, a system user without a shell) when it
is missing and hands the folder to it: everything owned by the user, the configuration file by root with
the user's group allowed to read it.

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

from mailbastion.apps.config_templates import GATEWAY_TEMPLATE, INTERNAL_TEMPLATE, TEMPLATE
from mailbastion.config import Settings, load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.names import INTERNAL_CLIENT_NAME, LMTP_PORT, MAP_PUSH_PORT, MDA_NAME, RELAY_PORT
from mailbastion.pki import make_deployment_pki

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

CONFIG_NAME = "mailbastion.toml"
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


def _hostport(address: str, port: int) -> str:
    from ipaddress import ip_address

    try:
        ip = ip_address(address.strip("[]"))
    except ValueError:
        raise ConfigError(f"{address!r} is not an IP address") from None
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _new_config(directory: Path) -> Path:
    """The folder made (0750) and the path of its configuration file; ConfigError when one is there."""
    directory = directory.resolve()
    config = directory / CONFIG_NAME
    if config.exists():
        raise ConfigError("a deployment already exists here; refusing to overwrite it", file=str(config))
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o750)
    return config


def _write_config(config: Path, text: str) -> Settings:
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return load_settings(config)


def _folders(settings: Settings, *names: str) -> None:
    for sub in names:
        path = settings.path(sub)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def ensure_service_user(name: str) -> bool:
    """As root: create the system user `name` (own group, no shell, no home) when it is missing. Returns True
    when it was created. Not root: nothing (False). Raises ConfigError when useradd fails."""
    import pwd
    import subprocess

    if os.geteuid() != 0 or name == "root":
        return False
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    res = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                          "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ConfigError(f"could not create the service user {name!r}: {res.stderr.strip() or res.returncode}",
                          key="server.user")
    return True


def hand_over(settings: Settings) -> str | None:
    """As root: give data_dir to `server.user` (creating the user when missing): every file and folder owned
    by the user, the configuration file owned by root and readable by the user's group (the service reads
    it, never rewrites it). Returns a line saying so, or None when not root."""
    import grp
    import pwd

    user = settings.server.user
    if os.geteuid() != 0 or user == "root":
        return None
    created = ensure_service_user(user)
    pw = pwd.getpwnam(user)
    base = settings.base_dir
    for folder, dirs, files in os.walk(base):
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    if settings.source is not None:
        os.chown(settings.source, 0, pw.pw_gid)
        os.chmod(settings.source, 0o640)
    ca_key = settings.path(settings.tls.ca_key)
    if settings.server.role != "gateway" and ca_key.exists():  # the server never signs: only root's `tls renew`
        os.chown(ca_key, 0, 0)
    group = grp.getgrgid(pw.pw_gid).gr_name
    return (f"{base} belongs to the service user {user}{' (created)' if created else ''}; the configuration file "
            f"to root, readable by the group {group}")


def initialise(directory: Path, domain: str, *, hostname: str | None = None, role: str = "all",
               link_address: str | None = None, gateway_address: str | None = None) -> InitResult:
    """Create a deployment in `directory` for `role` ("all" or "internal"; the gateway: initialise_gateway).
    The internal host needs its own address on the link (the MDA listens there) and the gateway's (the map
    is pushed there). Raises ConfigError when a deployment is already there or an address is missing."""
    if role == "internal" and not (link_address and gateway_address):
        raise ConfigError("the internal host needs --link-address (its address towards the gateway: the MDA listens "
                          "there) and --gateway-address (the gateway's: the recipient map is pushed there)")
    from mailbastion.core.address import parse_address

    domain = parse_address(f"postmaster@{domain}").domain  # validates and normalises the domain
    config = _new_config(directory)
    hostname = hostname or f"mail.{domain}"
    clamav_on, clamav_note = clamav_available()
    if role == "internal":
        assert link_address is not None and gateway_address is not None
        settings = _write_config(config, INTERNAL_TEMPLATE.format(
            hostname=hostname, lmtp_listen=_hostport(link_address, LMTP_PORT),
            gateway=_hostport(gateway_address, MAP_PUSH_PORT), gateway_relay=_hostport(gateway_address, RELAY_PORT)))
        make_internal_pki(settings, link_address)
        _folders(settings, settings.mailbox.root)
    else:
        settings = _write_config(config, TEMPLATE.format(domain=domain, hostname=hostname, clamav_note=clamav_note,
                                                         clamav_socket=CLAMD_SOCKET))
        make_deployment_pki(settings.base_dir / "tls", hostname)
        _folders(settings, settings.spool.dir, settings.mailbox.root, "local.d")
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
    if settings.phish_report.enabled:  # users report phishing here through submission (phish_report/intake.py)
        directory_store.add_alias(f"{settings.phish_report.local_part}@{domain}", f"postmaster@{domain}", by="init",
                                  reason="phishing report address")
    db_file = settings.sqlite_file(settings.directory.url)
    if db_file is not None:
        os.chmod(db_file, 0o600)  # password hashes: the service only
    notes: list[str] = []
    if role == "internal":
        notes.append("make the gateway's certificates here: mailbastion pki issue-gateway -c "
                     f"{config} --out gateway.tar --hostname {hostname}; copy gateway.tar to the gateway and run "
                     "mailbastion init --role gateway --bundle gateway.tar there (docs/deployment.md)")
    elif not clamav_on:
        notes.append(f"antivirus: {clamav_note}. Until clamd answers with signatures, measure 2 is not met and mail is "
                     "deferred (451, senders retry); ClamAV comes on by itself within a minute of that. "
                     "`mailbastion av status` tells.")
    owner = hand_over(settings)
    return InitResult(config, f"postmaster@{domain}", password or "",
                      (*setup.describe(), *notes, *([owner] if owner else [])))


def make_internal_pki(settings: Settings, link_address: str) -> None:
    """The internal host's certificates: the CA (its key stays here), the MDA's (names "mda", localhost and
    the link address), the internal client certificate (name "internal", client auth only) and the one its
    users' services present (server.hostname; until a public one is imported)."""
    from ipaddress import ip_address

    from mailbastion.pki import issue, make_ca
    from mailbastion.private_files import private_dir

    t = settings.tls
    private_dir(settings.path("tls"))
    ca, ca_key = settings.path(t.ca), settings.path(t.ca_key)
    make_ca(ca, ca_key, name=f"mailbastion internal CA for {settings.server.hostname}")
    ips = list(dict.fromkeys(["127.0.0.1", "::1", str(ip_address(link_address.strip("[]")))]))
    issue(ca, ca_key, settings.path(t.mda_cert), settings.path(t.mda_key), common_name=MDA_NAME,
          dns_names=[MDA_NAME, "localhost"], ips=ips)
    issue(ca, ca_key, settings.path(t.internal_client_cert), settings.path(t.internal_client_key),
          common_name=INTERNAL_CLIENT_NAME, dns_names=[INTERNAL_CLIENT_NAME], server=False, client=True)
    # the users' services on this host (the portal) present this one; a public CA's replaces it (`tls import`)
    issue(ca, ca_key, settings.path(t.cert), settings.path(t.key), common_name=settings.server.hostname,
          dns_names=[settings.server.hostname, "localhost"], ips=["127.0.0.1", "::1"])


@dataclass(frozen=True, slots=True)
class GatewayInit:
    config: Path
    notes: tuple[str, ...]


def initialise_gateway(directory: Path, bundle: Path) -> GatewayInit:
    """Create the gateway's deployment in `directory` from the bundle `pki issue-gateway` made. The bundle
    is checked whole before anything is written (deploy/bundle.py). Raises ConfigError."""
    from ipaddress import ip_network

    from mailbastion.deploy.bundle import install_gateway_bundle, read_bundle

    manifest, _ = read_bundle(bundle)  # refuse a bad bundle before making the folder
    config = _new_config(directory)
    clamav_on, clamav_note = clamav_available()
    settings = _write_config(config, GATEWAY_TEMPLATE.format(
        hostname=manifest.hostname, mda=manifest.mda, gateway_link=_hostport(manifest.gateway_address, MAP_PUSH_PORT),
        gateway_relay=_hostport(manifest.gateway_address, RELAY_PORT),
        internal_net=str(ip_network(manifest.internal_address)), clamav_note=clamav_note,
        clamav_socket=CLAMD_SOCKET))
    install_gateway_bundle(bundle, settings.path("tls"))
    _folders(settings, settings.spool.dir, "local.d")
    (settings.path("local.d") / "scores.toml").write_text("# Site overrides of the shipped symbol weights.\n",
                                                          encoding="utf-8")
    notes = [(f"the MDA is {manifest.mda}; the internal host pushes the recipient map to "
              f"{_hostport(manifest.gateway_address, MAP_PUSH_PORT)} (until the first push every recipient is refused)"),
             (f"tls/gateway.crt is from the private CA: install a public certificate for {manifest.hostname} with "
              "`mailbastion tls import`")]
    if not clamav_on:
        notes.append(f"antivirus: {clamav_note}. Until clamd answers with signatures mail is deferred (451).")
    owner = hand_over(settings)
    return GatewayInit(config, (*notes, *([owner] if owner else [])))
