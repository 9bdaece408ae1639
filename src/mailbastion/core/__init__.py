"""The vocabulary of mailbastion: values and protocols, no I/O; beside them a few asyncio helpers every layer
may use (tasks.py, threads.py, child.py: stopping a task, blocking calls on threads, a child process run for an
answer). Imports nothing else of ours."""

from mailbastion.core.address import Address, AddressError, parse_address, parse_path
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import (
    ConfigError,
    EngineUnavailable,
    LookupTimeout,
    MailError,
    MalformedAddress,
    MessageTooLarge,
    PermanentFailure,
    PolicyRejection,
    SpoolFull,
    TemporaryFailure,
)
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo, TlsInfo
from mailbastion.core.replies import Reply
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import (
    Action,
    CheckResult,
    Edit,
    Forced,
    ScoredSymbol,
    Symbol,
    Verdict,
)

__all__ = [
    "Action",
    "Address",
    "AddressError",
    "CheckResult",
    "ConfigError",
    "Edit",
    "EngineUnavailable",
    "Envelope",
    "Forced",
    "LookupTimeout",
    "MailError",
    "MalformedAddress",
    "MessageTooLarge",
    "PeerInfo",
    "PermanentFailure",
    "PolicyRejection",
    "Reply",
    "ScoredSymbol",
    "SpoolFull",
    "SpooledMessage",
    "Stage",
    "Symbol",
    "TemporaryFailure",
    "TlsInfo",
    "Verdict",
    "parse_address",
    "parse_path",
]
