import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core.address import Address, AddressError, parse_address, parse_path


@pytest.mark.parametrize(
    "text, local, domain",
    [
        ("user@example.test", "user", "example.test"),
        ("User.Name+tag@EXAMPLE.Test", "User.Name+tag", "example.test"),
        ("<user@example.test>", "user", "example.test"),
        ('"john doe"@example.test', '"john doe"', "example.test"),
    ],
)
def test_valid_paths(text: str, local: str, domain: str) -> None:
    addr = parse_path(text)
    assert addr is not None
    assert (addr.local, addr.domain) == (local, domain)


@pytest.mark.parametrize(
    "text",
    [
        "<@relay.test:user@example.test>",  # source route
        "<@a.test,@b.test:user@example.test>",
        "a@b@example.test",
        "user@example.test.",  # trailing dot
        "user@",
        "@example.test",
        "user",
        "user@localdomain",  # not fully qualified
        "us er@example.test",
        "user@exa_mple.test",
        "<user@example.test",
        "user@example.test>",
        "x" * 65 + "@example.test",
        "user@\x00example.test",
        "üser@example.test",  # UTF-8 without SMTPUTF8
        '"unterminated@example.test',
    ],
)
def test_invalid_paths_are_refused(text: str) -> None:
    with pytest.raises(AddressError):
        parse_path(text)


def test_null_path_only_where_allowed() -> None:
    assert parse_path("<>", allow_null=True) is None
    with pytest.raises(AddressError):
        parse_path("<>")


def test_utf8_with_smtputf8() -> None:
    addr = parse_address("üser@bücher.example", allow_utf8=True)
    assert addr.domain == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "text, route",
    [
        ("user%other.test@example.test", True),  # percent hack
        ("other.test!user@example.test", True),  # bang path
        ('"user@other.test"@example.test', True),  # quoted @
        ('"user%other.test"@example.test', True),
        ("plain@example.test", False),
    ],
)
def test_route_characters_are_visible(text: str, route: bool) -> None:
    assert parse_path(text).has_route_chars is route  # type: ignore[union-attr]


def test_address_literal_is_flagged() -> None:
    addr = parse_path("user@[192.0.2.1]")
    assert addr is not None and addr.is_literal


def test_plus_tag_and_normalized() -> None:
    addr = parse_address("Alice+News@Example.TEST")
    assert addr.without_tag() == Address("Alice", "example.test")
    assert addr.normalized == "alice+news@example.test"


@pytest.mark.parametrize("text", ["<Postmaster>", "<postmaster>", "<POSTMASTER>", "PostMaster"])
def test_postmaster_without_domain(text: str) -> None:
    # RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> (any case) must be accepted; the receiving role maps it.
    addr = parse_path(text, allow_postmaster=True)
    assert addr is not None and addr.is_bare_postmaster
    assert str(addr) == "Postmaster" and addr.normalized == "postmaster"
    with pytest.raises(AddressError):
        parse_path(text)  # only where the caller allows it (RCPT, not MAIL)


def test_only_the_postmaster_may_lack_a_domain() -> None:
    for text in ("<abuse>", "<postmaster2>", "<postmaster@>"):
        with pytest.raises(AddressError):
            parse_path(text, allow_postmaster=True)
    assert not parse_address("postmaster@example.test").is_bare_postmaster


def test_a_parsed_address_is_remembered_and_an_error_is_not() -> None:
    first = parse_address("Remembered.User@Example.TEST")
    assert parse_address("Remembered.User@Example.TEST") is first  # the remembered object, not a new parse
    assert parse_address("Remembered.User@Example.TEST", allow_utf8=True) == first  # its own entry, same answer
    for _ in range(2):  # raised again, with its reason, every time
        with pytest.raises(AddressError, match="exactly one @"):
            parse_address("two@at@example.test")
    with pytest.raises(AddressError, match="non-ASCII"):
        parse_address("jürgen@example.test")  # allowed with SMTPUTF8 only: the flag is part of the key
    assert parse_address("jürgen@example.test", allow_utf8=True).local == "jürgen"
    with pytest.raises(AddressError, match="non-ASCII"):
        parse_address("jürgen@example.test")


_TEXTS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=12), st.text(max_size=20)),
    st.sampled_from(["a@example.test", '"a b"@example.test', "a@[192.0.2.1]", "a@xn--bcher-kva.example",
                     "a@bücher.example", "A@EXAMPLE.TEST", "a@localhost", "a.@example.test"]),
)


@settings(max_examples=600, deadline=None)
@given(_TEXTS, st.booleans())
def test_remembered_answers_are_those_of_a_fresh_parse(text: str, allow_utf8: bool) -> None:
    from mailbastion.core.address import _parse_address

    for _ in range(2):  # the second call answers from memory
        try:
            fresh: Address | str = _parse_address(text, allow_utf8=allow_utf8)
        except AddressError as exc:
            fresh = f"error: {exc}"
        try:
            got: Address | str = parse_address(text, allow_utf8=allow_utf8)
        except AddressError as exc:
            got = f"error: {exc}"
        assert got == fresh
