"""Where the model lives, and the one entry point every kind of learning goes through.

    store = ModelStore(site_path=data_dir / "spam/model.joblib")
    store.model()                          # the site model if there is one, else the shipped default
    store.learn(raw_bytes, is_spam=True, source="report")   # parse, learn, save, log

The shipped default (`spam/data/default-model.joblib`, see `spam/data/MODEL.md`) is read-only; the
first site learning copies it into `site_path` and learns on top. Readers in other processes pick up a
new site model by its modification time (checked at most every `reload_interval` seconds). Writers
hold an exclusive lock file (`model.joblib.lock`, fcntl) so that two learners never lose each
other's updates. Every learned message is appended to `learned.log` (JSON lines) next to the model.

Later entry points (a user moving mail into or out of Junk over IMAP) call `learn` with
source="junk-move" / "junk-rescue"; nothing else is needed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from mailbastion.spam.features import extract_bytes
from mailbastion.spam.model import SpamModel
from mailbastion.spam.tokens import tokens

log = logging.getLogger("mailbastion.spam")


def shipped_model_path() -> Path:
    return Path(str(resources.files("mailbastion.spam").joinpath("data", "default-model.joblib")))


# Models read for classifying, by file and modification time: every store of one process shares the one
# read, and processes forked after a read (the SMTP acceptors, once the parent preloaded) share its pages.
# Learning never touches these: `writing()` reads a copy of its own.
_SHARED: dict[Path | None, tuple[float | None, SpamModel]] = {}
_SHARED_LOCK = threading.Lock()


def _shared_read(path: Path | None, mtime: float | None) -> SpamModel:
    with _SHARED_LOCK:
        found = _SHARED.get(path)
        if found is not None and found[0] == mtime:
            return found[1]
        model = ModelStore._read(path)
        _SHARED[path] = (mtime, model)
        return model


class ModelStore:
    def __init__(self, site_path: Path | None, *, shipped_path: Path | None = None,
                 reload_interval: float = 5.0) -> None:
        self.site_path = site_path
        self.shipped_path = shipped_path or shipped_model_path()
        self.reload_interval = reload_interval
        self._model: SpamModel | None = None
        self._loaded_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    @property
    def log_path(self) -> Path | None:
        return self.site_path.with_name("learned.log") if self.site_path else None

    def source_path(self) -> Path | None:
        """The file the current model comes from: the site model if present, else the shipped one."""
        if self.site_path is not None and self.site_path.exists():
            return self.site_path
        return self.shipped_path if self.shipped_path.exists() else None

    def model(self) -> SpamModel:
        """The current model; loads lazily and reloads when the site file changed. Never raises:
        an unreadable model is logged and an untrained one is used (its symbol says so)."""
        now = time.monotonic()
        if self._model is not None and now - self._checked_at < self.reload_interval:
            return self._model
        with self._lock:
            self._checked_at = now
            path = self.source_path()
            mtime = path.stat().st_mtime if path is not None else None
            if self._model is None or mtime != self._loaded_mtime:
                self._model = _shared_read(path, mtime)
                self._loaded_mtime = mtime
            return self._model

    @staticmethod
    def _read(path: Path | None) -> SpamModel:
        if path is None:
            log.warning("spam.model none found; the classifier is untrained")
            return SpamModel.empty()
        try:
            return SpamModel.load(path)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.error("spam.model unreadable %s: %s", path, exc)
            return SpamModel.empty()

    @contextmanager
    def writing(self) -> Iterator[SpamModel]:
        """Exclusive access for learning: yields the freshest model, saves it to the site path."""
        if self.site_path is None:
            raise RuntimeError("no site model path configured (spam.model_path)")
        self.site_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.site_path.with_name(self.site_path.name + ".lock")
        with open(lock_path, "a+") as lock_fh, self._lock:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)
            try:
                model = self._read(self.source_path())
                yield model
                model.save(self.site_path)
                self._model, self._loaded_mtime = model, self.site_path.stat().st_mtime
                self._checked_at = time.monotonic()
            finally:
                fcntl.flock(lock_fh, fcntl.LOCK_UN)

    def learn(self, raw: bytes, *, is_spam: bool, source: str, note: str = "") -> int:
        """Learn one message (raw bytes) as spam or ham; saves the site model and logs the event.
        Returns the learning steps taken. Raises RuntimeError when no site path is configured."""
        return self.learn_many([raw], is_spam=is_spam, source=source, note=note)[0]

    def learn_many(self, raws: Sequence[bytes], *, is_spam: bool, source: str, note: str = "") -> list[int]:
        toks = [tokens(extract_bytes(r)) for r in raws]
        with self.writing() as model:
            steps = [model.learn(t, is_spam=is_spam, source=source) for t in toks]
        for raw, n in zip(raws, steps, strict=True):
            self._log_event(raw, is_spam=is_spam, source=source, steps=n, note=note)
        return steps

    def _log_event(self, raw: bytes, *, is_spam: bool, source: str, steps: int, note: str) -> None:
        feats = extract_bytes(raw)
        event = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "label": "spam" if is_spam else "ham",
            "source": source, "steps": steps, "sha256": hashlib.sha256(raw).hexdigest(),
            "from": feats.from_address, "subject": (feats.subject or "")[:200], "note": note,
        }
        log.info("spam.learned %s", json.dumps(event, ensure_ascii=False))
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, ensure_ascii=False) + "\n")
