"""The pipeline: checks per stage that emit symbols, one scorer that decides."""

from mailbastion.policy.check import Check, CheckContext, FunctionCheck, check, known_checks
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, ScoreTable, Thresholds, load_score_table

__all__ = [
    "Check",
    "CheckContext",
    "FunctionCheck",
    "Pipeline",
    "ScoreTable",
    "Scorer",
    "Thresholds",
    "check",
    "known_checks",
    "load_score_table",
]
