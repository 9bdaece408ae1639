"""Measure 3: GTUBE through the real MX listener must be refused as spam; the model's age and training
size (spam/store.py, what `mailbastion spam status` shows) are evidence, and an untrained model fails."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import MET, NOT_MET, MeasureResult
from mailbastion.measures.smtp_probe import MailTarget, deliver_probe

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["GTUBE", "SpamProbe", "gtube_message", "model_facts"]

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def gtube_message() -> bytes:
    return (b"From: mailbastion audit <audit@audit-probe.invalid>\r\nTo: <postmaster>\r\n"
            b"Subject: audit: GTUBE\r\nMessage-ID: <gtube@audit-probe.invalid>\r\n"
            b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
            b"A test of the spam filter by `mailbastion audit`; it must be refused.\r\n\r\n" + GTUBE + b"\r\n")


def model_facts(settings: Settings) -> tuple[bool, list[str]]:
    """(trained, evidence lines) of the model in use: where it comes from, its age, what it learned."""
    from mailbastion.spam.store import ModelStore

    store = ModelStore(settings.path(settings.spam.classifier.model_path))
    path = store.source_path()
    if path is None:
        return False, ["no spam model: neither a site model nor the shipped default is present"]
    model = store.model()
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    kind = "site model" if path == store.site_path else "shipped default model"
    ham, spam = int(model.meta.get("ham", 0)), int(model.meta.get("spam", 0))
    line = f"{kind} {path.name}: last written {age.days} day(s) ago, trained on {ham} ham and {spam} spam message(s)"
    return model.is_trained, [line]


class SpamProbe:
    numbers: tuple[int, ...] = (3,)

    def __init__(self, settings: Settings, target: MailTarget | None, why_not: str = "") -> None:
        self.settings = settings
        self.target = target
        self.why_not = why_not

    async def __call__(self) -> Sequence[MeasureResult]:
        trained, lines = await asyncio.to_thread(model_facts, self.settings)
        if not self.settings.spam.classifier.enabled:
            lines.append("spam.classifier.enabled = false: the model is not consulted")
        if self.target is None:
            return [MeasureResult(3, NOT_MET, f"GTUBE could not be sent: {self.why_not}", tuple(lines),
                                  fix="run the audit on the host of the MX listener")]
        seen = await asyncio.to_thread(deliver_probe, self.target, gtube_message())
        lines.insert(0, f"GTUBE: {seen.text}")
        if not (seen.refused and "spam" in seen.final.lower()):
            return [MeasureResult(3, NOT_MET, "GTUBE was not refused as spam", tuple(lines), "mailbastion audit",
                                  fix="enable the spam rules ([spam.rules] enabled = true) and the filter")]
        if not trained or not self.settings.spam.classifier.enabled:
            return [MeasureResult(3, NOT_MET, "GTUBE refused, but no trained model is in use", tuple(lines),
                                  "mailbastion spam status", fix="`mailbastion spam train`, classifier enabled")]
        return [MeasureResult(3, MET, "GTUBE refused as spam; a trained model is in use", tuple(lines),
                              "mailbastion audit, mailbastion spam status")]
