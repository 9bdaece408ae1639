"""The TOML writer: whatever it writes, tomllib reads back to the same data."""

from __future__ import annotations

import math
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.config.toml_writer import dumps, toml_string

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    _text,
)
_array = st.lists(_scalar, max_size=4)
_leaf = st.one_of(_scalar, _array, st.none())


def _tables(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(_text, children, max_size=4)


_data = st.recursive(_tables(_leaf), lambda inner: _tables(st.one_of(_leaf, inner, st.lists(inner, min_size=1,
                                                                                         max_size=3))),
                     max_leaves=20)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(_data)
def test_what_is_written_reads_back_the_same(data: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(data)) == _without_none(data)


def test_arrays_of_tables_and_comments() -> None:
    data = {"smtp": {"listen": ["127.0.0.1:2525"], "max": 5},
            "spam": {"dnsbl": {"enabled": True, "client_lists": [{"zone": "zen.example", "answers": []},
                                                                 {"zone": "b.example", "symbol": None}]}}}
    text = dumps(data, comments={"smtp": "restart", "spam.dnsbl.enabled": "on SIGHUP"})
    assert "[smtp]  # restart\n" in text
    assert "enabled = true  # on SIGHUP\n" in text
    assert text.count("[[spam.dnsbl.client_lists]]") == 2
    assert "{" not in text  # a list of tables is written as tables, not as a string or an inline table
    assert tomllib.loads(text) == {"smtp": {"listen": ["127.0.0.1:2525"], "max": 5},
                                   "spam": {"dnsbl": {"enabled": True, "client_lists": [
                                       {"zone": "zen.example", "answers": []}, {"zone": "b.example"}]}}}


@pytest.mark.parametrize("text", ["a\"b\\c", "tab\there", "nul\x00del\x7f", "é ü 😀", "line\r\nnext"])
def test_strings_are_escaped_as_toml_wants(text: str) -> None:
    assert tomllib.loads(f"v = {toml_string(text)}")["v"] == text


def test_special_floats() -> None:
    back = tomllib.loads(dumps({"a": math.inf, "b": -math.inf, "c": 1e300, "d": math.nan}))
    assert back["a"] == math.inf and back["b"] == -math.inf and back["c"] == 1e300 and math.isnan(back["d"])
