"""core/mime_tree.py builds the compat32 parser's very tree for well-formed mail, or steps aside (None).

Every tree it builds is compared with `email.message_from_bytes(raw, policy=compat32)` attribute by
attribute (headers, unixfrom, payload strings, preambles, epilogues, defects, default types): on generated
messages that walk the edges of the feed parser (boundaries inside parts, whitespace after boundaries,
lines that start like a boundary, missing blank lines, nested multiparts, LF and CRLF), on hand-written
malformed shapes, and on every message of ../shared/corpora when it is there.
"""

from __future__ import annotations

import email
import email.policy
from email.message import Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailbastion.core.mime_parts  # noqa: F401 - installs the boundary matcher the parser uses in production
from mailbastion.core.mime_parts import decode_parts, parse_message
from mailbastion.core.mime_tree import parse_well_formed
from mailbastion.testing.corpora import corpora_dir

def _stdlib(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _difference(a: Message, b: Message, where: str = "1") -> str | None:
    """Where two trees differ, or None: every attribute of every node, payloads recursively."""
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} != {type(b).__name__}"
    va, vb = dict(vars(a)), dict(vars(b))
    pa, pb = va.pop("_payload"), vb.pop("_payload")
    va["defects"], vb["defects"] = [repr(d) for d in va["defects"]], [repr(d) for d in vb["defects"]]
    for key in sorted(set(va) | set(vb)):
        if va.get(key) != vb.get(key):
            return f"{where}: {key}: {va.get(key)!r:.120} != {vb.get(key)!r:.120}"
    if isinstance(pa, list) and isinstance(pb, list):
        if len(pa) != len(pb):
            return f"{where}: {len(pa)} parts != {len(pb)}"
        for i, (x, y) in enumerate(zip(pa, pb, strict=True), 1):
            if (found := _difference(x, y, f"{where}.{i}")) is not None:
                return found
        return None
    return None if pa == pb else f"{where}: payload {pa!r:.120} != {pb!r:.120}"


def _check(raw: bytes) -> Message | None:
    tree = parse_well_formed(raw)
    if tree is not None:
        assert _difference(tree, _stdlib(raw)) is None, _difference(tree, _stdlib(raw))
    return tree


def _mail(body: str, nl: str = "\r\n", ctype: str = 'multipart/mixed; boundary="b1"', extra: str = "") -> bytes:
    head = f"From: a@example.net{nl}To: b@example.org{nl}Subject: test{nl}MIME-Version: 1.0{nl}" \
           f"Content-Type: {ctype}{nl}{extra}{nl}"
    return (head + body.replace("\n", nl)).encode("utf-8", "surrogateescape")


WELL_FORMED = _mail(
    "preamble line\n--b1\nContent-Type: multipart/alternative; boundary=\"b2\"\n\n--b2\n"
    "Content-Type: text/plain; charset=utf-8\n\nhello -- not a boundary\n--b1x is not one either\n"
    "--b2\nContent-Type: text/html\n\n<p>hi</p>\n--b2--\n\n--b1\nContent-Type: application/pdf; name=a.pdf\n"
    "Content-Transfer-Encoding: base64\nContent-Disposition: attachment;\n filename=\"a.pdf\"\n\n"
    "JVBERi0xLjQK\n--b1--\nepilogue\n")


@pytest.mark.parametrize("nl", ["\r\n", "\n"])
def test_well_formed_mail_is_built_and_equals_the_stdlib_tree(nl: str) -> None:
    raw = WELL_FORMED if nl == "\r\n" else WELL_FORMED.replace(b"\r\n", b"\n")
    tree = _check(raw)
    assert tree is not None
    assert [p.get_content_type() for p in tree.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    assert tree.preamble == "preamble line" and tree.epilogue == f"epilogue{nl}"


def test_parse_message_gives_the_stdlib_tree_either_way() -> None:
    broken = _mail("--b1\nContent-Type: text/plain\n\nno closing boundary\n")
    assert parse_well_formed(broken) is None
    for raw in (WELL_FORMED, broken):
        assert _difference(parse_message(raw), _stdlib(raw)) is None
    # and the decoded parts the checks read are the same as the stdlib tree's
    assert decode_parts(parse_message(WELL_FORMED)) == decode_parts(_stdlib(WELL_FORMED))


@pytest.mark.parametrize("raw", [
    _mail("--b1\nContent-Type: text/plain\n\nno closing boundary\n"),          # CloseBoundaryNotFound
    _mail("no boundary at all\n"),                                                # StartBoundaryNotFound
    _mail("--b1--\n"),                                                            # closed before any part
    _mail("--b1\n--b1\nContent-Type: text/plain\n\nx\n--b1--\n"),                 # two boundaries in a row
    _mail("--b1\nContent-Type: text/plain\nx\n--b1--\n"),                         # no blank line in a part
    _mail("--b1\nContent-Type: text/plain\n--b1--\n"),                            # headers up to the boundary
    _mail("x\n", ctype="multipart/mixed"),                                        # no boundary parameter
    _mail("--b1\n\nx\n--b1--\n", extra="Content-Transfer-Encoding: base64\n"),    # encoded multipart
    _mail("--b1\nContent-Type: message/rfc822\n\nFrom: x@y\n\nhi\n--b1--\n"),     # an attached message
    _mail("--b1\n\nx\n--b1--\n", ctype='multipart/digest; boundary="b1"'),       # digest defaults
    _mail("body\n", ctype="text/plain", extra=" continued first\n").replace(b"From:", b" From:", 1),
    b"From: a@example.net\r\nnot a header\r\n\r\nbody\r\n",                     # missing separator
    b"From: a@example.net\r\nSubject: bare\rCR\r\n\r\nbody\r\n",                  # a bare CR
    b"From: a@example.net\r\nSubject: x\r\n\r\nform\x0cfeed\r\n",                 # a break splitlines knows
    b"Subject: x\r\nFrom someone else\r\n\r\nbody\r\n",                           # a misplaced From line
    b"Subject: only headers\r\n",                                                 # no body
    _mail("--b1\nContent-Type: multipart/alternative; boundary=\"b2\"\n\n--b2\n\nx\n--b1--\n"),  # inner unclosed
])
def test_what_the_parser_would_flag_or_read_otherwise_falls_back(raw: bytes) -> None:
    assert parse_well_formed(raw) is None
    assert _difference(parse_message(raw), _stdlib(raw)) is None


def test_a_boundary_line_of_both_the_inner_and_the_outer_multipart_falls_back() -> None:
    # "--A--" closes the outer "A" and opens the inner "A--": the parser tests the outer one first.
    raw = _mail('--A\nContent-Type: multipart/mixed; boundary="A--"\n\n--A--\n\nx\n--A----\n--A--\n',
                ctype='multipart/mixed; boundary="A"')
    assert parse_well_formed(raw) is None


# -- generated messages ------------------------------------------------------------------------------

_BOUNDARIES = st.sampled_from(["b1", "b2", "=_x", "b1--", "b", "a b", "----=_Part_1", "b1x"])
def _rarely(draw: st.DrawFn) -> bool:
    """True one time in eight: most generated mail is well formed, so that the built path is exercised."""
    return draw(st.integers(0, 7)) == 0


_PLAIN = ["hello", "", "-- ", "--", "---b1", " --b1", "--b1x", "--bx", "=?utf-8?q?x?=", "caf\udce9", "a\tb",
          "line with: colon", "From me", "--b1-- trailing", "--b1--x"]
_TRICKY = ["--b1", "--b1--", "--b1 ", "--b1--  ", "--b1\t", "--b2", "--b2--", "--b", "--=_x", "--a b", "--b1----",
           "------=_Part_1", "Subject: not a header here"]


@st.composite
def _line(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(_TRICKY if _rarely(draw) else _PLAIN))


_TEXT = _line()
_GOOD_HEADERS = ["X-A: 1", "X-B:  spaced", "X-C:", "Subject: s", "Content-Disposition: attachment",
                 "Content-Type: text/html", "Content-Type: text/plain; charset=utf-8"]
_BAD_HEADERS = [" folded", "\tfolded tab", "From a@b", "bad header", ":nameless", "Content-Transfer-Encoding: base64",
                "Content-Type: message/rfc822"]


@st.composite
def _headers(draw: st.DrawFn) -> list[str]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        out.append(draw(st.sampled_from(_BAD_HEADERS if _rarely(draw) else _GOOD_HEADERS)))
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from([" folded", "\tfolded tab"])))
    return out


@st.composite
def _entity(draw: st.DrawFn, depth: int = 0) -> list[str]:
    headers = draw(_headers())
    if depth == 0 and not _rarely(draw) or 0 < depth < 3 and draw(st.booleans()):  # mostly a multipart on top
        boundary = draw(_BOUNDARIES)
        kind = "digest" if _rarely(draw) else draw(st.sampled_from(["mixed", "alternative", "related"]))
        out = [*headers, f'Content-Type: multipart/{kind}; boundary="{boundary}"']
        if not _rarely(draw):
            out.append("")  # the blank line (or not)
        out += draw(st.lists(_TEXT, max_size=2))  # preamble
        for _ in range(draw(st.integers(0 if _rarely(draw) else 1, 3))):
            out.append(f"--{boundary}" + (draw(st.sampled_from(["", " ", "\t", "--x", "x"])) if _rarely(draw) else ""))
            out += draw(_entity(depth + 1))
        if not _rarely(draw):
            out.append(f"--{boundary}--" + draw(st.sampled_from(["", "", " ", "  \t", "x"])))
        out += draw(st.lists(_TEXT, max_size=2))  # epilogue
        return out
    out = [*headers]
    if not _rarely(draw):
        out.append("")
    return out + draw(st.lists(_TEXT, max_size=4))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entity(), st.sampled_from(["\r\n", "\n"]), st.booleans())
def test_generated_messages_are_built_as_the_stdlib_builds_them_or_not_at_all(
        lines: list[str], nl: str, final_newline: bool) -> None:
    text = nl.join(["From: a@example.net", "MIME-Version: 1.0", *lines]) + (nl if final_newline else "")
    _check(text.encode("utf-8", "surrogateescape"))


def test_mail_from_the_field_is_mostly_built_here() -> None:
    """Typical mail takes this path (else it saves nothing): messages as mail clients write them."""
    from email.message import EmailMessage
    from email.policy import SMTP

    m = EmailMessage(policy=SMTP)
    m["From"], m["To"], m["Subject"] = "a@example.net", "b@example.org", "report"
    m.set_content("Hello,\n\nthe report is attached.\n")
    m.add_alternative("<p>Hello,</p><p>the report is attached.</p>\n", subtype="html")
    m.add_attachment(b"%PDF-1.4\n" * 200, maintype="application", subtype="pdf", filename="r.pdf")
    assert _check(m.as_bytes()) is not None


# -- the shared corpora --------------------------------------------------------------------------------

CORPORA = corpora_dir()


@pytest.mark.corpora
@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"corpora not found at {CORPORA} (../shared/corpora)")
def test_every_corpus_message_is_built_as_the_stdlib_builds_it_or_not_at_all() -> None:
    built = total = 0
    for path in sorted(p for p in CORPORA.rglob("*") if p.is_file() and not p.name.startswith(("MANIFEST", "README"))
                       and p.name != "index"):
        raw = path.read_bytes()
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]  # the mbox line, as the MDA strips it
        total += 1
        tree = parse_well_formed(raw)
        if tree is not None:
            built += 1
            assert _difference(tree, _stdlib(raw)) is None, f"{path}: {_difference(tree, _stdlib(raw))}"
    assert total > 1000
    assert built / total > 0.9  # the path is worth having only if most mail takes it
