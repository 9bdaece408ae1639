"""A message as received: the exact bytes, with a parsed view made on demand."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from functools import cached_property


@dataclass(eq=False)
class SpooledMessage:
    """The raw message bytes (CRLF or LF line ends as received, dot-unstuffed) and lazily parsed views.

    `raw` never changes; checks that want to change the message return `Edit`s instead.
    """

    raw: bytes
    path: str | None = None  # where it lives on disk, once spooled
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def parsed(self) -> EmailMessage:
        msg = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(msg, EmailMessage)
        return msg

    @cached_property
    def headers(self) -> EmailMessage:
        """Headers only (cheap): the body is not parsed."""
        msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.raw)
        return msg  # type: ignore[return-value]

    @cached_property
    def header_block(self) -> bytes:
        """The raw bytes of the header section, without the blank line."""
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = self.raw.find(sep)
            if idx >= 0:
                return self.raw[:idx]
        return self.raw

    @cached_property
    def body_bytes(self) -> bytes:
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = self.raw.find(sep)
            if idx >= 0:
                return self.raw[idx + len(sep) :]
        return b""
