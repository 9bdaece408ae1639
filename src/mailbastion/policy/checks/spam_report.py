"""The report addresses (report-spam@ / report-ham@ each of our domains): learn what our users report.

At DATA (after DMARC, priority 70): when a recipient is a report address, an authorised reporter's
message is unwrapped and learned (spam/report.py) and SPAM_REPORT_LEARNED records it; an outsider's is
not learned and SPAM_REPORT_REFUSED records why. The check never refuses mail itself. The report
address must resolve as a local recipient (an alias to an admin mailbox, or a sink the integrator
drops after the verdict): this check does not accept recipients, the recipient check does.
"""

from __future__ import annotations

import asyncio
import logging

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.features import extract
from mailbastion.spam.report import ReportLearner

log = logging.getLogger("mailbastion.spam.report")


class SpamReportCheck(BaseCheck):
    name = "spam_report"
    stage = Stage.DATA
    emits = frozenset({"SPAM_REPORT_LEARNED", "SPAM_REPORT_REFUSED"})
    on_error = Action.ACCEPT
    timeout = 20.0
    priority = 70

    def __init__(self, learner: ReportLearner) -> None:
        self.learner = learner

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return EMPTY
        labels = {lab for r in ctx.envelope.recipients if (lab := self.learner.label_for(r)) is not None}
        if not labels:
            return EMPTY
        if len(labels) > 1:
            return CheckResult.of(Symbol("SPAM_REPORT_REFUSED", "sent to both report-spam and report-ham"))
        is_spam = labels.pop()
        ok, reason = self.learner.authorised(ctx.peer, ctx.envelope, extract(ctx.message).from_domain,
                                             [s.name for s in ctx.symbols])
        if not ok:
            log.warning("spam.report refused: %s", reason)
            return CheckResult.of(Symbol("SPAM_REPORT_REFUSED", reason))
        reporter = ctx.peer.authenticated_as or ctx.envelope.sender_text
        outcome = await asyncio.to_thread(self.learner.learn_from_report, ctx.message.raw, is_spam=is_spam,
                                          reporter=reporter)
        label = "spam" if is_spam else "ham"
        if outcome.learned == 0:
            return CheckResult.of(Symbol("SPAM_REPORT_REFUSED", "no reported message found inside"))
        return CheckResult.of(Symbol("SPAM_REPORT_LEARNED", f"{outcome.learned} as {label} ({outcome.how})"))
