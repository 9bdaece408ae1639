"""`mailbastion keys generate | import | export | revoke | list`: users' S/MIME certificates and OpenPGP keys.

    mailbastion keys generate ADDRESS [--kind smime|openpgp]... [--name TEXT]
    mailbastion keys import ADDRESS FILE [--key FILE]          PEM certificate (+ key), or an OpenPGP key
    mailbastion keys export ADDRESS --out FILE [--kind K] [--private]
    mailbastion keys revoke ADDRESS [--kind K] --reason TEXT
    mailbastion keys list [ADDRESS]

The key store lives on the internal host (`encryption.key_dir`); private keys are sealed with the
deployment key. A private key leaves only through `export --private` (to its owner), written 0600 and
recorded in the audit log, like every generate, import and revoke.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group

KINDS = ("smime", "openpgp")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001
        return f"cli:{os.getuid()}"


def _address(text: str) -> str:
    from mailbastion.core.address import AddressError, parse_address

    try:
        a = parse_address(text.strip(), allow_utf8=True)
    except AddressError as exc:
        raise Failed(f"invalid address {text!r}: {exc}") from None
    if not a.domain or a.is_literal:
        raise Failed(f"invalid address {text!r}: a mailbox address is needed (user@domain)")
    return a.normalized


def _store(settings: Any) -> Any:
    from mailbastion.crypto.keystore import KeyStore

    return KeyStore.from_settings(settings)


def _audit(settings: Any, action: str, subject: str, reason: str = "", **details: Any) -> None:
    from mailbastion.audit.log import AuditLog

    AuditLog(settings.audit_url).record(action, actor=_actor(), subject=subject, reason=reason, details=details)


def _day(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d") if ts else "never"


@main_group.group("keys")
def keys_group() -> None:
    """S/MIME certificates and OpenPGP keys of our users (and outsiders' public keys we hold)."""


@keys_group.command("generate")
@config_option
@click.argument("address")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="default: both")
@click.option("--name", default="", help="display name in the certificate and the user ID")
@handle_errors
def generate_cmd(config_path: Path | None, address: str, kinds: tuple[str, ...], name: str) -> None:
    """A new key pair for ADDRESS: an S/MIME certificate from our S/MIME CA and/or an OpenPGP key."""
    from mailbastion.crypto.manage import KeyProblem, generate
    from mailbastion.crypto.smime_ca import SmimeAuthority

    settings = load(config_path)
    e = settings.encryption
    addr = _address(address)
    store = _store(settings)
    ca = SmimeAuthority(store, name=f"mailbastion S/MIME CA for {settings.server.hostname}")
    try:
        made = generate(store, ca, addr, kinds=kinds or KINDS, days=e.smime_cert_days, pgp_days=e.openpgp_key_days,
                        key_bits=e.smime_key_bits, name=name)
    except KeyProblem as exc:
        raise Failed(f"{addr}: {exc}") from None
    for r in made:
        _audit(settings, "keys.generate", addr, kind=r.kind, fingerprint=r.fingerprint)
        click.echo(f"{addr}: {r.kind} key {r.fingerprint[:16]}... generated, expires {_day(r.expires)}")
    click.echo(f"give the user their private key with `mailbastion keys export {addr} --private --out FILE`")


@keys_group.command("import")
@config_option
@click.argument("address")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the private key (PEM), when not in FILE")
@handle_errors
def import_cmd(config_path: Path | None, address: str, file: Path, key_file: Path | None) -> None:
    """Import FILE for ADDRESS: a PEM certificate (optionally with its private key) or an OpenPGP key
    (public, or secret: then it is sealed)."""
    from mailbastion.crypto.manage import KeyProblem, import_key

    settings = load(config_path)
    addr = _address(address)
    try:
        r = import_key(_store(settings), addr, file.read_bytes(), private=key_file.read_bytes() if key_file else None)
    except KeyProblem as exc:
        raise Failed(f"{file}: not imported: {exc}") from None
    _audit(settings, "keys.import", addr, kind=r.kind, fingerprint=r.fingerprint, private=r.has_private)
    click.echo(f"{addr}: {r.kind} key {r.fingerprint[:16]}... imported ({'with' if r.has_private else 'no'} "
               f"private key), expires {_day(r.expires)}")


@keys_group.command("export")
@config_option
@click.argument("address")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), default=None, help="default: the newest active key")
@click.option("--private", is_flag=True, help="include the private key (for its owner only; written 0600, audited)")
@click.option("--reason", default="", help="why (kept in the audit log with a private export)")
@handle_errors
def export_cmd(config_path: Path | None, address: str, out: Path, kind: str | None, private: bool, reason: str) -> None:
    """Write ADDRESS's certificate (PEM chain) or OpenPGP key (armored) to --out; with --private the private
    key too, to a new 0600 file."""
    from mailbastion.crypto.manage import export_key
    from mailbastion.private_files import write_private, write_public

    settings = load(config_path)
    addr = _address(address)
    store = _store(settings)
    records = [r for r in store.records(addr) if kind is None or r.kind == kind]
    active = [r for r in records if r.is_active()]
    record = (active or records or [None])[0]
    if record is None:
        raise Failed(f"{addr}: no {kind or ''} key (see `mailbastion keys list {addr}`)".replace("  ", " "))
    if private and not record.has_private:
        raise Failed(f"{addr}: we hold no private key for {record.kind} {record.fingerprint[:16]}...")
    data = export_key(store, record, private=private)
    if private:
        if out.exists():
            raise Failed(f"{out} exists: a private key is written to a new file only")
        _audit(settings, "keys.export_private", addr, reason=reason, kind=record.kind,
               fingerprint=record.fingerprint, file=str(out))
        write_private(out, data)
    else:
        write_public(out, data)
    click.echo(f"{addr}: {record.kind} {'private key and certificate' if private else 'public key'} "
               f"{record.fingerprint[:16]}... written to {out}{' (0600)' if private else ''}")


@keys_group.command("revoke")
@config_option
@click.argument("address")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="default: every active key of ADDRESS")
@click.option("--reason", required=True, help="why (kept in the audit log and the key record)")
@handle_errors
def revoke_cmd(config_path: Path | None, address: str, kind: str | None, reason: str) -> None:
    """Stop using ADDRESS's active keys (kept, marked revoked: old mail encrypted to them stays readable
    with the private key)."""
    settings = load(config_path)
    addr = _address(address)
    done = _store(settings).revoke(addr, kind=kind, reason=reason)
    if not done:
        raise Failed(f"{addr}: no active {kind + ' ' if kind else ''}key to revoke")
    for r in done:
        _audit(settings, "keys.revoke", addr, reason=reason, kind=r.kind, fingerprint=r.fingerprint)
        click.echo(f"{addr}: {r.kind} key {r.fingerprint[:16]}... revoked")


@keys_group.command("list")
@config_option
@click.argument("address", required=False)
@handle_errors
def list_cmd(config_path: Path | None, address: str | None) -> None:
    """Keys by address: kind, state, source, whether we hold the private key, expiry, fingerprint."""
    settings = load(config_path)
    store = _store(settings)
    addresses = [_address(address)] if address else list(store.addresses())
    rows = [r for a in addresses for r in store.records(a)]
    if not rows:
        click.echo("no keys" + (f" for {addresses[0]}" if address else ""))
        return
    click.echo(f"{'address':<32} {'kind':<8} {'state':<8} {'source':<10} {'private':<8} {'expires':<10} fingerprint")
    for r in rows:
        click.echo(f"{r.address:<32} {r.kind:<8} {r.state():<8} {r.source:<10} {'yes' if r.has_private else 'no':<8} "
                   f"{_day(r.expires):<10} {r.fingerprint[:40]}")
