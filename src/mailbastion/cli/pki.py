"""`mailbastion pki issue-gateway --out FILE`: the gateway's certificates, issued where the CA key stays."""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli._common import config_option, handle_errors, load, main_group


@main_group.group("pki")
def pki_group() -> None:
    """The private CA of a split deployment (on the internal host)."""


@pki_group.command("issue-gateway")
@config_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the bundle to write (a tar file, mode 0600; never replaced)")
@click.option("--hostname", default=None, help="the MX's public name (default: server.hostname)")
@click.option("--gateway-address", default=None,
              help="the gateway's address on the link (default: the host of the first map_push.gateways entry)")
@handle_errors
def issue_gateway(config_path: Path | None, out: Path, hostname: str | None, gateway_address: str | None) -> None:
    """Issue the gateway's certificates (MX, LMTP client, link) and pack them with the CA certificate (not its
    key) and the addresses the gateway needs. Copy the file to the gateway and run `mailbastion init --role
    gateway --bundle FILE` there; then delete it here."""
    from mailbastion.deploy.bundle import issue_gateway_bundle

    settings = load(config_path)
    manifest = issue_gateway_bundle(settings, out, hostname=hostname, gateway_address=gateway_address)
    click.echo(f"gateway bundle written: {out} (mode 0600; holds private keys: copy it over a trusted channel, "
               "then delete it)")
    click.echo(f"  MX name {manifest.hostname}; gateway on the link {manifest.gateway_address}; MDA {manifest.mda}")
    click.echo("  on the gateway: mailbastion init --role gateway --bundle FILE --dir /var/lib/mailbastion")
