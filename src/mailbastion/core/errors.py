"""The one exception tree of mailbastion. Each error knows the reply it becomes.

    MailError
    ├─ TemporaryFailure        → 4xx
    │   ├─ EngineUnavailable   a scanner is down, too slow or answers nonsense
    │   ├─ LookupTimeout       a DNS lookup timed out or failed temporarily
    │   └─ SpoolFull           the spool cannot take the message now
    └─ PermanentFailure        → 5xx
        ├─ PolicyRejection     a policy refused the message
        ├─ MessageTooLarge     over the size limit
        └─ MalformedAddress    an address that does not parse
    ConfigError                → refuse to start (not a MailError: no SMTP peer sees it)
"""

from __future__ import annotations

from mailbastion.core import replies
from mailbastion.core.replies import Reply


class MailError(Exception):
    reply: Reply = replies.TEMP_FAILURE

    def __init__(self, message: str = "", *, reply: Reply | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if reply is not None:
            self.reply = reply


class TemporaryFailure(MailError):
    reply = replies.TEMP_FAILURE


class EngineUnavailable(TemporaryFailure):
    reply = replies.SCAN_UNAVAILABLE


class LookupTimeout(TemporaryFailure):
    reply = replies.TEMP_LOOKUP_FAILURE


class SpoolFull(TemporaryFailure):
    reply = replies.INSUFFICIENT_STORAGE


class PermanentFailure(MailError):
    reply = replies.TRANSACTION_FAILED


class PolicyRejection(PermanentFailure):
    reply = replies.REJECTED


class MessageTooLarge(PermanentFailure):
    reply = replies.MESSAGE_TOO_LARGE


class MalformedAddress(PermanentFailure):
    reply = replies.PARAM_SYNTAX


class ConfigError(Exception):
    """A configuration that must not start: names the file, the key and what is allowed."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key
