"""Where the shared labeled corpora are (`../shared/corpora`, see its README), for tests and benches that
read them. Never copied into the repository; a user's machine has none, and what needs them says so."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["corpora_dir"]

_REPO = Path(__file__).resolve().parents[3]


def corpora_dir() -> Path:
    """$MAILBASTION_CORPORA, else `shared/corpora` beside the checkout (or beside a worktree's parent).
    The path is returned even when it does not exist: callers skip, saying where they looked."""
    env = os.environ.get("MAILBASTION_CORPORA")
    if env:
        return Path(env)
    for base in (_REPO.parent, _REPO.parent.parent):  # a checkout, or a worktree beside it
        if (base / "shared" / "corpora").is_dir():
            return base / "shared" / "corpora"
    return _REPO.parent / "shared" / "corpora"
