"""The protocol engine: SMTP, ESMTP and LMTP servers on `asyncio.Protocol`, and the handler seam.

    StageHandler, LmtpStageHandler, BaseHandler   smtp/handler.py    what a role implements
    SmtpEdge, EdgeConfig                          smtp/edge.py       protocol factory, settings, drain
    EdgeLimits, NetworkList                       smtp/limits.py     limits of one listener set
    Listeners, bind, run_workers                  smtp/listeners.py  start/stop/drain servers; N processes

Inside: session.py (life and session commands), transaction.py (MAIL/RCPT/DATA/BDAT),
connection.py (transport plumbing), reader.py (input buffer), commands.py (argument parsing),
data.py (message checks), proxy.py (PROXY v1/v2), xclient.py, sasl.py (AUTH PLAIN/LOGIN).
`smtp/` imports only `core/` and its own modules: it speaks protocol and decides nothing.

Names are imported lazily, so `mailbastion.tls_policy` (used by every role) pulls in nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BaseHandler", "EdgeConfig", "EdgeLimits", "Listeners", "LmtpStageHandler", "NetworkList", "SmtpEdge",
           "StageHandler", "bind", "run_workers"]

_WHERE = {
    "EdgeConfig": "edge", "SmtpEdge": "edge", "StageHandler": "handler", "LmtpStageHandler": "handler",
    "BaseHandler": "handler", "EdgeLimits": "limits", "NetworkList": "limits",
    "Listeners": "listeners", "bind": "listeners", "run_workers": "listeners",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mailbastion.smtp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mailbastion.smtp.{module}"), name)
