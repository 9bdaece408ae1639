"""`mailbastion tls status | renew | import`: the certificates of every listener, their expiry and renewal.

    mailbastion tls status [--warn-days N] [--role R]...     exit 1 when one is missing, broken or expiring
    mailbastion tls renew [--days N] [--expiring] [--role R]... [--new-ca]
    mailbastion tls import --cert FILE --key FILE [--chain FILE] [--for gateway] [--trust FILE]

Roles and the `[tls]` keys of their files: gateway (cert, key: the public certificate of the MX, and of
submission and IMAP), gateway-client (gateway_client_cert/key: the gateway's LMTP client), mda
(mda_cert/key: the MDA's LMTP listener), and ca (the private CA of the gateway <-> MDA link: ca, ca_key).
A running server takes renewed or imported files on SIGHUP (`kill -HUP <pid>`), for new connections.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group
from mailbastion.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class _Role:
    name: str
    cert_key: str  # the [tls] key of its certificate
    key_key: str
    server: bool
    client: bool
    default_name: str  # its common name when no certificate is there yet ("" = server.hostname)


ROLES = (
    _Role("gateway", "cert", "key", True, False, ""),
    _Role("gateway-client", "gateway_client_cert", "gateway_client_key", False, True, "gateway"),
    _Role("mda", "mda_cert", "mda_key", True, False, "mda"),
    _Role("gateway-link", "link_cert", "link_key", True, False, "gateway-link"),
    _Role("internal-client", "internal_client_cert", "internal_client_key", False, True, "internal"),
)
ROLE_NAMES = ("ca", *(r.name for r in ROLES))


def _path(settings: Any, key: str) -> Path:
    return settings.path(getattr(settings.tls, key))  # type: ignore[no-any-return]


@main_group.group("tls")
def tls_group() -> None:
    """Certificates of the listeners: status, renewal from the internal CA, import of a public one."""


@dataclass(frozen=True, slots=True)
class _Row:
    role: str
    path: Path
    state: str  # ok | expiring | EXPIRED | missing | broken
    detail: str
    days_left: int | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "ok"


def _inspect(settings: Any, role: str, cert_key: str, key_key: str, warn_days: int) -> _Row:
    from mailbastion.pki import key_matches, load_chain, load_key, read_certificate

    cert_path, key_path = _path(settings, cert_key), _path(settings, key_key)
    if not cert_path.exists():
        return _Row(role, cert_path, "missing", "no certificate (run `mailbastion tls renew`)")
    try:
        info = read_certificate(cert_path)
        if key_path.exists() and not key_matches(load_chain(cert_path)[0], load_key(key_path)):
            return _Row(role, cert_path, "broken", f"the key {key_path} does not belong to it")
    except ConfigError as exc:
        return _Row(role, cert_path, "broken", str(exc))
    left = info.days_left()
    state = "EXPIRED" if info.not_after <= dt.datetime.now(dt.UTC) else "expiring" if left < warn_days else "ok"
    if not key_path.exists() and role != "ca":
        state = "broken"
    detail = (f"{info.subject}, issued by {info.issuer}, until {info.not_after:%Y-%m-%d}"
              + ("" if key_path.exists() or role == "ca" else f"; its key {key_path} is missing"))
    return _Row(role, cert_path, state, detail, left)


@tls_group.command("status")
@config_option
@click.option("--warn-days", type=click.IntRange(1, 3650), default=None,
              help="call a certificate expiring within this many days a problem (default: tls.expiry_warning_days)")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLE_NAMES),
              help="only these (e.g. on a DMZ gateway: --role gateway --role gateway-client --role ca)")
@handle_errors
def status(config_path: Path | None, warn_days: int | None, roles: tuple[str, ...]) -> None:
    """Each certificate: subject, issuer, expiry, days left. Exit 1 when one is missing, broken, expired or
    expires within the warning window (for a monitoring job)."""
    settings = load(config_path)
    warn = warn_days or settings.tls.expiry_warning_days
    wanted = set(roles or ROLE_NAMES)
    rows = [_inspect(settings, "ca", "ca", "ca_key", warn)] if "ca" in wanted else []
    rows += [_inspect(settings, r.name, r.cert_key, r.key_key, warn) for r in ROLES if r.name in wanted]
    for row in rows:
        days = f"{row.days_left:>4} days left" if row.days_left is not None else "            -"
        click.echo(f"{row.role:<15} {row.state:<8} {days}  {row.path}\n{'':<15} {row.detail}")
    bad = [r.role for r in rows if not r.healthy]
    if bad:
        raise Failed(f"certificates needing attention (warning window {warn} days): {', '.join(bad)}")


@tls_group.command("renew")
@config_option
@click.option("--days", type=click.IntRange(1, 365), default=365, show_default=True,
              help="lifetime of the new certificates (Mozilla intermediate: under 366 days)")
@click.option("--expiring", is_flag=True,
              help="only certificates that expire within tls.expiry_warning_days (for a daily cron job)")
@click.option("--role", "roles", multiple=True, type=click.Choice([r.name for r in ROLES]),
              help="only these roles (default: every one this host has)")
@click.option("--new-ca", is_flag=True,
              help="make a new internal CA first, then every role (copy ca.crt to a separate MDA or gateway host)")
@handle_errors
def renew(config_path: Path | None, days: int, expiring: bool, roles: tuple[str, ...], new_ca: bool) -> None:
    """Issue the role certificates again from the internal CA: new keys (0600), same names, files replaced
    atomically. A certificate that the CA did not issue (one installed by `tls import`) is left alone."""
    from mailbastion.pki import issued_by, load_chain, make_ca, read_certificate, reissue

    settings = load(config_path)
    ca_cert, ca_key = _path(settings, "ca"), _path(settings, "ca_key")
    ours = [load_chain(ca_cert)[0]] if ca_cert.exists() else []  # with --new-ca: the old CA's leaves are ours too
    if new_ca:
        make_ca(ca_cert, ca_key, name=f"mailbastion internal CA for {settings.server.hostname}")
        click.echo(f"ca: new internal CA {ca_cert} (every role is issued again from it)")
        roles, expiring = (), False
    if not ca_key.exists():
        raise Failed(f"the CA key {ca_key} is not here (tls.ca_key): renew where `mailbastion init` ran, "
                     "then copy the certificates and keys")
    ours.append(load_chain(ca_cert)[0])
    warn = settings.tls.expiry_warning_days
    renewed = 0
    lmtp_host = (settings.lmtp.connect or settings.lmtp.listen).rpartition(":")[0].strip("[]")
    for role in ROLES:
        if roles and role.name not in roles:
            continue
        cert_path, key_path = _path(settings, role.cert_key), _path(settings, role.key_key)
        if cert_path.exists():
            info = read_certificate(cert_path)
            if not any(issued_by(load_chain(cert_path)[0], ca) for ca in ours):
                click.echo(f"{role.name}: issued by {info.issuer}, not by our CA: not renewed "
                           "(renew it where it came from, then `mailbastion tls import`)")
                continue
            if expiring and info.days_left() >= warn and not new_ca:
                click.echo(f"{role.name}: valid for {info.days_left()} more days: not renewed")
                continue
        add = {"gateway": [settings.server.hostname], "mda": [lmtp_host] if lmtp_host else []}.get(role.name, [])
        reissue(ca_cert, ca_key, cert_path, key_path, server=role.server, client=role.client, days=days,
                default_name=role.default_name or settings.server.hostname, add_names=add)
        new = read_certificate(cert_path)
        renewed += 1
        click.echo(f"{role.name}: renewed {cert_path} until {new.not_after:%Y-%m-%d} ({', '.join(new.names)})")
    ca_left = read_certificate(ca_cert).days_left()
    if ca_left < days:
        click.echo(f"warning: the internal CA itself expires in {ca_left} days, before these certificates: "
                   "run `mailbastion tls renew --new-ca`", err=True)
    if renewed:
        click.echo("send SIGHUP to the running server (kill -HUP <pid>) so that new connections use them")


@tls_group.command("import")
@config_option
@click.option("--cert", "cert_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the certificate (PEM), optionally followed by its intermediates")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="its private key (PEM, unencrypted)")
@click.option("--chain", "chain_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the intermediate certificates (PEM), when not in --cert")
@click.option("--for", "role", type=click.Choice(["gateway"]), default="gateway", show_default=True,
              help="where it goes: gateway = [tls] cert/key (MX, submission, IMAP)")
@click.option("--trust", "trust_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="trust anchors to build the chain to (default: the system's CA bundle)")
@handle_errors
def import_(config_path: Path | None, cert_file: Path, key_file: Path, chain_file: Path | None, role: str,
            trust_file: Path | None) -> None:
    """Install a public certificate for this server's name (server.hostname): checked first (the key is
    its own, it is valid now, a chain builds to a trusted root, it names our host), then written
    atomically where [tls] cert and key point (key 0600)."""
    from mailbastion.pki import (
        check_public_pair,
        install_pair,
        load_chain,
        load_key,
        read_certificate,
        system_trust_anchors,
    )

    settings = load(config_path)
    chain = load_chain(cert_file) + (load_chain(chain_file) if chain_file else [])
    key = load_key(key_file)
    anchors = load_chain(trust_file) if trust_file else system_trust_anchors()
    try:
        served = check_public_pair(chain, key, hostname=settings.server.hostname, anchors=anchors)
    except ConfigError as exc:
        raise Failed(f"{cert_file}: not installed: {exc}") from None
    cert_path, key_path = _path(settings, "cert"), _path(settings, "key")
    install_pair(served, key, cert_path, key_path)
    info = read_certificate(cert_path)
    click.echo(f"{role}: installed {cert_path} and {key_path}: {info.subject}, issued by {info.issuer}, "
               f"until {info.not_after:%Y-%m-%d} ({info.days_left()} days)")
    life = (info.not_after - info.not_before).days
    if info.days_left() < settings.tls.expiry_warning_days:
        click.echo(f"warning: it expires in {info.days_left()} days (tls.expiry_warning_days = "
                   f"{settings.tls.expiry_warning_days}): `tls status` reports it", err=True)
    if life > 366:
        click.echo(f"warning: it lives {life} days; Mozilla's intermediate profile wants under 366", err=True)
    click.echo("send SIGHUP to the running server (kill -HUP <pid>) so that new connections use it")
