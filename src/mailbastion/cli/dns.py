"""`mailbastion dns records|check` and `mailbastion dkim keygen|rotate|status`: our domains' DNS for mail.

    mailbastion dkim keygen example.org      # new pending keys (rsa-sha256 2048 + ed25519), records shown
    mailbastion dns records example.org      # every record to publish: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT
    mailbastion dns check example.org        # the live records; a published pending key becomes the signer
    mailbastion dkim rotate example.org      # a second selector; `dns check` switches once it is live
    mailbastion dkim activate example.org SEL  # switch by hand (checks the record unless --force)

Without DOMAIN, `dns records` and `dns check` take every domain of the recipient map. `dns records`
refuses a domain that is not ours (not in the recipient map); `dns check` looks at any domain (say, one
about to move here). Exit code 1 when `dns check` finds something missing or wrong.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from mailbastion.apps.features import make_resolver
from mailbastion.auth.keys import KeyStore
from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group, valid_domain
from mailbastion.config import Settings
from mailbastion.domain_dns.check import DomainChecker
from mailbastion.domain_dns.records import load_mx_certificate, records_for, render

_ALGS = {"rsa": ("rsa-sha256",), "ed25519": ("ed25519-sha256",), "both": ("rsa-sha256", "ed25519-sha256")}
_MARK = {"ok": "ok     ", "missing": "MISSING", "wrong": "WRONG  ", "weak": "WEAK   ", "info": "note   "}


def _store(settings: Settings) -> KeyStore:
    return KeyStore(settings.path(settings.auth.dkim_keys_dir))


def _hosted(settings: Settings) -> list[str]:
    """Our domains, from the recipient map the directory rewrites after every change."""
    path = settings.path(settings.directory.recipient_map)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Failed(f"no recipient map at {path}: add a domain first (`mailbastion domain add`)") from None
    except (OSError, ValueError) as exc:
        raise Failed(f"cannot read the recipient map {path}: {exc}") from None
    return sorted({str(d).lower() for d in doc.get("domains", [])}) if isinstance(doc, dict) else []


def _domains(settings: Settings, domain: str | None, *, ours_only: bool) -> list[str]:
    """DOMAIN (which must be ours when `ours_only`), else every domain of the recipient map."""
    if domain:
        name = valid_domain(domain)
        if ours_only and name not in _hosted(settings):
            raise Failed(f"{name} is not one of our domains (see `mailbastion domain list`)")
        return [name]
    domains = _hosted(settings)
    if not domains:
        raise Failed(f"the recipient map {settings.path(settings.directory.recipient_map)} lists no domains; "
                     "give DOMAIN")
    return domains


@main_group.group("dns")
def dns_group() -> None:
    """DNS records our domains publish for mail: what to publish, and whether it is live."""


@dns_group.command("records")
@config_option
@click.argument("domain", required=False)
@handle_errors
def records_cmd(config_path: Path | None, domain: str | None) -> None:
    """Print every record to publish for DOMAIN (zone-file syntax, with explanations)."""
    settings = load(config_path)
    store = _store(settings)
    mx_certificates = load_mx_certificate(settings.path(settings.tls.cert))  # for the TLSA record of our MX
    for i, d in enumerate(_domains(settings, domain, ours_only=True)):
        if i:
            click.echo("")
        mode = settings.portal.mta_sts_mode  # the policy the portal serves: its id follows a change of mode
        recs = records_for(d, mx_host=settings.server.hostname, keys=store.published(d),
                           report_address=settings.auth.report_address, mx_certificates=mx_certificates,
                           mta_sts_mode=mode)
        click.echo(render(recs, domain=d, mx_host=settings.server.hostname, mta_sts_mode=mode))
        if not store.keys(d):
            click.echo(f"; no DKIM key yet: run `mailbastion dkim keygen {d}` and publish its record")


@dns_group.command("check")
@config_option
@click.argument("domain", required=False)
@click.option("--no-switch", is_flag=True, help="report a live pending DKIM key but do not switch signing to it")
@handle_errors
def check_cmd(config_path: Path | None, domain: str | None, no_switch: bool) -> None:
    """Look the live records up and say what is missing, wrong or weak."""
    settings = load(config_path)
    checker = DomainChecker(make_resolver(settings), _store(settings),
                            state_file=settings.path("state/dns-check.json"),
                            dmarc_none_max_days=settings.auth.dmarc_none_max_days,
                            retire_after_days=settings.auth.retired_key_days)
    problems = 0
    for d in _domains(settings, domain, ours_only=False):
        click.echo(f"{d}:")
        findings = asyncio.run(checker.check(d, mx_host=settings.server.hostname, switch=not no_switch))
        for f in findings:
            click.echo(f"  {_MARK[f.level]} {f.purpose:<8} {f.message}")
        problems += sum(f.is_problem for f in findings)
    if problems:
        raise Failed(f"{problems} record(s) missing or wrong")


@main_group.group("dkim")
def dkim_group() -> None:
    """Our DKIM signing keys: make, rotate, activate, show."""


def _make(settings: Settings, domain: str, algorithm: str) -> None:
    store = _store(settings)
    for alg in _ALGS[algorithm]:
        info = store.generate(domain, alg, bits=settings.auth.rsa_bits)
        click.echo(f"new {alg} key for {domain}, selector {info.selector} (pending)")
        click.echo(f"  publish:  {info.record_name}. IN TXT \"{info.record}\"")
    click.echo(f"then run `mailbastion dns check {domain}`: once the record is live, signing switches to it")
    active = store.active(domain)
    if active:
        click.echo(f"the current key(s) ({', '.join(k.selector for k in active)}) keep signing until then; "
                   f"their records stay for {settings.auth.retired_key_days} days after the switch")


@dkim_group.command("keygen")
@config_option
@click.argument("domain")
@click.option("--algorithm", type=click.Choice(sorted(_ALGS)), default="both", show_default=True)
@handle_errors
def keygen_cmd(config_path: Path | None, domain: str, algorithm: str) -> None:
    """Make new signing key(s) for DOMAIN, kept in auth.dkim_keys_dir (0600), and show their records."""
    _make(load(config_path), valid_domain(domain), algorithm)


@dkim_group.command("rotate")
@config_option
@click.argument("domain")
@click.option("--algorithm", type=click.Choice(sorted(_ALGS)), default="both", show_default=True)
@handle_errors
def rotate_cmd(config_path: Path | None, domain: str, algorithm: str) -> None:
    """Start a rotation: a second selector with a new key, pending until `dns check` sees it published."""
    settings = load(config_path)
    domain = valid_domain(domain)
    if not _store(settings).active(domain):
        click.echo(f"{domain} has no active key yet: this makes its first one")
    _make(settings, domain, algorithm)


@dkim_group.command("activate")
@config_option
@click.argument("domain")
@click.argument("selector")
@click.option("--force", is_flag=True, help="switch without looking the record up (split-horizon DNS, say)")
@handle_errors
def activate_cmd(config_path: Path | None, domain: str, selector: str, force: bool) -> None:
    """Switch signing to SELECTOR now; its record must be live unless --force."""
    settings = load(config_path)
    store = _store(settings)
    domain = domain.lower().rstrip(".")
    key = next((k for k in store.keys(domain) if k.selector == selector), None)
    if key is None:
        raise Failed(f"no key {selector!r} for {domain} (see `mailbastion dkim status {domain}`)")
    if not force:
        resolver = make_resolver(settings)
        live = asyncio.run(resolver.lookup(key.record_name, "TXT")).records
        if not any(key.public in r.replace(" ", "") for r in live):
            raise Failed(f"{key.record_name} does not hold this key yet: publish it, or use --force")
    for old in store.activate(domain, selector, retire_after_days=settings.auth.retired_key_days):
        click.echo(f"retired {old.selector}: remove {old.record_name} after {old.remove_after}")
    click.echo(f"signing for {domain} with {selector} ({key.algorithm})")


@dkim_group.command("status")
@config_option
@click.argument("domain", required=False)
@handle_errors
def status_cmd(config_path: Path | None, domain: str | None) -> None:
    """Every key of DOMAIN (or of every domain with keys) and its state."""
    store = _store(load(config_path))
    domains = [domain.lower()] if domain else store.domains()
    if not domains:
        click.echo("no DKIM keys")
    for d in domains:
        for k in store.keys(d):
            extra = f" remove record after {k.remove_after}" if k.remove_after else ""
            click.echo(f"{d}\t{k.selector}\t{k.algorithm}\t{k.bits} bits\t{k.state}{extra}")
    problems = store.permission_problems()
    for p in problems:
        click.echo(f"WARNING: {p}", err=True)
