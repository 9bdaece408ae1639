"""The inbound gateway above the protocol engine and the policy: the MX role's StageHandler.

    GatewayHandler   gateway/handler.py   runs the pipeline per stage, turns verdicts into replies,
                                          adds Received/X-Spam-*, hands to the spool or quarantine
    received         gateway/received.py  our Received trace field and the hop count
    rewrite          gateway/rewrite.py   header edits on `core/header_block.py`
    logline          gateway/logline.py   the one log line per message

`smtp/` speaks protocol only; this package is where protocol meets policy. The gateway role imports
no password hashing, directory database or mailbox code.
"""

from __future__ import annotations

from mailbastion.gateway.handler import GatewayHandler

__all__ = ["GatewayHandler"]
