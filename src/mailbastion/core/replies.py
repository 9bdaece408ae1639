"""SMTP replies as values, from one catalogue. Handlers return these, never raw strings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str  # enhanced status code (RFC 3463), "" when none applies (greeting, 221)
    text: str

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.status, text)

    def __str__(self) -> str:
        # Multi-line replies: every line but the last uses "NNN-".
        lines = self.text.splitlines() or [""]
        prefix = f"{self.status} " if self.status else ""
        out = [f"{self.code}-{prefix}{line}" for line in lines[:-1]]
        out.append(f"{self.code} {prefix}{lines[-1]}")
        return "\r\n".join(out)


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
CLOSING = Reply(221, "2.0.0", "Bye")


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def quarantined(queue_id: str) -> Reply:
    # Accepted and held: the sender must not retry, the administrator decides.
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


# 4xx: try again later
SERVICE_UNAVAILABLE = Reply(421, "4.3.2", "Service not available, closing connection")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Server shutting down, try again later")
TEMP_FAILURE = Reply(451, "4.3.0", "Temporary failure, please try again later")
SCAN_UNAVAILABLE = Reply(451, "4.7.0", "Message could not be scanned, try again later")
SIGNATURES_STALE = Reply(451, "4.7.0", "Anti-virus signatures out of date, try again later")
TEMP_LOOKUP_FAILURE = Reply(451, "4.4.3", "Temporary DNS failure, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")
MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full")
RATE_LIMITED = Reply(450, "4.7.1", "Rate limit exceeded, try again later")
GREYLISTED = Reply(451, "4.7.1", "Greylisted, please try again later")
SOFT_REJECT = Reply(451, "4.7.1", "Message deferred by policy, try again later")

# 5xx: refused
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error, command unrecognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
PARAM_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_HELO = Reply(501, "5.5.4", "Invalid HELO/EHLO hostname")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
ENCRYPTION_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
UNKNOWN_USER = Reply(550, "5.1.1", "Recipient address rejected: user unknown")


def user_left(successor: str) -> Reply:
    """A leaver's address, refused at RCPT naming who took over ([lifecycle] leaver_policy)."""
    return Reply(550, "5.1.1", f"Recipient address rejected: this person has left; please write to <{successor}>")


SENDER_REJECTED = Reply(550, "5.7.1", "Sender address rejected")
HEADER_TOO_LARGE = Reply(552, "5.3.4", "Message header section too large")
MESSAGE_TOO_LARGE = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
REJECTED = Reply(550, "5.7.1", "Message rejected by policy")
SPAM_REJECTED = Reply(550, "5.7.1", "Message rejected as spam")
VIRUS_FOUND = Reply(550, "5.7.1", "Message rejected: malware detected")
BLOCKED_ATTACHMENT = Reply(550, "5.7.1", "Message rejected: attachment type not allowed")
MACRO_ATTACHMENT = Reply(550, "5.7.1", "Message rejected: document with macros not allowed")
ACTIVE_PDF = Reply(550, "5.7.1", "Message rejected: PDF with active content not allowed")
ENCRYPTED_ATTACHMENT = Reply(550, "5.7.1", "Message rejected: encrypted attachment cannot be scanned")
ARCHIVE_LIMIT = Reply(552, "5.3.4", "Message rejected: archive exceeds scanning limits")
UNSCANNABLE_ATTACHMENT = Reply(550, "5.7.1", "Message rejected: attachment cannot be scanned")
MIME_MALFORMED = Reply(550, "5.6.0", "Message rejected: ambiguous MIME structure")
DMARC_REJECT = Reply(550, "5.7.1", "Message rejected per DMARC policy of the sender's domain")
HEADER_INVALID = Reply(550, "5.6.0", "Message rejected: malformed headers")
LOOP_DETECTED = Reply(554, "5.4.6", "Mail loop detected: too many hops")
TRANSACTION_FAILED = Reply(554, "5.5.0", "Transaction failed")
BARE_LINEFEED = Reply(554, "5.6.11", "Bare CR or LF in message data refused (RFC 5321 section 2.3.8)")
EIGHTBIT_WITHOUT_8BITMIME = Reply(554, "5.6.1", "8-bit data without BODY=8BITMIME")

# Added for the SMTP edge (smtp/); additive only.
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
START_MAIL_INPUT = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
HELP = Reply(214, "2.0.0", "See RFC 5321")
CANNOT_VRFY = Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available")
TOO_MANY_TRANSACTIONS = Reply(421, "4.7.0", "Too many transactions on this connection, closing")
DATA_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long in message data (RFC 5321 section 4.5.3.1.6)")
BARE_NEWLINE_IN_COMMAND = Reply(500, "5.5.2", "Bare CR or LF in command line refused (RFC 5321 section 2.3.8)")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
NESTED_MAIL = Reply(503, "5.5.1", "Sender already specified")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
NEED_HELO = Reply(503, "5.5.1", "Send HELO/EHLO first")
PARAM_NOT_RECOGNIZED = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented")
XCLIENT_DENIED = Reply(550, "5.7.0", "XCLIENT not allowed from this address")
FROM_INVALID = Reply(550, "5.7.1", "Message rejected: the From header must hold exactly one unambiguous address")
DMARC_TEMPFAIL = Reply(451, "4.7.5", "DMARC policy of the sender's domain could not be checked, try again later")

# LMTP (RFC 2033): one reply per recipient after DATA
DELIVERED = Reply(250, "2.0.0", "Ok: delivered")

# Added for the protocol engine (smtp/session.py, smtp/transaction.py, smtp/sasl.py); additive only.
# Postfix's answer (smtpd_forbid_unauth_pipelining) to a client that talks before the greeting or sends
# commands ahead of their replies without PIPELINING (RFC 5321 §4.3.1, RFC 2920 §3.1); the session ends.
PROTOCOL_SYNC = Reply(554, "5.5.0", "Error: SMTP protocol synchronization")
NUL_IN_COMMAND = Reply(500, "5.5.2", "NUL character in command line refused")
NUL_IN_DATA = Reply(554, "5.6.0", "NUL character in message data refused")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
DATA_AFTER_BDAT = Reply(503, "5.5.1", "DATA not allowed after BDAT in the same transaction (RFC 3030)")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
AUTH_BAD_RESPONSE = Reply(501, "5.5.2", "Cannot decode response")
AUTH_UNKNOWN_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_NEEDS_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_ALREADY = Reply(503, "5.5.1", "Already authenticated")
AUTH_TEMP_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")


def chunk_received(octets: int) -> Reply:
    """The reply to a BDAT chunk that is not the last one (RFC 3030 §2)."""
    return Reply(250, "2.0.0", f"{octets} octets received")
