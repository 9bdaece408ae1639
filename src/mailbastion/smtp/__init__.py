"""The SMTP edge: protocol over aiosmtpd, the StageHandler seam, the gateway's handler, listeners.

    StageHandler       smtp/handler.py    what every role's handler implements
    GatewayHandler     smtp/gateway.py    the inbound gateway's handler (pipeline, spool, quarantine)
    SmtpEdge           smtp/edge.py       protocol factory + connection registry (limits, drain)
    EdgeConfig         smtp/edge.py       protocol settings of one listener set
    Listeners          smtp/listeners.py  start/stop/drain servers; bind + run_workers for N processes

Names are imported lazily, so `mailbastion.smtp.tls` (used by every role) pulls in nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EdgeConfig", "GatewayHandler", "Listeners", "SmtpEdge", "StageHandler", "bind", "run_workers"]

_WHERE = {
    "EdgeConfig": "edge", "SmtpEdge": "edge", "GatewayHandler": "gateway", "StageHandler": "handler",
    "Listeners": "listeners", "bind": "listeners", "run_workers": "listeners",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mailbastion.smtp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mailbastion.smtp.{module}"), name)
