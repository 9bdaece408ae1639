"""Sender authentication shared by the checks, the signer and the CLI: SPF, DKIM, ARC, DMARC, From.

Nothing here replies or scores; `policy/checks/{spf,dkim,arc,dmarc,from_header,auth_results}.py` turn
these results into symbols. pyspf and dkimpy are synchronous: `dns_bridge` explains how they are fed
from the async resolver without blocking the loop.
"""

from mailbastion.auth.dkim_verify import ArcResult, DkimResults, DkimVerifier, SignatureResult
from mailbastion.auth.dmarc import DmarcOutcome, DmarcPolicyFinder, DmarcRecord, aligned, organizational_domain
from mailbastion.auth.from_header import FromAnalysis, analyze_from
from mailbastion.auth.spf import SpfEvaluator, SpfResult

__all__ = [
    "ArcResult",
    "DkimResults",
    "DkimVerifier",
    "DmarcOutcome",
    "DmarcPolicyFinder",
    "DmarcRecord",
    "FromAnalysis",
    "SignatureResult",
    "SpfEvaluator",
    "SpfResult",
    "aligned",
    "analyze_from",
    "organizational_domain",
]
