"""`mailbastion init --dir DIR --domain DOMAIN [--role all|internal|gateway]`.

    init --domain example.org                                       one machine (all roles)
    init --role internal --domain example.org --link-address 10.77.0.2 --gateway-address 10.77.0.1
    init --role gateway --bundle gateway.tar                        the DMZ host, from `pki issue-gateway`
"""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli._common import Failed, main_group
from mailbastion.core.errors import ConfigError, MalformedAddress


@main_group.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("var"),
              show_default=True, help="folder of the new deployment")
@click.option("--role", type=click.Choice(["all", "internal", "gateway"]), default="all", show_default=True,
              help="all: one machine; internal: MDA, directory, mailboxes and the CA; gateway: the DMZ MTA")
@click.option("--domain", default=None, help="the first mail domain, e.g. example.org (all, internal)")
@click.option("--hostname", default=None, help="this server's name (default: mail.DOMAIN)")
@click.option("--link-address", default=None, help="internal: this host's address towards the gateway (the MDA "
              "listens there)")
@click.option("--gateway-address", default=None, help="internal: the gateway's address on the link (the recipient "
              "map is pushed there)")
@click.option("--bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="gateway: the bundle `mailbastion pki issue-gateway` made on the internal host")
def init(directory: Path, role: str, domain: str | None, hostname: str | None, link_address: str | None,
         gateway_address: str | None, bundle: Path | None) -> None:
    """Create a new deployment: configuration, certificates, directory, postmaster account."""
    from mailbastion.apps.bootstrap import initialise, initialise_gateway

    if role == "gateway":
        if bundle is None:
            raise Failed("the gateway is made from the internal host's bundle: --bundle FILE (`mailbastion pki "
                         "issue-gateway` on the internal host makes it)")
        if domain or link_address or gateway_address:
            raise Failed("--domain, --link-address and --gateway-address are the internal host's: the gateway takes "
                         "its addresses from the bundle")
        try:
            made = initialise_gateway(directory, bundle)
        except (ConfigError, OSError) as exc:
            raise Failed(str(exc)) from None
        _srs_key(made.config)
        click.echo(f"gateway deployment created: {made.config}")
        for note in made.notes:
            click.echo(f"note: {note}")
        click.echo(f"start it with: mailbastion serve -c {made.config}")
        return
    if bundle is not None:
        raise Failed("--bundle is for --role gateway")
    if not domain:
        raise Failed("--domain DOMAIN is needed (the first mail domain, e.g. example.org)")
    try:
        result = initialise(directory, domain, hostname=hostname, role=role, link_address=link_address,
                            gateway_address=gateway_address)
    except MalformedAddress as exc:
        raise Failed(f"invalid domain {domain!r}: {exc}") from None
    except (ConfigError, OSError) as exc:
        raise Failed(str(exc)) from None
    _srs_key(result.config)
    click.echo(f"deployment created: {result.config}")
    click.echo(f"account {result.postmaster}, password (shown once, store it now): {result.password}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"start it with: mailbastion serve -c {result.config}")


def _srs_key(config: Path) -> None:
    """The SRS secret for mail we forward outside (`[srs] key_file`, outbound/srs.py), never in the config."""
    from mailbastion.config import load_settings
    from mailbastion.outbound.srs import provision_key

    provision_key(load_settings(config))
