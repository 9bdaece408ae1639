"""Runs the checks of a stage, each under its own timeout, and collects what they saw."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailbastion import metrics
from mailbastion.core import replies
from mailbastion.core.errors import MailError
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Edit, Forced, Symbol, Verdict
from mailbastion.policy.check import Check, CheckContext, error_symbol
from mailbastion.policy.scoring import Scorer

log = logging.getLogger("mailbastion.policy")


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """What the checks of one stage said: their symbols, the strongest forced outcome, their edits."""

    symbols: tuple[Symbol, ...]
    forced: Forced | None
    edits: tuple[Edit, ...]


def _reply_for_error(check: Check, exc: BaseException | None) -> Forced | None:
    if check.on_error <= Action.QUARANTINE:
        return None  # fail open: the error symbol is all that remains
    if isinstance(exc, MailError):
        reply = exc.reply
    elif check.on_error == Action.SOFT_REJECT:
        reply = replies.TEMP_FAILURE
    else:
        reply = replies.REJECTED
    if check.on_error == Action.SOFT_REJECT and not reply.is_temporary:
        reply = replies.TEMP_FAILURE
    return Forced(check.on_error, reply, by=check.name)


class Pipeline:
    """The ordered checks of every stage and the scorer that turns DATA-stage symbols into a Verdict."""

    def __init__(self, checks: Iterable[Check], scorer: Scorer) -> None:
        self._by_stage: dict[Stage, list[Check]] = {stage: [] for stage in Stage}
        for c in checks:
            self._by_stage[c.stage].append(c)
        for lst in self._by_stage.values():
            lst.sort(key=lambda c: c.priority)
        self.scorer = scorer
        scorer.table.validate_emitted(self.checks)

    @property
    def checks(self) -> list[Check]:
        return [c for lst in self._by_stage.values() for c in lst]

    def checks_for(self, stage: Stage) -> Sequence[Check]:
        return self._by_stage[stage]

    async def run_stage(self, ctx: CheckContext) -> StageOutcome:
        """Run every check of ctx.stage; equal priorities run concurrently. Never raises for a check's
        failure: a timeout or exception becomes `<NAME>_CHECK_ERROR` plus the check's on_error."""
        symbols: list[Symbol] = []
        forced: list[Forced] = []
        edits: list[Edit] = []
        for _prio, group in itertools.groupby(self._by_stage[ctx.stage], key=lambda c: c.priority):
            batch = list(group)
            if len(batch) == 1:  # the usual case: no task, no gather
                results = [await self._run_one(batch[0], ctx)]
            else:
                results = await asyncio.gather(*(self._run_one(c, ctx) for c in batch))
            for result in results:
                symbols.extend(result.symbols)
                ctx.symbols.extend(result.symbols)
                edits.extend(result.edits)
                if result.forced is not None:
                    forced.append(result.forced)
            if any(f.action >= Action.SOFT_REJECT for f in forced):
                break  # the transaction is refused: later checks would be wasted work
        strongest = max(forced, key=lambda f: f.action) if forced else None
        return StageOutcome(tuple(symbols), strongest, tuple(edits))

    async def _run_one(self, check: Check, ctx: CheckContext) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(check.timeout):  # wait_for would make a task per check (Python 3.11)
                return await check(ctx)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            log.warning("check %s timed out after %.1fs", check.name, check.timeout)
            return CheckResult((Symbol(error_symbol(check.name), "timeout"),), _reply_for_error(check, exc))
        except Exception as exc:  # noqa: BLE001 - a failing check must not take the session down
            log.warning("check %s failed: %s: %s", check.name, type(exc).__name__, exc)
            detail = f"{type(exc).__name__}: {exc}"[:200]
            return CheckResult((Symbol(error_symbol(check.name), detail),), _reply_for_error(check, exc))
        finally:
            metrics.check_seconds(check.name, time.perf_counter() - started)

    def decide(self, symbols: Sequence[Symbol], forced: Forced | None, edits: Sequence[Edit] = ()) -> Verdict:
        return self.scorer.decide(symbols, forced, edits)
