"""A message as received: the exact bytes, with a parsed view made on demand."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from functools import cached_property

from mailbastion.core.header_block import HeaderBlock


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
    def header(self) -> HeaderBlock:
        """The header section, split by the one parser every part uses (core/header_block.py)."""
        return HeaderBlock.parse(self.raw)

    @property
    def header_block(self) -> bytes:
        """The raw bytes of the header section, without the empty line that ends it."""
        return self.header.header_bytes

    @property
    def body_bytes(self) -> bytes:
        return self.header.body_bytes
