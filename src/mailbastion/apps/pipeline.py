"""Builds the pipeline of a role from its features, checks the start-up rules, and rebuilds both on reload."""

from __future__ import annotations

import logging

import mailbastion.crypto.inbound
from mailbastion.apps.features import Feature, Services, load_features
from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.policy.checks import import_all
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table

log = logging.getLogger("mailbastion.apps")

import_all()  # registers every known check, so the score table is validated against all of them


def build_pipeline(services: Services, features: list[Feature] | None = None) -> tuple[Pipeline, list[Feature]]:
    """Every enabled check of every feature, weighed by the shipped scores plus local.d/scores.toml.

    Raises ConfigError when a symbol is emitted but not scored, or scored but emitted by no check."""
    settings = services.settings
    feats = features if features is not None else load_features(services)
    table = load_score_table(settings.path("local.d/scores.toml"))
    table.validate_known()
    checks = [c for f in feats for c in f.checks()]
    pipeline = Pipeline(checks, Scorer(table))
    return pipeline, feats


def startup_problems(features: list[Feature]) -> list[str]:
    return [p for f in features for p in f.startup_problems()]


def refuse_on_problems(features: list[Feature]) -> None:
    problems = startup_problems(features)
    if problems:
        raise ConfigError("refusing to start:\n  - " + "\n  - ".join(problems))


class PolicyStack:
    """The features and the pipeline built from them, as one process runs them; rebuilt whole on reload.

    Checks read their settings when they are built, so a reload builds the features again from the new
    settings (config/reload.py's contract: every `auth.*`, `spam.*`, `antivirus.*` key applies to the next
    message). The new stack is checked and started before it replaces the running one; when it fails,
    the running one stays and the error is raised."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.pipeline, self.features = build_pipeline(services)
        refuse_on_problems(self.features)

    @property
    def check_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.pipeline.checks)

    async def start(self) -> None:
        for f in self.features:
            await f.start()

    async def stop(self) -> None:
        for f in self.features:
            try:
                await f.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others regardless
                log.error("stopping feature %s failed: %s", f.name, exc)

    async def reload(self, settings: Settings) -> Pipeline:
        """Build, check and start the features of `settings`; then stop the old ones. Returns the new
        pipeline. Raises (ConfigError or the build's error) and keeps the running stack on failure."""
        old_settings = self.services.settings
        self.services.settings = settings
        try:
            pipeline, features = build_pipeline(self.services)
            refuse_on_problems(features)
        except Exception:
            self.services.settings = old_settings
            raise
        for f in features:
            await f.start()
        old, self.features, self.pipeline = self.features, features, pipeline
        for f in old:
            try:
                await f.stop()
            except Exception as exc:  # noqa: BLE001
                log.error("stopping the replaced feature %s failed: %s", f.name, exc)
        return pipeline
