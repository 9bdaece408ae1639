"""Multiparts nested a thousand deep (14 KB of headers and boundaries) made the MIME parsers recurse past Python's
limit: the anti-virus stage failed (a 4xx, retried for days) and the spam stage read nothing. And a text wrapped in
40 nested multiparts was never read by the spam stage, whose part budget counted the containers. Found in issue 8
item 11's eighth pass."""

from __future__ import annotations

from mailbastion.core.message import SpooledMessage
from mailbastion.core.mime_parts import NestingTooDeep, parse_message
from mailbastion.engines.base import FindingKind
from mailbastion.engines.mime_walk import build_subject
from mailbastion.spam.features import extract

TEXT = "Dear friend, you have been selected to receive a FREE gift card. Click here now."


def nested(depth: int) -> bytes:
    head = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth))
    tail = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    return (f"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n{head}Content-Type: text/plain\r\n\r\n"
            f"{TEXT}{tail}").encode()


def test_a_tree_too_deep_to_parse_is_one_opaque_body_and_a_limit() -> None:
    raw = nested(3000)
    tree = parse_message(raw)  # raised RecursionError
    assert any(isinstance(d, NestingTooDeep) for d in tree.defects)
    assert tree.get_content_type() == "application/octet-stream" and tree["Subject"] == "x"
    message = SpooledMessage(raw)
    assert any(n.kind == "limit" and "nesting too deep" in n.name for n in message.mime_notes)
    assert any(TEXT.encode() in p.data for p in message.parts)  # the bytes are still there to scan
    subject = build_subject(message)
    assert any(f.kind is FindingKind.ARCHIVE_LIMIT for f in subject.notes)  # refused, not a failed stage


def test_the_spam_stage_reads_a_text_under_a_hundred_containers() -> None:
    for depth in (1, 45, 100, 500):
        feats = extract(SpooledMessage(nested(depth)))
        assert TEXT in feats.text, depth
