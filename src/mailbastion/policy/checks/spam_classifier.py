"""The learned classifier as symbols: BAYES_SPAM / BAYES_SPAM_HIGH / BAYES_HAM, the probability as detail.

It gives a probability, never a verdict: the weights in config/scores/spam.toml and the thresholds decide.
Runs at DATA after the authentication checks (priority 60 > dmarc's 20), so their symbols (R_SPF_FAIL,
DMARC_POLICY_REJECT...) are features too. Cost: one parse (shared with the rules) and one sparse dot
product, about 1 ms; the model is loaded once and reloaded only when the site model file changes.
"""

from __future__ import annotations

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.features import extract
from mailbastion.spam.store import ModelStore
from mailbastion.spam.tokens import tokens

EMITS = frozenset({"BAYES_SPAM", "BAYES_SPAM_HIGH", "BAYES_HAM", "BAYES_UNTRAINED"})


class SpamClassifierCheck(BaseCheck):
    name = "spam_classifier"
    stage = Stage.DATA
    emits = EMITS
    on_error = Action.ACCEPT  # a broken model must not stop mail; the error symbol records it
    timeout = 5.0
    priority = 60

    def __init__(self, store: ModelStore, *, spam_probability: float = 0.5, high_probability: float = 0.9,
                 ham_probability: float = 0.1) -> None:
        self.store = store
        self.spam_probability, self.high_probability = spam_probability, high_probability
        self.ham_probability = ham_probability

    def probability(self, ctx: CheckContext) -> float | None:
        if ctx.message is None:
            return None
        model = self.store.model()
        if not model.is_trained:
            return None
        return model.probability(tokens(extract(ctx.message), [s.name for s in ctx.symbols]))

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return EMPTY
        p = self.probability(ctx)
        if p is None:
            return CheckResult.of(Symbol("BAYES_UNTRAINED", "no trained model"))
        detail = f"{p:.4f}"
        if p >= self.spam_probability:
            if p >= self.high_probability:
                return CheckResult.of(Symbol("BAYES_SPAM", detail), Symbol("BAYES_SPAM_HIGH", detail))
            return CheckResult.of(Symbol("BAYES_SPAM", detail))
        if p <= self.ham_probability:
            return CheckResult.of(Symbol("BAYES_HAM", detail))
        return EMPTY
