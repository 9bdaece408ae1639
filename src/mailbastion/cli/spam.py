"""`mailbastion spam train|learn|status`: teach the classifier the site's mail.

    mailbastion spam train -c FILE --ham DIR --spam DIR [--ham DIR2 ...]   bulk, with a progress bar
    mailbastion spam learn -c FILE --spam FILE...                          one message at a time
    mailbastion spam status -c FILE                                        which model, trained on what

Training starts from the current model (the site's, else the shipped default) and writes the site model
(`spam.classifier.model_path` below data_dir). `--output FILE --from-scratch` builds a model without a
configuration, as the shipped default was built (see spam/data/MODEL.md).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group
from mailbastion.spam.model import SpamModel
from mailbastion.spam.store import ModelStore
from mailbastion.spam.training import fit_model, message_files, read_tokens, strip_mbox_line, train

_DIR = click.Path(exists=True, path_type=Path)


@main_group.group("spam")
def spam_group() -> None:
    """Train and inspect the spam classifier."""


def _store(config_path: Path | None) -> ModelStore:
    settings = load(config_path)
    return ModelStore(settings.path(settings.spam.classifier.model_path))


@spam_group.command("train")
@config_option
@click.option("--ham", "ham", multiple=True, type=_DIR, help="folder (or file) of legitimate mail; repeatable")
@click.option("--spam", "spam", multiple=True, type=_DIR, help="folder (or file) of spam; repeatable")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the model here instead of the site model")
@click.option("--from-scratch", is_flag=True, help="start from an empty model, not the current one")
@click.option("--source", default="", help="what the model says it was trained on (default: the folders)")
@handle_errors
def train_cmd(config_path: Path | None, ham: tuple[Path, ...], spam: tuple[Path, ...], output: Path | None,
              from_scratch: bool, source: str) -> None:
    """Learn every message below --ham and --spam folders (mbox `From ` first lines are stripped)."""
    if not ham and not spam:
        raise click.UsageError("give at least one --ham or --spam folder")
    files = message_files(ham) + message_files(spam)
    source = source or "spam train " + " ".join(str(p) for p in (*ham, *spam))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task("reading", total=len(files))

        def advance(n: int) -> None:
            bar.advance(task, n)

        if output is not None:
            base = SpamModel.empty() if from_scratch else ModelStore(None).model()
            ham_tok, s1 = read_tokens(message_files(ham), advance)
            spam_tok, s2 = read_tokens(message_files(spam), advance)
            bar.update(task, description="training")
            fit_model(base, ham_tok, spam_tok, source=source)
            base.save(output)
            click.echo(f"trained on {len(ham_tok)} ham and {len(spam_tok)} spam ({s1 + s2} unreadable): {output}")
            return
        store = _store(config_path)
        if from_scratch and store.site_path is not None:
            SpamModel.empty().save(store.site_path)
        result = train(store, ham=ham, spam=spam, progress=advance, source=source)
    click.echo(f"trained on {result.ham} ham and {result.spam} spam ({result.skipped} unreadable): {result.path}")


@spam_group.command("learn")
@config_option
@click.option("--ham", "label", flag_value="ham", help="the messages are legitimate")
@click.option("--spam", "label", flag_value="spam", help="the messages are spam")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handle_errors
def learn_cmd(config_path: Path | None, label: str | None, files: tuple[Path, ...]) -> None:
    """Learn single messages (.eml files) as ham or spam, and show P(spam) before and after."""
    if label is None:
        raise click.UsageError("give --ham or --spam")
    store = _store(config_path)
    from mailbastion.spam.features import extract_bytes
    from mailbastion.spam.tokens import tokens

    for f in files:
        raw = strip_mbox_line(f.read_bytes())
        tok = tokens(extract_bytes(raw))
        before = store.model().probability(tok)
        steps = store.learn(raw, is_spam=label == "spam", source="spam learn")
        after = store.model().probability(tok)
        click.echo(f"{f}: learned as {label} (P(spam) {before:.3f} -> {after:.3f}, {steps} steps)")


@spam_group.command("status")
@config_option
@handle_errors
def status_cmd(config_path: Path | None) -> None:
    """Which model is in use and what it was trained on."""
    store = _store(config_path)
    path = store.source_path()
    if path is None:
        raise Failed("no model: neither a site model nor the shipped default is present")
    model = store.model()
    kind = "site" if path == store.site_path else "shipped default"
    click.echo(f"model: {path} ({kind})")
    click.echo(f"learned: {model.meta.get('ham', 0)} ham, {model.meta.get('spam', 0)} spam")
    for src in model.meta.get("trained_on", []):
        click.echo(f"  from: {src}")
