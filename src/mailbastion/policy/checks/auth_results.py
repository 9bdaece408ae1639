"""Authentication-Results (RFC 8601): ours is added, and any incoming one claiming our authserv-id removed.

RFC 8601 §5: a border MTA MUST remove (or rename) incoming fields that claim its own authserv-id,
since a downstream MUA or filter trusts them. Both changes are `Edit`s applied after the verdict.
Runs last among the authentication checks (priority 30) so that it sees every result.
"""

from __future__ import annotations

import re
import unicodedata

from mailbastion.auth.dkim_verify import ArcResult, DkimResults
from mailbastion.auth.dmarc import DmarcOutcome
from mailbastion.auth.from_header import FromAnalysis
from mailbastion.auth.spf import SpfResult
from mailbastion.core.headers import AUTH_RESULTS
from mailbastion.core.message import SpooledMessage
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Edit, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

_VALUE_UNSAFE = re.compile(r"[\s;()\"\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AR_LINE = re.compile(rb"(?i)authentication-results[ \t]*:")


def _v(value: str) -> str:
    """A property value (RFC 8601 §2.2 pvalue): quote what is not a plain token.

    Values come from the sender (HELO, MAIL FROM, d= and s= tags, dkimpy's messages about them): control
    characters become spaces so no value can fold or end our header, and quotes are escaped."""
    value = _CONTROL.sub(" ", value)
    if not _VALUE_UNSAFE.search(value) and value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def claimed_authserv_ids(message: SpooledMessage) -> list[str]:
    """The authserv-id of each incoming Authentication-Results field, as written (comments removed).

    Fields as `HeaderBlock` splits them (`Authentication-Results :` with the obsolete space counts
    too). A malformed line that reads as one (a header section starting with a folded
    ` Authentication-Results: ...`) counts as well: some readers take it for a field, and a claim of
    our id must never survive in any reading."""
    out: list[str] = []
    for f in message.header.fields:
        if f.name == "authentication-results":
            value = f.value_bytes
        elif not f.name and _AR_LINE.match(f.value_bytes):
            value = f.value_bytes.partition(b":")[2]
        else:
            continue
        text = strip_comments(value.decode("utf-8", "replace")).strip()
        out.append(re.split(r"[\s;]", text, maxsplit=1)[0] if text else "")
    return out


def strip_comments(text: str) -> str:
    """RFC 5322 §3.2.2 comments (nested, with quoted-pairs) replaced by a space, in one linear pass."""
    out: list[str] = []
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and depth and i + 1 < len(text):
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif not depth:
            out.append(c)
        i += 1
    return "".join(out)


def is_ours(claimed: str, authserv_id: str) -> bool:
    """Case-insensitive, and blind to Unicode look-alikes of ASCII (NFKC: the Kelvin sign is a K)."""
    return unicodedata.normalize("NFKC", claimed).casefold().rstrip(".") == authserv_id


def build_header(authserv_id: str, ctx: CheckContext) -> str:
    """The field value: `<authserv-id>; spf=...; dkim=...; arc=...; dmarc=...` (RFC 8601 §2.2)."""
    parts = [authserv_id]
    spf = ctx.get(SpfResult)
    if spf is not None:
        prop = f"smtp.mailfrom={_v(str(ctx.envelope.sender))}" if spf.identity == "mailfrom" else \
            f"smtp.helo={_v(spf.domain)}"
        parts.append(f"spf={spf.result} {prop}")
    dkim = ctx.get(DkimResults)
    if dkim is not None:
        if not dkim.signatures:
            parts.append("dkim=none")
        for sig in dkim.signatures:
            reason = f" reason={_v(sig.reason[:60])}" if sig.reason else ""
            parts.append(f"dkim={sig.result}{reason} header.d={_v(sig.domain)} header.s={_v(sig.selector)}"
                         f" header.a={_v(sig.algorithm)} header.b={_v(sig.b)}")
    arc = ctx.get(ArcResult)
    if arc is not None:
        parts.append(f"arc={arc.cv}" + (f" header.oldest-pass=0 smtp.remote-ip={_v(ctx.peer.ip)}"
                                         if arc.cv == "pass" else ""))
    outcome = ctx.get(DmarcOutcome)
    sender = ctx.get(FromAnalysis)
    if outcome is not None:
        comment = f" (p={outcome.policy} dis={outcome.applied})" if outcome.result != "none" else ""
        parts.append(f"dmarc={outcome.result}{comment} header.from={_v(outcome.from_domain)}")
    elif sender is not None and sender.domain is None:
        parts.append("dmarc=permerror (From header refused)")
    return "; ".join(parts)  # one line: the gateway prepends it as is, whatever the line ends are


class AuthResultsCheck(BaseCheck):
    name = "auth_results"
    stage = Stage.DATA
    emits = frozenset({"AUTH_RESULTS_FORGED"})
    on_error = Action.ACCEPT
    timeout = 5.0
    priority = 30

    def __init__(self, authserv_id: str) -> None:
        self.authserv_id = authserv_id.lower().rstrip(".")

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        assert ctx.message is not None
        edits: list[Edit] = []
        symbols: list[Symbol] = []
        for claimed in dict.fromkeys(claimed_authserv_ids(ctx.message)):
            if is_ours(claimed, self.authserv_id) and "\ufffd" not in claimed:
                symbols.append(Symbol("AUTH_RESULTS_FORGED", claimed))
                edits.append(Edit.remove(AUTH_RESULTS, claimed))
        edits.append(Edit.prepend(AUTH_RESULTS, build_header(self.authserv_id, ctx)))
        return CheckResult(symbols=tuple(symbols), edits=tuple(edits))
