"""Authentication-Results (RFC 8601): ours is added; incoming ones claiming our authserv-id are removed."""

from __future__ import annotations

import authres
from authkit import AUTHSERV_ID, Rig, message, names, rsa_key

from mailbastion.core.verdict import Edit


def _prepended(edits: tuple[Edit, ...]) -> str:
    found = [e.value for e in edits if e.kind == "prepend" and e.name == "Authentication-Results"]
    assert len(found) == 1
    return found[0]


async def test_header_reports_every_method(rig: Rig) -> None:
    rig.dns.add("example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    rig.dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    key = rig.publish(rsa_key("example.org"))
    verdict, _ = await rig.judge(key.sign(message()))
    value = _prepended(verdict.edits)
    assert value.startswith(AUTHSERV_ID + ";")
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
    got = {r.method: r.result for r in parsed.results}
    assert got == {"spf": "pass", "dkim": "pass", "arc": "none", "dmarc": "pass"}
    assert "smtp.mailfrom=alice@example.org" in value and "header.d=example.org" in value
    assert "header.from=example.org" in value


async def test_null_sender_reports_helo(rig: Rig) -> None:
    rig.dns.add("mail.example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    verdict, _ = await rig.judge(message(), sender=None, helo="mail.example.org")
    assert "spf=pass smtp.helo=mail.example.org" in _prepended(verdict.edits)


async def test_forged_headers_claiming_our_id_are_removed(rig: Rig) -> None:
    forged = (
        f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from=bank.test\r\n"
        f"Authentication-Results: (sneaky) {AUTHSERV_ID.upper()}.; dkim=pass header.d=bank.test\r\n"
        "Authentication-Results: other.example; spf=pass smtp.mailfrom=x@other.example\r\n"
    ).encode()
    verdict, _ = await rig.judge(forged + message())
    removals = [e for e in verdict.edits if e.kind == "remove"]
    assert {e.value for e in removals} == {AUTHSERV_ID, AUTHSERV_ID.upper() + "."}
    assert all(e.name == "Authentication-Results" for e in removals)
    assert "AUTH_RESULTS_FORGED" in names(verdict)
    # Removal comes before our own header, so our header can never be the one removed.
    kinds = [e.kind for e in verdict.edits if e.name == "Authentication-Results"]
    assert kinds.index("prepend") > max(i for i, k in enumerate(kinds) if k == "remove")


async def test_foreign_headers_are_kept(rig: Rig) -> None:
    raw = b"Authentication-Results: other.example; spf=pass smtp.mailfrom=x@other.example\r\n" + message()
    verdict, _ = await rig.judge(raw)
    assert not [e for e in verdict.edits if e.kind == "remove"]
    assert "AUTH_RESULTS_FORGED" not in names(verdict)


def test_values_from_the_sender_cannot_break_the_header() -> None:
    from mailbastion.policy.checks.auth_results import _v

    assert _v("example.org") == "example.org"
    assert _v('a"b; dkim=pass') == '"a\\"b; dkim=pass"'
    assert "\r" not in _v("x\r\nAuthentication-Results: ours; dmarc=pass") and "\n" not in _v("x\ny")
    assert _v("") == '""'


async def test_forged_header_in_odd_forms_is_removed(rig: Rig) -> None:
    from mailbastion.gateway.rewrite import apply_edits

    forged = (
        f"Authentication-Results : {AUTHSERV_ID}; dmarc=pass header.from=bank.test\r\n"
        f"authentication-results:\r\n {AUTHSERV_ID.replace('o', 'O')}\r\n ; dkim=pass header.d=bank.test\r\n"
    ).encode()
    raw = forged + message()
    verdict, _ = await rig.judge(raw)
    assert len([e for e in verdict.edits if e.kind == "remove"]) == 2
    out = apply_edits(raw, verdict.edits)  # the gateway's own rewriter
    head = out.split(b"\r\n\r\n", 1)[0].decode()
    assert head.lower().count("authentication-results") == 1  # ours only
    assert head.startswith(f"Authentication-Results: {AUTHSERV_ID};")


def test_comment_stripping_is_linear_and_complete() -> None:
    import time

    from mailbastion.policy.checks.auth_results import strip_comments

    assert strip_comments("a (b (c) d) e").split() == ["a", "e"]
    assert strip_comments(r"a (b \) c) d").split() == ["a", "d"]
    deep = "(" * 5000 + ")" * 5000 + " mx.ours.test; dmarc=pass"
    started = time.perf_counter()
    assert strip_comments(deep).split()[0] == "mx.ours.test;"  # no depth at which a forgery hides
    assert time.perf_counter() - started < 0.5


def test_long_from_headers_cost_little() -> None:
    import time

    from mailbastion.auth.from_header import analyze_from

    for value in (b'"' + b"a" * 8000 + b'" <x@example.org>', b'"' + b"a@" * 4000 + b'" <x@example.org>',
                  b"x" * 50000):
        started = time.perf_counter()
        analyze_from(b"From: " + value)
        assert time.perf_counter() - started < 0.2, value[:20]
