"""The bytes a client sent and the session has not consumed yet, and what the session waits for.

One `bytearray` per connection. `feed()` (from `data_received`) appends and says whether what the
session waits for is now there, so the session's task wakes once per complete command batch, DATA
section or BDAT chunk, not once per read. Everything here is synchronous and bounded:

    LINE        a command line (up to CRLF); a line longer than `line_limit` wakes too (refused)
    DATA_END    `<CRLF>.<CRLF>` (RFC 5321 §4.1.1.4); past `data_limit` the content is dropped as it
                arrives (only the count is kept) while the terminator is still looked for
    BYTES       `need` octets are buffered (a BDAT chunk, RFC 3030 §2)
    SKIP        `need` octets were dropped (a refused BDAT chunk still has to be read)
    DISCARD     the rest of an over-long line was dropped, up to its CRLF
    ANY         any byte (PROXY header, the pause before the greeting)
"""

from __future__ import annotations

from enum import Enum

__all__ = ["InputBuffer", "Want"]

_TERMINATOR = b"\r\n.\r\n"


class Want(Enum):
    NOTHING = 0
    ANY = 1
    LINE = 2
    DATA_END = 3
    BYTES = 4
    SKIP = 5
    DISCARD = 6


class InputBuffer:
    """Unconsumed input of one connection. Not thread-safe; one event loop drives it."""

    __slots__ = ("_at_start", "_scan", "buf", "data_limit", "dropped", "line_limit", "need", "want")

    def __init__(self, line_limit: int) -> None:
        self.buf = bytearray()
        self.want = Want.NOTHING
        self.line_limit = line_limit  # octets of a command line, CRLF included
        self.data_limit = 0
        self.need = 0
        self.dropped = 0  # octets of the current DATA section dropped for size
        self._scan = 0
        self._at_start = False

    def __len__(self) -> int:
        return len(self.buf)

    def feed(self, data: bytes) -> bool:
        """Append `data`; True when what the session waits for is complete."""
        want = self.want
        if want is Want.SKIP:
            return self._skip(data)
        if want is Want.DISCARD:
            return self._discard(data)
        old = len(self.buf)
        self.buf += data
        if want is Want.LINE:
            return self.buf.find(b"\r\n", max(old - 1, 0)) >= 0 or len(self.buf) > self.line_limit
        if want is Want.DATA_END:
            return self._data_ready()
        if want is Want.BYTES:
            return len(self.buf) >= self.need
        return want is Want.ANY

    def ready(self) -> bool:
        """Whether what the session waits for is complete now."""
        want = self.want
        if want is Want.LINE:
            return self.buf.find(b"\r\n") >= 0 or len(self.buf) > self.line_limit
        if want is Want.DATA_END:
            return (self._at_start and self.buf[:3] == b".\r\n") or self.buf.find(_TERMINATOR, self._scan) >= 0
        if want is Want.BYTES:
            return len(self.buf) >= self.need
        if want is Want.ANY:
            return len(self.buf) > 0
        return want is Want.NOTHING

    def start_line(self) -> bool:
        """Wait for a command line (or for a line that is too long)."""
        self.want = Want.LINE
        return self.ready()

    def start_more(self) -> bool:
        """Wait for any further byte (what is buffered is not enough: a partial PROXY header)."""
        self.want = Want.ANY
        return False

    def start_any(self) -> bool:
        """Wait for any byte at all (the pause before the greeting)."""
        self.want = Want.ANY
        return len(self.buf) > 0

    def clear(self) -> int:
        """Drop everything buffered (RFC 3207 §4.2 after STARTTLS); returns how many octets."""
        n = len(self.buf)
        self.buf.clear()
        return n

    # -- command lines -----------------------------------------------------------------------------

    def take_line(self) -> bytes | None:
        """The next complete line without its CRLF, or None."""
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(buf[:end])
        del buf[: end + 2]
        return line

    @property
    def line_overflow(self) -> bool:
        """No CRLF within `line_limit` octets: the line is refused."""
        return len(self.buf) > self.line_limit and self.buf.find(b"\r\n", 0, self.line_limit + 1) < 0

    def start_discard(self) -> bool:
        """Drop the over-long line in the buffer up to its CRLF; True when that CRLF is already here."""
        self.want = Want.DISCARD
        data = bytes(self.buf)
        self.buf.clear()
        return self._discard(data)

    def _discard(self, data: bytes) -> bool:
        # A CR at the end of the previous read may pair with an LF at the start of this one.
        if self.need and data[:1] == b"\n":
            self.need = 0
            self.buf += data[1:]
            self.want = Want.NOTHING
            return True
        end = data.find(b"\r\n")
        if end < 0:
            self.need = 1 if data[-1:] == b"\r" else 0
            return False
        self.need = 0
        self.buf += data[end + 2:]
        self.want = Want.NOTHING
        return True

    # -- DATA --------------------------------------------------------------------------------------

    def start_data(self, limit: int) -> bool:
        """Wait for the end of DATA. Content beyond `limit` octets is dropped as it arrives."""
        self.want = Want.DATA_END
        self.data_limit = limit
        self.dropped = 0
        self._scan = 0
        self._at_start = True
        return self._data_ready()

    def _data_ready(self) -> bool:
        buf = self.buf
        if self._at_start and buf[:3] == b".\r\n":
            return True
        if buf.find(_TERMINATOR, self._scan) >= 0:
            return True
        size = len(buf)
        if size > self.data_limit + len(_TERMINATOR):
            # Too big: keep only what may be the start of the terminator; count the rest.
            self.dropped += size - 4
            del buf[: size - 4]
            self._at_start = False
            size = 4
        self._scan = max(size - 4, 0)
        return False

    def take_data(self) -> tuple[bytes | None, int] | None:
        """(content up to and including the CRLF before the terminating dot, octets read), or None
        when the terminator has not arrived. Content is None when some of it was dropped for size."""
        buf = self.buf
        if self._at_start and buf[:3] == b".\r\n":
            end, used = 0, 3
        else:
            found = buf.find(_TERMINATOR, self._scan)
            if found < 0:
                return None
            end, used = found + 2, found + 5
        content = None if self.dropped else bytes(buf[:end])
        read = self.dropped + used
        del buf[:used]
        self.want = Want.NOTHING
        self.dropped = 0
        return content, read

    # -- BDAT --------------------------------------------------------------------------------------

    def start_bytes(self, count: int) -> bool:
        self.want = Want.BYTES
        self.need = count
        return len(self.buf) >= count

    def take_bytes(self, count: int) -> bytes:
        chunk = bytes(self.buf[:count])
        del self.buf[:count]
        self.want = Want.NOTHING
        return chunk

    def start_skip(self, count: int) -> bool:
        """Drop the next `count` octets, buffered or still to come; True when done."""
        self.want = Want.SKIP
        self.need = count
        data = bytes(self.buf)
        self.buf.clear()
        return self._skip(data)

    def _skip(self, data: bytes) -> bool:
        if len(data) < self.need:
            self.need -= len(data)
            return False
        self.buf += data[self.need:]
        self.need = 0
        self.want = Want.NOTHING
        return True
