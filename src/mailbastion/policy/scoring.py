"""Weights, group caps and thresholds: the one place that turns symbols into an action.

The shipped table is every `mailbastion/config/scores/*.toml` (one file per group of checks); a
site changes weights and thresholds only in `<data_dir>/local.d/scores.toml`.

    [actions]                      # thresholds; the highest one reached wins
    add_header = 5.0
    [groups.spf]
    max_score = 6.0                # the group's positive contribution is capped here
    [symbols.R_SPF_FAIL]
    weight = 1.0
    group = "spf"
    description = "SPF verification failed"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mailbastion.core import replies
from mailbastion.core.errors import ConfigError
from mailbastion.core.verdict import Action, Edit, Forced, ScoredSymbol, Symbol, Verdict
from mailbastion.policy.check import Check, error_symbol, known_checks

_ACTION_KEYS = {
    "add_header": Action.ADD_HEADER,
    "junk": Action.JUNK,
    "quarantine": Action.QUARANTINE,
    "soft_reject": Action.SOFT_REJECT,
    "reject": Action.REJECT,
}
_ERROR_WEIGHT = 0.0  # a check error is recorded; its weight is 0 unless a site scores it


@dataclass(frozen=True, slots=True)
class SymbolScore:
    weight: float
    group: str
    description: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Scores from which each action applies; None: never. The shipped values live in one place,
    config/scores/actions.toml (`load_score_table().thresholds`); a Thresholds() names no action."""

    add_header: float | None = None
    junk: float | None = None
    quarantine: float | None = None
    soft_reject: float | None = None
    reject: float | None = None

    def action_for(self, score: float) -> Action:
        best = Action.ACCEPT
        for key, action in _ACTION_KEYS.items():
            limit = getattr(self, key)
            if limit is not None and score >= limit and action > best:
                best = action
        return best


@dataclass(frozen=True)
class ScoreTable:
    symbols: dict[str, SymbolScore]
    groups: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # (min, max)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def weight(self, name: str) -> SymbolScore:
        found = self.symbols.get(name)
        if found is not None:
            return found
        if name.endswith("_CHECK_ERROR"):
            return SymbolScore(_ERROR_WEIGHT, "errors", "a check failed or timed out")
        # Unscored symbols cannot be emitted by a validated pipeline; count them at zero.
        return SymbolScore(0.0, "unknown", "")

    def validate_emitted(self, checks: Iterable[Check]) -> None:
        """Startup rule: every symbol an enabled check can emit is scored."""
        missing = sorted({s for c in checks for s in c.emits if s not in self.symbols})
        if missing:
            raise ConfigError(f"symbols emitted but not scored: {', '.join(missing)}", key="symbols")

    def validate_known(self) -> None:
        """Startup rule: every scored symbol is emitted by some check that exists."""
        emitted = set().union(*known_checks().values()) if known_checks() else set()
        emitted |= {error_symbol(n) for n in known_checks()}
        orphans = sorted(s for s in self.symbols if s not in emitted)
        if orphans:
            raise ConfigError(f"scores for symbols no check emits: {', '.join(orphans)}", key="symbols")


def _merge(into: dict[str, Any], data: dict[str, Any], source: str, *, site: bool) -> None:
    for section, body in data.items():
        if section not in ("actions", "groups", "symbols"):
            raise ConfigError(f"unknown section [{section}] (allowed: actions, groups, symbols)", file=source)
        if not isinstance(body, dict):
            raise ConfigError(f"[{section}] must be a table", file=source)
        target = into.setdefault(section, {})
        for key, value in body.items():
            if section == "actions":
                if key not in _ACTION_KEYS:
                    raise ConfigError(
                        f"unknown action {key!r} (allowed: {', '.join(_ACTION_KEYS)})", file=source, key=f"actions.{key}"
                    )
                target[key] = value
                continue
            if section == "symbols" and site and key not in target:
                raise ConfigError(f"unknown symbol {key!r}: a site can only re-weight shipped symbols", file=source,
                                  key=f"symbols.{key}")
            if section == "symbols" and not site and key in target:
                raise ConfigError(f"symbol {key!r} is defined twice in the shipped scores", file=source)
            if not isinstance(value, dict):
                raise ConfigError("must be a table", file=source, key=f"{section}.{key}")
            target.setdefault(key, {}).update(value)


def _shipped_files() -> list[tuple[str, str]]:
    folder = resources.files("mailbastion.config").joinpath("scores")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out.append((f"mailbastion/config/scores/{entry.name}", entry.read_text(encoding="utf-8")))
    return out


def load_score_table(site_file: Path | None = None) -> ScoreTable:
    merged: dict[str, Any] = {}
    for name, text in _shipped_files():
        try:
            _merge(merged, tomllib.loads(text), name, site=False)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(exc), file=name) from None
    if site_file is not None and site_file.exists():
        try:
            data = tomllib.loads(site_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(exc), file=str(site_file)) from None
        _merge(merged, data, str(site_file), site=True)
    symbols: dict[str, SymbolScore] = {}
    for name, body in merged.get("symbols", {}).items():
        unknown = set(body) - {"weight", "group", "description"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)} (allowed: weight, group, description)",
                              key=f"symbols.{name}")
        try:
            weight = float(body["weight"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError("weight must be a number", key=f"symbols.{name}.weight") from None
        symbols[name] = SymbolScore(weight, str(body.get("group", "misc")), str(body.get("description", "")))
    groups = {
        g: (_opt_float(b.get("min_score")), _opt_float(b.get("max_score")))
        for g, b in merged.get("groups", {}).items()
    }
    actions = {k: _opt_float(v) for k, v in merged.get("actions", {}).items()}
    if not actions:  # the shipped actions.toml always has them: a broken install must not accept everything
        raise ConfigError("no [actions] thresholds in the score tables", file="mailbastion/config/scores/actions.toml")
    return ScoreTable(symbols, groups, Thresholds(**actions))


def _opt_float(value: object) -> float | None:
    if value is None or value is False:
        return None
    return float(value)  # type: ignore[arg-type]


class Scorer:
    def __init__(self, table: ScoreTable) -> None:
        self.table = table

    def score(self, symbols: Sequence[Symbol]) -> tuple[float, tuple[ScoredSymbol, ...]]:
        scored: list[ScoredSymbol] = []
        per_group: dict[str, float] = {}
        seen: set[tuple[str, str]] = set()
        for sym in symbols:
            if (sym.name, sym.detail) in seen:
                continue
            seen.add((sym.name, sym.detail))
            s = self.table.weight(sym.name)
            scored.append(ScoredSymbol(sym.name, sym.detail, s.weight, s.group))
            per_group[s.group] = per_group.get(s.group, 0.0) + s.weight
        total = 0.0
        for group, value in per_group.items():
            lo, hi = self.table.groups.get(group, (None, None))
            if hi is not None:
                value = min(value, hi)
            if lo is not None:
                value = max(value, lo)
            total += value
        return round(total, 4), tuple(scored)

    def decide(self, symbols: Sequence[Symbol], forced: Forced | None, edits: Sequence[Edit] = ()) -> Verdict:
        """The highest threshold reached wins, unless a check forced an action at least as strong: a
        forced reject beats a negative score, but a forced Junk never weakens a score that rejects."""
        total, scored = self.score(symbols)
        action = self.table.thresholds.action_for(total)
        if forced is not None and forced.action >= action:
            return Verdict(forced.action, total, scored, forced, forced.reply, tuple(edits))
        reply = None
        if action == Action.REJECT:
            reply = replies.SPAM_REJECTED
        elif action == Action.SOFT_REJECT:
            reply = replies.SOFT_REJECT
        return Verdict(action, total, scored, None, reply, tuple(edits))
