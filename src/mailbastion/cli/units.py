"""`mailbastion units [--role ...] --out DIR`: a hardened systemd unit for this host's role."""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli._common import config_option, handle_errors, load, main_group


@main_group.command("units")
@config_option
@click.option("--role", type=click.Choice(["all", "gateway", "internal"]), default=None,
              show_default="server.role", help="the role the unit runs")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write mailbastion-ROLE.service into this folder (e.g. /etc/systemd/system); default: print it")
@click.option("--audit-at", "audit_at", default=None, metavar="HH:MM",
              help="also the daily `audit --mail-changes` (mailbastion-audit.service and .timer), at HH:MM UTC")
@handle_errors
def units(config_path: Path | None, role: str | None, out: Path | None, audit_at: str | None) -> None:
    """A systemd unit that runs `serve` as server.user with only CAP_NET_BIND_SERVICE (when a port is below
    1024), a read-only system but data_dir, and the other protections `systemd-analyze security` checks."""
    from mailbastion.deploy.audit_timer import render_audit_units
    from mailbastion.deploy.units import render, write

    settings = load(config_path)
    extra = render_audit_units(settings, audit_at) if audit_at else []
    if out is None:
        click.echo(render(settings, role).text, nl=False)
        for name, text in extra:
            click.echo(f"\n# ---- {name} ----\n{text}", nl=False)
        return
    for name, text in extra:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
        click.echo(f"written: {out / name}")
    if extra:
        click.echo("then: systemctl daemon-reload && systemctl enable --now mailbastion-audit.timer")
    path = write(settings, out, role)
    click.echo(f"written: {path}")
    click.echo(f"then: systemctl daemon-reload && systemctl enable --now {path.name}")
