"""Builds the pipeline of a role from its features, and checks the start-up rules."""

from __future__ import annotations

import logging

import mailbastion.policy.checks  # noqa: F401  (registers every known check for validation)
from mailbastion.apps.features import Feature, Services, load_features
from mailbastion.core.errors import ConfigError
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table

log = logging.getLogger("mailbastion.apps")


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
