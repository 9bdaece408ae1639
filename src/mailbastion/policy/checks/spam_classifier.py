"""The learned classifier as symbols, one probability band each, the probability as detail.

    P >= high_probability (0.99)   BAYES_SPAM_HIGH
    P >= spam_probability (0.8)    BAYES_SPAM
    P >= low_probability (0.5)     BAYES_SPAM_LOW
    P <= ham_probability (0.1)     BAYES_HAM

It gives a probability, never a verdict: the weights in config/scores/spam.toml and the thresholds decide,
and the `bayes` group's cap there keeps the classifier alone below the Junk threshold (a learned opinion
reaches Junk only when another symbol corroborates it). Runs at DATA after the authentication checks
(priority 60 > dmarc's 20), so their symbols (R_SPF_FAIL, DMARC_POLICY_REJECT...) are features too. Cost:
one parse (shared with the rules) and one sparse dot product, about 1 ms; the model is loaded once and
reloaded only when the site model file changes.
"""

from __future__ import annotations

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.features import extract
from mailbastion.spam.store import ModelStore
from mailbastion.spam.tokens import tokens

EMITS = frozenset({"BAYES_SPAM_LOW", "BAYES_SPAM", "BAYES_SPAM_HIGH", "BAYES_HAM", "BAYES_UNTRAINED"})


class SpamClassifierCheck(BaseCheck):
    name = "spam_classifier"
    stage = Stage.DATA
    emits = EMITS
    on_error = Action.ACCEPT  # a broken model must not stop mail; the error symbol records it
    timeout = 5.0
    priority = 60

    def __init__(self, store: ModelStore, *, low_probability: float = 0.5, spam_probability: float = 0.8,
                 high_probability: float = 0.99, ham_probability: float = 0.1) -> None:
        if not ham_probability < low_probability <= spam_probability <= high_probability:
            raise ValueError("classifier bands must rise: ham < low <= spam <= high probability")
        self.store = store
        self.bands = ((high_probability, "BAYES_SPAM_HIGH"), (spam_probability, "BAYES_SPAM"),
                      (low_probability, "BAYES_SPAM_LOW"))
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
        for limit, name in self.bands:
            if p >= limit:
                return CheckResult.of(Symbol(name, detail))
        if p <= self.ham_probability:
            return CheckResult.of(Symbol("BAYES_HAM", detail))
        return EMPTY
