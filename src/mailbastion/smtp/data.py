"""Reading the DATA section, with SMTP smuggling refused.

Decision (SMTP smuggling, CVE-2023-51764/51765/51766): the end of data is recognised only as
`<CRLF>.<CRLF>` (RFC 5321 §4.1.1.4), and a message that holds a bare CR or a bare LF anywhere is
*refused* with 554 5.6.11 (`replies.BARE_LINEFEED`), after reading up to the real terminator.

Why refuse rather than normalise: RFC 5321 §2.3.8 forbids any other line terminator, so no
conforming client is hurt; a normalised message would still carry a sequence that a *next* hop may
read as end-of-data if any later component re-introduces it; refusing leaves no message for anybody
to reinterpret, and it is what Postfix's `smtpd_forbid_bare_newline = reject` does. Because the
reader only ever stops at `<CRLF>.<CRLF>`, bytes such as `\\n.\\n MAIL FROM:...` stay inside the
(refused) message and can never be executed as a second transaction.

Every other problem (a line over the limit, more bytes than the size limit) is also reported only
after the terminator, so the protocol stays in step with the client (RFC 5321 §4.2.5).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from mailbastion.core import replies
from mailbastion.core.replies import Reply

__all__ = ["DataProblem", "DataResult", "read_data"]

_CRLF = b"\r\n"
_END = b".\r\n"


class DataProblem(Enum):
    BARE_NEWLINE = "bare_newline"
    LINE_TOO_LONG = "line_too_long"
    TOO_BIG = "too_big"

    @property
    def reply(self) -> Reply:
        return _REPLIES[self]


_REPLIES = {
    DataProblem.BARE_NEWLINE: replies.BARE_LINEFEED,
    DataProblem.LINE_TOO_LONG: replies.DATA_LINE_TOO_LONG,
    DataProblem.TOO_BIG: replies.MESSAGE_TOO_LARGE,
}


@dataclass(frozen=True, slots=True)
class DataResult:
    content: bytes  # dot-unstuffed, CRLF line ends; empty when `problem` is set
    problem: DataProblem | None
    size: int  # octets received on the wire (before unstuffing), for the log


def _has_bare_newline(chunk: bytes) -> bool:
    return b"\r" in chunk or b"\n" in chunk


async def read_data(reader: asyncio.StreamReader, *, max_size: int, max_line: int) -> DataResult:
    """Read until `<CRLF>.<CRLF>` and return the unstuffed content or the first problem seen.

    `max_line` counts the CRLF (RFC 5321 §4.5.3.1.6: 1000 octets). Raises asyncio.IncompleteReadError
    when the client goes away before the terminator. Memory stays bounded by `max_size` plus the
    reader's own limit whatever the client sends.
    """
    buf = bytearray()
    problem: DataProblem | None = None
    received = 0
    at_line_start = True  # False while draining the tail of an over-long line
    while True:
        try:
            line = await reader.readuntil(_CRLF)
        except asyncio.LimitOverrunError as exc:
            # The line does not fit the buffer: take what is there, keep reading the same line.
            chunk = await reader.read(exc.consumed)
            received += len(chunk)
            if problem is None:
                problem = DataProblem.BARE_NEWLINE if _has_bare_newline(chunk) else DataProblem.LINE_TOO_LONG
            buf.clear()
            at_line_start = False
            continue
        received += len(line)
        if not at_line_start:
            at_line_start = True  # the tail of an over-long line; never a terminator
            if problem is None and _has_bare_newline(line[:-2]):
                problem = DataProblem.BARE_NEWLINE
            continue
        if line == _END:
            break
        if problem is not None:
            continue  # drain to the terminator; nothing is kept
        if len(line) > max_line:
            problem = DataProblem.LINE_TOO_LONG
        elif _has_bare_newline(line[:-2]):
            # RFC 5321 §2.3.8: CR and LF only ever appear together, as CRLF.
            problem = DataProblem.BARE_NEWLINE
        elif received > max_size:
            problem = DataProblem.TOO_BIG
        if problem is not None:
            buf.clear()
            continue
        # RFC 5321 §4.5.2: a leading dot was doubled by the client (transparency).
        if line[:1] == b".":
            buf += memoryview(line)[1:]
        else:
            buf += line
    if problem is not None:
        return DataResult(b"", problem, received)
    return DataResult(bytes(buf), None, received)
