import asyncio

from mailbastion.core import replies
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import EngineUnavailable
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import CheckContext, FunctionCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, ScoreTable, SymbolScore, load_score_table


def _pipeline(*checks: FunctionCheck) -> Pipeline:
    symbols = {s: SymbolScore(1.0, "t", "") for c in checks for s in c.emits}
    return Pipeline(checks, Scorer(ScoreTable(symbols, thresholds=load_score_table().thresholds)))


def _ctx() -> CheckContext:
    return CheckContext(Stage.DATA, PeerInfo("192.0.2.1"), Envelope(None))


async def test_symbols_collected_and_visible_to_later_priorities() -> None:
    async def first(ctx: CheckContext) -> CheckResult:
        return CheckResult.of("FIRST")

    async def second(ctx: CheckContext) -> CheckResult:
        return CheckResult.of("SAW_FIRST" if ctx.has_symbol("FIRST") else "BLIND")

    p = _pipeline(
        FunctionCheck(first, "first", Stage.DATA, frozenset({"FIRST"}), priority=10),
        FunctionCheck(second, "second", Stage.DATA, frozenset({"SAW_FIRST", "BLIND"}), priority=20),
    )
    out = await p.run_stage(_ctx())
    assert [s.name for s in out.symbols] == ["FIRST", "SAW_FIRST"]


async def test_fail_closed_check_that_raises_soft_rejects() -> None:
    async def av(ctx: CheckContext) -> CheckResult:
        raise EngineUnavailable("clamd down")

    p = _pipeline(FunctionCheck(av, "antivirus", Stage.DATA, frozenset({"AV_X"}), on_error=Action.SOFT_REJECT))
    out = await p.run_stage(_ctx())
    assert out.forced is not None and out.forced.action is Action.SOFT_REJECT
    assert out.forced.reply == replies.SCAN_UNAVAILABLE
    assert out.symbols[0].name == "ANTIVIRUS_CHECK_ERROR"


async def test_fail_open_check_that_times_out_only_adds_symbol() -> None:
    async def slow(ctx: CheckContext) -> CheckResult:
        await asyncio.sleep(5)
        return CheckResult()

    p = _pipeline(FunctionCheck(slow, "dnsbl", Stage.DATA, frozenset({"RBL_X"}), timeout=0.05))
    out = await p.run_stage(_ctx())
    assert out.forced is None
    assert out.symbols == (Symbol("DNSBL_CHECK_ERROR", "timeout"),)


async def test_strongest_forced_wins() -> None:
    async def a(ctx: CheckContext) -> CheckResult:
        return CheckResult(forced=Forced(Action.QUARANTINE, replies.OK, by="a"))

    async def b(ctx: CheckContext) -> CheckResult:
        return CheckResult(forced=Forced(Action.REJECT, replies.VIRUS_FOUND, by="b"))

    p = _pipeline(FunctionCheck(a, "a", Stage.DATA, frozenset()), FunctionCheck(b, "b", Stage.DATA, frozenset()))
    out = await p.run_stage(_ctx())
    verdict = p.decide(out.symbols, out.forced)
    assert verdict.action is Action.REJECT and verdict.forced is not None and verdict.forced.by == "b"
