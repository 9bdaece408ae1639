"""Bulk training from folders of messages (one message per file, Maildir or corpus layout).

    files = message_files([Path("corpus/ham")])      # sorted, recursive, skips MANIFEST/cmds/dotfiles
    result = train(store, ham=[...], spam=[...], progress=callback)

A leading mbox `From ` line is stripped (the public corpora keep one). Unreadable files are counted and
skipped, never fatal. Training starts from the current model (the site's, else the shipped default),
so a site's mail is learned on top of the default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailbastion.spam.features import extract_bytes
from mailbastion.spam.model import EPOCHS, SpamModel
from mailbastion.spam.store import ModelStore
from mailbastion.spam.tokens import tokens

_SKIP_NAMES = ("MANIFEST", "cmds", "index", "README", "LICENSE")
Progress = Callable[[int], None]  # called with the number of messages just read


@dataclass(frozen=True, slots=True)
class TrainResult:
    ham: int
    spam: int
    skipped: int
    path: Path


def strip_mbox_line(raw: bytes) -> bytes:
    """Drop a leading mbox `From ` separator line, as an MDA does."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return raw[nl + 1 :] if nl >= 0 else b""
    return raw


def message_files(paths: Iterable[Path]) -> list[Path]:
    """Every message file below `paths` (files are taken as given), sorted for reproducibility."""
    out: list[Path] = []
    for p in paths:
        if p.is_file():
            out.append(p)
            continue
        if not p.is_dir():
            raise FileNotFoundError(f"no such file or folder: {p}")
        for f in sorted(p.rglob("*")):
            if f.is_file() and not f.name.startswith(".") and not f.name.startswith(_SKIP_NAMES):
                out.append(f)
    return out


def read_tokens(files: Sequence[Path], progress: Progress | None = None) -> tuple[list[list[str]], int]:
    out: list[list[str]] = []
    skipped = 0
    for f in files:
        try:
            out.append(tokens(extract_bytes(strip_mbox_line(f.read_bytes()))))
        except OSError:
            skipped += 1
        if progress is not None:
            progress(1)
    return out, skipped


def fit_model(model: SpamModel, ham: Sequence[list[str]], spam: Sequence[list[str]], *, source: str,
              epochs: int = EPOCHS) -> None:
    model.fit([*ham, *spam], [0] * len(ham) + [1] * len(spam), source=source, epochs=epochs)


def train(store: ModelStore, *, ham: Sequence[Path], spam: Sequence[Path], source: str = "spam train",
          progress: Progress | None = None, epochs: int = EPOCHS) -> TrainResult:
    """Read every message below `ham` and `spam`, learn them, save the site model. Raises
    FileNotFoundError for a missing folder and ValueError when no message was found."""
    ham_files, spam_files = message_files(ham), message_files(spam)
    if not ham_files and not spam_files:
        raise ValueError("no messages found")
    ham_tok, s1 = read_tokens(ham_files, progress)
    spam_tok, s2 = read_tokens(spam_files, progress)
    with store.writing() as model:
        fit_model(model, ham_tok, spam_tok, source=source, epochs=epochs)
    assert store.site_path is not None
    return TrainResult(len(ham_tok), len(spam_tok), s1 + s2, store.site_path)
