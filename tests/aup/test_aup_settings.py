"""`[aup]`: secure defaults, unknown keys and bad values refused with a clear message, the weakened report,
and the block `mailbastion init` writes for the all-in-one and internal hosts."""

from __future__ import annotations

import tomllib

import pytest

from mailbastion.apps.config_templates import INTERNAL_TEMPLATE, TEMPLATE
from mailbastion.config import parse_settings, weakened
from mailbastion.core.errors import ConfigError


def test_defaults_are_the_secure_ones() -> None:
    a = parse_settings({}).aup
    assert (a.grace_days, a.enforce, a.notice_sender) == (14, "submission", "")
    assert not [w for w in weakened(parse_settings({})) if w.startswith("aup.")]


@pytest.mark.parametrize("section", [{"bogus": 1}, {"enforce": "block"}, {"grace_days": -1}, {"grace_days": 400},
                                     {"notice_sender": "a b@example.org"}, {"notice_sender": "no-at-sign"}])
def test_bad_values_are_refused(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"aup": section})
    assert str(err.value).startswith("<config>: aup.") and len(str(err.value).splitlines()) == 1


def test_enforcement_off_is_reported_as_weakened() -> None:
    assert any(w.startswith('aup.enforce = "off"') for w in weakened(parse_settings({"aup": {"enforce": "off"}})))


@pytest.mark.parametrize("template", [TEMPLATE, INTERNAL_TEMPLATE])
def test_init_templates_carry_the_block(template: str) -> None:
    block = template[template.index("[aup]"):]
    block = block[:block.index("\n[", 1)]
    assert tomllib.loads(block)["aup"] == {"grace_days": 14, "enforce": "submission"}
