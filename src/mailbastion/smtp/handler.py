"""The seam between the protocol engine and a role: the engine speaks protocol, a handler decides.

The engine (`smtp/session.py`) parses commands, enforces protocol limits and builds values
(`PeerInfo`, `Envelope`, `SpooledMessage`). At each stage it asks its handler and sends back the
`Reply` it gets. A handler never writes to the socket and never changes protocol state; the engine
never decides policy. Three roles implement it: the MX gateway (`gateway/handler.py`), the MDA's LMTP
server (`mailbox/lmtp_handler.py`) and, later, submission.

    SessionHandler       what every role answers (connect, HELO, AUTH, MAIL, RCPT, reset, disconnect)
    ├─ StageHandler      SMTP/ESMTP: `on_data` returns one Reply for the message
    └─ LmtpStageHandler  LMTP (RFC 2033 §4.2): `on_lmtp_data` returns one Reply per accepted recipient
    BaseHandler          the defaults a role inherits when it has nothing to say at a stage

Contract for every `on_*` method:

- It returns a `Reply`. A positive reply (2xx/3xx) lets the stage proceed; anything else refuses it
  (the engine sends the reply and, for 421, closes the connection).
- It should not raise. If it does, the engine logs the traceback and answers 451 4.3.0: the client
  never sees a traceback.
- `peer.session_id` identifies the connection across calls; a handler that keeps per-session state
  keys it by that id and drops it in `on_disconnect`.

Order of calls for one connection: on_connect, then any number of (on_helo | on_auth | on_reset |
transactions), then on_disconnect exactly once (also after a refused connect). A transaction is
on_mail, one or more on_rcpt, then at most one data call. XCLIENT and PROXY change the peer; the
engine then calls on_connect again with the new `PeerInfo` (same session_id).

What the engine offers is partly the handler's to say: `auth_mechanisms` (empty: AUTH is never
offered nor accepted, as on the MX gateway; otherwise offered only under TLS) and `extensions(peer)`
(EHLO/LHLO keywords of the role, each with the MAIL parameters it enables; a parameter is accepted
only in a session whose EHLO advertised its keyword, else 555 5.5.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply

__all__ = ["BaseHandler", "LmtpStageHandler", "SessionHandler", "StageHandler"]


@runtime_checkable
class SessionHandler(Protocol):
    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """SASL mechanisms the role accepts ("PLAIN", "LOGIN"); () = AUTH never offered."""
        ...

    def extensions(self, peer: PeerInfo) -> Mapping[str, frozenset[str]]:
        """Extra EHLO/LHLO keywords for this peer, each with the MAIL parameters it enables."""
        ...

    async def on_connect(self, peer: PeerInfo) -> Reply:
        """Before the greeting. A positive reply's text is ignored (the engine sends its banner);
        a refusal is sent instead of the greeting and the connection is closed."""
        ...

    async def on_helo(self, peer: PeerInfo, helo: str) -> Reply:
        """HELO/EHLO/LHLO with the name as given (`peer.helo` already holds it)."""
        ...

    async def on_auth(self, peer: PeerInfo, mechanism: str, authzid: str, authcid: str, password: str) -> Reply:
        """SASL credentials, decoded (RFC 4954, RFC 4616). Called only under TLS, outside a
        transaction, once the exchange is complete. 235 authenticates the session as `authzid` (or
        `authcid` when no authorisation identity was given); 535 5.7.8 refuses. The engine never
        logs the exchange; the handler must not log the password either."""
        ...

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        """MAIL FROM. `envelope.sender` is the parsed reverse-path (None for `<>`); the MAIL
        parameters (BODY, SIZE, SMTPUTF8, RET, ENVID, REQUIRETLS, a role's own) are already on the
        envelope, and all of them as given in `mail_params`. No recipients yet."""
        ...

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        """RCPT TO for one recipient. `envelope.recipients` holds those accepted so far; the engine
        adds `rcpt` (with its NOTIFY/ORCPT) only when the reply is positive. `rcpt` may be the
        domain-less `<Postmaster>` (`rcpt.is_bare_postmaster`): the role decides whose it is."""
        ...

    async def on_reset(self, peer: PeerInfo) -> None:
        """RSET, a new HELO/EHLO, STARTTLS, or a finished or failed transaction: forget transaction state."""
        ...

    async def on_disconnect(self, peer: PeerInfo) -> None:
        """The connection is gone: forget session state."""
        ...


@runtime_checkable
class StageHandler(SessionHandler, Protocol):
    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        """End of DATA (or BDAT LAST) with the whole, dot-unstuffed message. A 250 is a promise:
        return it only after the message is durably stored."""
        ...


@runtime_checkable
class LmtpStageHandler(SessionHandler, Protocol):
    async def on_lmtp_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Sequence[Reply]:
        """End of DATA (or BDAT LAST) in LMTP: one reply per accepted recipient, in RCPT order
        (RFC 2033 §4.2). A list of another length is a bug: the engine answers 451 4.3.0 for the
        recipients it lacks and logs it."""
        ...


class BaseHandler:
    """The protocol's defaults: no AUTH, no extensions, every stage accepted, nothing to forget.
    A role inherits it and overrides the stages it decides."""

    auth_mechanisms: tuple[str, ...] = ()

    def extensions(self, peer: PeerInfo) -> Mapping[str, frozenset[str]]:
        return {}

    async def on_connect(self, peer: PeerInfo) -> Reply:
        return replies.OK

    async def on_helo(self, peer: PeerInfo, helo: str) -> Reply:
        return replies.OK

    async def on_auth(self, peer: PeerInfo, mechanism: str, authzid: str, authcid: str, password: str) -> Reply:
        return replies.NOT_IMPLEMENTED

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        return replies.SENDER_OK

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        return replies.RECIPIENT_OK

    async def on_reset(self, peer: PeerInfo) -> None:
        return None

    async def on_disconnect(self, peer: PeerInfo) -> None:
        return None
