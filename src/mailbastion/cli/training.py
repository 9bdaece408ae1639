"""`mailbastion training`: security-awareness training (measure 8).

    mailbastion training modules                                   # shipped and site modules, with their quiz size
    mailbastion training assign phishing --all [--due 2027-01-31]  # or --group staff, or --user alice@example.org
    mailbastion training report [--csv]                            # per user and group, and the campaigns
    mailbastion training templates                                 # phishing-simulation templates
    mailbastion training campaign create q4 --template mailbox-full --group staff [--start 2026-12-10T09:00]
    mailbastion training campaign list | show q4 | send q4         # send: now, whatever its start time

Campaigns whose start time has come are sent by the internal role's scheduler (`mailbastion serve`); `send`
commits the messages to the spool at once, and the running server delivers them. Every change is audited
with `--by`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.cli.directory import by_option, directory_errors


def _when(text: str, now: dt.datetime) -> dt.datetime:
    if text.strip().lower() == "now":
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+zone] or now)") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _open(config_path: Path | None) -> tuple[Any, Any]:
    from mailbastion.directory.store import Directory

    settings = load(config_path)
    return settings, Directory.from_settings(settings)


def _modules(settings: Any) -> dict[str, Any]:
    from mailbastion.training.modules import ModuleError, load_modules

    try:
        return load_modules(settings)
    except ModuleError as exc:
        raise Failed(str(exc)) from None


@main_group.group("training")
def training_group() -> None:
    """Training on email risks (measure 8): modules, assignments, phishing simulations."""


@training_group.command("modules")
@config_option
@directory_errors
def modules_cmd(config_path: Path | None) -> None:
    """List the modules (shipped, and the site's in [training] modules_dir); * marks the mandatory ones."""
    settings = load(config_path)
    for m in _modules(settings).values():
        star = "*" if m.id in settings.training.mandatory else " "
        click.echo(f"{star} {m.id:<16} {m.title}  ({len(m.questions)} questions, pass {m.pass_mark}%, "
                   f"{m.minutes} min)  {m.source}")


@training_group.command("assign")
@click.argument("module")
@click.option("--all", "everyone", is_flag=True, help="every active account")
@click.option("--group", default=None, help="the active members of a group (an alias address or its local part)")
@click.option("--user", default=None, help="one account")
@click.option("--due", default=None, help="due date YYYY-MM-DD[THH:MM] (UTC); default: [training] due_days from now")
@click.option("--reason", default="assigned by an administrator", show_default=True)
@by_option
@config_option
@directory_errors
def assign_cmd(module: str, everyone: bool, group: str | None, user: str | None, due: str | None, reason: str,
               by: str, config_path: Path | None) -> None:
    """Assign MODULE to --all, a --group or a --user (those who have it already keep theirs)."""
    from mailbastion.training.store import TrainingStore

    if sum(bool(x) for x in (everyone, group, user)) != 1:
        raise click.UsageError("give exactly one of --all, --group G, --user ADDRESS")
    settings, directory = _open(config_path)
    if module not in _modules(settings):
        raise Failed(f"no module {module!r} (see `mailbastion training modules`)")
    store = TrainingStore(directory)
    now = store.now()
    due_at = _when(due, now) if due else now + dt.timedelta(days=settings.training.due_days)
    if user:
        if not directory.is_active(user):
            raise Failed(f"{user} is not an active account")
        targets = [user]
    elif group:
        try:
            targets = store.members(group)
        except KeyError as exc:
            raise Failed(str(exc.args[0])) from None
    else:
        targets = store.active_accounts()
    new = store.assign(targets, module, due_at=due_at, by=by, reason=reason)
    click.echo(f"{module}: assigned to {len(new)} account(s), due {due_at:%Y-%m-%d %H:%M} UTC "
               f"({len(targets) - len(new)} had it already)")


@training_group.command("report")
@click.option("--csv", "as_csv", is_flag=True, help="one CSV row per active account")
@config_option
@directory_errors
def report_cmd(as_csv: bool, config_path: Path | None) -> None:
    """Per user and per group: assigned, completed, score, overdue; and the campaigns' results."""
    from mailbastion.training.report import build_report

    settings, directory = _open(config_path)
    report = build_report(directory, settings)
    if as_csv:
        click.echo(report.to_csv(), nl=False)
        return
    click.echo(f"training report, {report.now:%Y-%m-%d %H:%M} UTC")
    click.echo(f"{'account':<36} {'assigned':>8} {'done':>5} {'overdue':>7} {'score':>5}  simulations")
    for u in report.users:
        score = "-" if u.score is None else f"{u.score}%"
        sims = f"{u.simulations} received, {u.clicked} clicked, {u.reported} reported" if u.simulations else "-"
        click.echo(f"{u.address:<36} {u.assigned:>8} {u.completed:>5} {len(u.overdue):>7} {score:>5}  {sims}")
    click.echo("")
    click.echo(f"{'group':<36} {'members':>8} {'done':>5} {'overdue':>7} {'score':>5}")
    for g in report.groups:
        score = "-" if g.score is None else f"{g.score}%"
        click.echo(f"{g.group:<36} {g.members:>8} {g.completed:>5} {g.overdue:>7} {score:>5}")
    click.echo("")
    if not report.campaigns:
        click.echo("no phishing-simulation campaign yet (`mailbastion training campaign create`)")
    for c in report.campaigns:
        when = f"sent {c.info.sent_at:%Y-%m-%d %H:%M}" if c.info.sent_at else f"starts {c.info.start_at:%Y-%m-%d %H:%M}"
        click.echo(f"campaign {c.info.name} ({c.info.template} to {c.info.target}, {when}): {c.delivered} delivered, "
                   f"{c.clicked} clicked, {c.reported} reported, {c.ignored} ignored")


@training_group.command("templates")
@config_option
@directory_errors
def templates_cmd(config_path: Path | None) -> None:
    """List the phishing-simulation templates (shipped, and the site's in [training] templates_dir)."""
    from mailbastion.training.modules import ModuleError
    from mailbastion.training.simulation import load_templates

    try:
        templates = load_templates(load(config_path))
    except ModuleError as exc:
        raise Failed(str(exc)) from None
    for t in templates.values():
        click.echo(f"{t.id:<18} {t.subject!r} from {t.sender}; a click assigns {t.module}")


@training_group.group("campaign")
def campaign_group() -> None:
    """Phishing-simulation campaigns."""


def _campaigns(config_path: Path | None) -> tuple[Any, Any, Any]:
    from mailbastion.training.campaigns import CampaignStore

    settings, directory = _open(config_path)
    return settings, directory, CampaignStore(directory, settings)


@campaign_group.command("create")
@click.argument("name")
@click.option("--template", required=True, help="a template id (`mailbastion training templates`)")
@click.option("--group", default=None, help="the target group (an alias address or its local part)")
@click.option("--all", "everyone", is_flag=True, help="every active account")
@click.option("--start", default="now", show_default=True, help="when the scheduler sends it (UTC)")
@click.option("--module", default=None, help="the module a click assigns (default: the template's)")
@by_option
@config_option
@directory_errors
def campaign_create(name: str, template: str, group: str | None, everyone: bool, start: str, module: str | None,
                    by: str, config_path: Path | None) -> None:
    """Create campaign NAME; the running server sends it at --start."""
    from mailbastion.training.campaigns import ALL, CampaignError

    if bool(group) == everyone:
        raise click.UsageError("give exactly one of --group G, --all")
    _settings, directory, store = _campaigns(config_path)
    try:
        info = store.create(name, template=template, target=group or ALL, start_at=_when(start, directory.now()),
                            module=module, by=by)
    except CampaignError as exc:
        raise Failed(str(exc)) from None
    click.echo(f"campaign {info.name}: {info.template} to {info.target} ({len(store.targets_of(info))} account(s)), "
               f"starts {info.start_at:%Y-%m-%d %H:%M} UTC; a click assigns {info.module}")


@campaign_group.command("list")
@config_option
@directory_errors
def campaign_list(config_path: Path | None) -> None:
    """Every campaign with its state."""
    _settings, _directory, store = _campaigns(config_path)
    items = store.campaigns()
    if not items:
        click.echo("no campaign")
    for c in items:
        state = f"sent {c.sent_at:%Y-%m-%d %H:%M}" if c.sent_at else f"starts {c.start_at:%Y-%m-%d %H:%M}"
        click.echo(f"{c.name:<20} {c.template:<18} {c.target:<28} {state}")


@campaign_group.command("show")
@click.argument("name")
@config_option
@directory_errors
def campaign_show(name: str, config_path: Path | None) -> None:
    """A campaign's results per user and per group: delivered, clicked, reported, ignored."""
    _settings, _directory, store = _campaigns(config_path)
    info = store.campaign(name)
    if info is None:
        raise Failed(f"no campaign {name!r}")
    state = f"sent {info.sent_at:%Y-%m-%d %H:%M} UTC" if info.sent_at else f"starts {info.start_at:%Y-%m-%d %H:%M} UTC"
    click.echo(f"campaign {info.name}: template {info.template}, target {info.target}, {state}, "
               f"a click assigns {info.module}")
    for r in store.results(name):
        click.echo(f"  {r.address:<36} {r.outcome}")
    for group, c in store.results_by_group(name).items():
        click.echo(f"  group {group}: {c['delivered']} delivered, {c['clicked']} clicked, {c['reported']} reported, "
                   f"{c['ignored']} ignored")


@campaign_group.command("send")
@click.argument("name")
@config_option
@directory_errors
def campaign_send(name: str, config_path: Path | None) -> None:
    """Send campaign NAME now (each target once: a second run sends only to new members)."""
    from mailbastion.spool.writer import Spool
    from mailbastion.training.campaigns import CampaignError

    settings, _directory, store = _campaigns(config_path)
    try:
        sent = asyncio.run(store.send(name, Spool.for_system_mail(settings),
                                      portal_url=settings.portal.base_url(settings.server.hostname)))
    except CampaignError as exc:
        raise Failed(str(exc)) from None
    click.echo(f"campaign {name}: {len(sent)} message(s) committed to the spool")
