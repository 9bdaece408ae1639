"""Header sanity at DATA (RFC 5322 §3.6: exactly one From and one Date; Message-ID SHOULD be there).

Symbols: MISSING_FROM, MULTIPLE_FROM, MISSING_DATE, MISSING_MID, EIGHTBIT_UNDECLARED.

Decision, 8-bit data without `BODY=8BITMIME` (RFC 6152): a *symbol* (EIGHTBIT_UNDECLARED), not the
554 5.6.1 refusal. Much legitimate mail from older or sloppy MTAs carries undeclared 8-bit text;
every major MTA accepts it; our only next hop is our own MDA over LMTP, which takes 8-bit data, so
nothing downstream is corrupted. The oddity is still recorded and scored, and a site that wants the
hard line can give the symbol a rejecting weight.
"""

from __future__ import annotations

from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import CheckResult, Symbol
from mailbastion.policy.check import CheckContext, check

__all__ = ["header_counts", "headers"]

def header_counts(header: HeaderBlock | bytes) -> dict[str, int]:
    """How many times each header field appears, by lower-case name, as `HeaderBlock` splits the
    section (continuation lines and malformed lines are no fields). Never raises."""
    block = header if isinstance(header, HeaderBlock) else HeaderBlock.parse(header)
    counts: dict[str, int] = {}
    for f in block.fields:
        if f.name:
            counts[f.name] = counts.get(f.name, 0) + 1
    return counts


@check(
    Stage.DATA,
    emits={"MISSING_FROM", "MULTIPLE_FROM", "MISSING_DATE", "MISSING_MID", "EIGHTBIT_UNDECLARED"},
    name="headers",
    timeout=5.0,
    priority=10,
)
async def headers(ctx: CheckContext) -> CheckResult:
    message = ctx.message
    if message is None:
        return CheckResult()
    counts = header_counts(message.header)
    found: list[Symbol] = []
    n_from = counts.get("from", 0)
    if n_from == 0:
        found.append(Symbol("MISSING_FROM"))
    elif n_from > 1:
        found.append(Symbol("MULTIPLE_FROM", str(n_from)))
    if counts.get("date", 0) == 0:
        found.append(Symbol("MISSING_DATE"))
    if counts.get("message-id", 0) == 0:
        found.append(Symbol("MISSING_MID"))
    env = ctx.envelope
    if not (env.body_8bitmime or env.smtputf8) and not message.raw.isascii():
        found.append(Symbol("EIGHTBIT_UNDECLARED"))
    return CheckResult(symbols=tuple(found))
