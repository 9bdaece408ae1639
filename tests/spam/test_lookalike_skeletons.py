"""Confusable skeletons (Unicode TR39 through ICU), script mixing, and the protected-domain lists."""

from __future__ import annotations

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.spam.domains import registrable_domain
from mailbastion.spam.lookalike import (
    Imitation,
    OwnIdentity,
    ProtectedDomains,
    label_problems,
    shipped_list,
    skeleton,
    to_ascii,
    to_unicode,
    tr39_skeleton,
)


@pytest.mark.parametrize(("fake", "real"), [
    ("pаypal.com", "paypal.com"),          # Cyrillic а
    ("раураl.com", "paypal.com"),          # Cyrillic р, а, у
    ("аррӏе.com", "apple.com"),            # all Cyrillic, palochka ӏ
    ("paypa1.com", "paypal.com"),          # digit one
    ("g00gle.com", "google.com"),          # digit zero (TR39 maps it to capital O)
    ("rnicrosoft.com", "microsoft.com"),   # rn
    ("gօօgle.com", "google.com"),          # Armenian օ
    ("ạmazon.com", "amazon.com"),          # a dot below, invisible at small sizes
    ("ＰａｙＰａｌ.com", "paypal.com"),       # fullwidth (NFKC)
])
def test_confusables_share_a_skeleton(fake: str, real: str) -> None:
    assert skeleton(fake) == skeleton(real)
    assert skeleton(to_ascii(fake)) == skeleton(real)  # the A-label form reads the same


def test_tr39_skeleton_is_icus() -> None:
    assert tr39_skeleton("аррӏе") == "apple"
    assert tr39_skeleton("bücher") == "bucher"


@pytest.mark.parametrize(("domain", "kind", "scripts"), [
    ("pаypal.com", "mixed", "Cyrl+Latn"),
    ("xn--pypal-4ve.com", "mixed", "Cyrl+Latn"),
    ("παypal.com", "mixed", "Grek+Latn"),
    ("аррӏе.com", "whole", "Cyrl"),
    ("ab١٢3.com", "mixed", "Arab+Latn"),   # two digit systems
])
def test_label_problems(domain: str, kind: str, scripts: str) -> None:
    [problem] = label_problems(domain)
    assert (problem.kind, problem.scripts) == (kind, scripts)


@pytest.mark.parametrize("domain", ["example.com", "bücher.de", "münchen.de", "例え.jp", "日本語abc.jp",
                                    "яндекс.рф", "аррӏе.ru", "ελληνικά.gr", "한국abc.kr", "xn--bcher-kva.de"])
def test_ordinary_labels_have_no_problem(domain: str) -> None:
    assert label_problems(domain) == []


def test_protected_domains() -> None:
    p = ProtectedDomains.of(own=["ours.example"], partners=["supplier.example"], impersonated=["paypal.com"])
    assert p.imitated("xn--pypal-4ve.com") == Imitation("paypal.com", "brand")
    assert p.imitated("pаypal.net").protected == "paypal.com"  # type: ignore[union-attr]
    assert p.imitated("login.paypa1.com").protected == "paypal.com"  # type: ignore[union-attr]
    assert p.imitated("supp1ier.example").source == "partner"  # type: ignore[union-attr]
    assert p.imitated("оurs.example").source == "own"  # type: ignore[union-attr]
    for fine in ("paypal.com", "www.paypal.com", "paypal.net", "paypal-shop.net", "python.org", "", "...", "1.2.3.4"):
        assert p.imitated(fine) is None, fine


def test_a_domain_on_two_lists_counts_as_the_closer_one() -> None:
    p = ProtectedDomains.of(own=["paypal.com"], impersonated=["paypal.com"])
    assert p.imitated("paypa1.com").source == "own"  # type: ignore[union-attr]


def test_shipped_list_is_clean() -> None:
    domains = shipped_list()
    assert len(domains) >= 100 and len(set(domains)) == len(domains)
    assert all(registrable_domain(d) == d for d in domains)  # registrable domains only, no subdomains
    protected = ProtectedDomains.of(impersonated=domains)
    assert [d for d in domains if protected.imitated(d)] == []  # no entry reads like another
    assert len({skeleton(d) for d in domains}) == len(domains)
    assert {"paypal.com", "irs.gov", "dhl.com", "microsoft.com", "chase.com"} <= set(domains)


def test_own_identity_keeps_its_lookalike_rules() -> None:
    ours = OwnIdentity.of(["example.com"])
    assert ours.lookalike_of(idna.encode("ехаmрlе.com").decode()) == "example.com"  # Cyrillic е, х, а, р
    assert ours.lookalike_of("examp1e.com") == "example.com"
    assert ours.lookalike_of("exmaple.com") == "example.com"  # one transposition
    assert ours.lookalike_of("python.org") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_never_raises(text: str) -> None:
    p = ProtectedDomains.of(own=["ours.example"], impersonated=["paypal.com"])
    p.imitated(text)
    label_problems(text)
    skeleton(text)
    to_unicode(to_ascii(text))
    OwnIdentity.of(["example.com"]).lookalike_of(text)
