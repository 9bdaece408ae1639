"""The seam between the SMTP edge and policy: the edge speaks protocol, a StageHandler decides.

The edge (`smtp/server.py`) parses commands, enforces protocol limits and builds values (`PeerInfo`,
`Envelope`, `SpooledMessage`). At each stage it asks its `StageHandler` and sends back the `Reply` it
gets. A handler never writes to the socket and never changes protocol state; the edge never decides
policy.

Contract for every `on_*` method:

- It returns a `Reply`. A positive reply (2xx/3xx) lets the stage proceed; anything else refuses it
  (the edge sends the reply and, for 421, closes the connection).
- It should not raise. If it does, the edge logs the traceback and answers 451 4.3.0: the client never
  sees a traceback.
- `peer.session_id` identifies the connection across calls; a handler that keeps per-session state
  keys it by that id and drops it in `on_disconnect`.

Order of calls for one connection: on_connect, then any number of (on_helo | on_reset | transactions),
then on_disconnect exactly once (also after a refused connect). A transaction is on_mail, one or more
on_rcpt, then at most one on_data. XCLIENT and PROXY change the peer; the edge then calls on_connect
again with the new `PeerInfo` (same session_id).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply

__all__ = ["StageHandler"]


@runtime_checkable
class StageHandler(Protocol):
    async def on_connect(self, peer: PeerInfo) -> Reply:
        """Before the greeting. A positive reply's text is ignored (the edge sends its banner);
        a refusal is sent instead of the greeting and the connection is closed."""
        ...

    async def on_helo(self, peer: PeerInfo, helo: str) -> Reply:
        """HELO/EHLO with the name as given (`peer.helo` already holds it)."""
        ...

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        """MAIL FROM. `envelope.sender` is the parsed reverse-path (None for `<>`); the MAIL
        parameters (BODY, SIZE, SMTPUTF8) are already on the envelope. No recipients yet."""
        ...

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        """RCPT TO for one recipient. `envelope.recipients` holds those accepted so far; the edge
        adds `rcpt` only when the reply is positive."""
        ...

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        """End of DATA with the whole, dot-unstuffed message. A 250 is a promise: return it only
        after the message is durably stored."""
        ...

    async def on_reset(self, peer: PeerInfo) -> None:
        """RSET, a new HELO/EHLO, or a finished transaction: forget transaction state."""
        ...

    async def on_disconnect(self, peer: PeerInfo) -> None:
        """The connection is gone: forget session state."""
        ...
