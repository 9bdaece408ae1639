"""Writes plain data (tables, arrays of tables, scalars, arrays) back as TOML 1.0: `config show` and the
test kit. What it writes, `tomllib` reads back to the same data (tests/config/test_toml_writer.py checks
it on arbitrary data), except `None`, which TOML cannot say: a None value is left out (absent means the
default).

    dumps({"smtp": {"listen": ["127.0.0.1:2525"]}, "spam": {"dnsbl": {"client_lists": [{"zone": "z"}]}}},
          comments={"smtp": "restart"})
    # [smtp]  # restart
    # listen = ["127.0.0.1:2525"]
    #
    # [[spam.dnsbl.client_lists]]
    # zone = "z"

We keep our own writer rather than tomli-w because `config show` puts a comment on a key or table
(`# restart`), which tomli-w cannot write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# TOML 1.0 §String: these must be escaped in a basic string (all C0 controls but tab, and DEL).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def toml_string(text: str) -> str:
    """A TOML basic string for `text` (non-ASCII is written as is: TOML files are UTF-8)."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group(0)
        return _ESCAPES.get(ch, f"\\u{ord(ch):04X}")

    return '"' + _NEEDS_ESCAPE.sub(escape, text) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(v: Any) -> str:
    """One value in TOML syntax: arrays and tables inside arrays are written inline."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v)  # 1.5, 1e+16, inf, -inf: all TOML floats
    if isinstance(v, (list, tuple)):
        if any(x is None for x in v):
            raise ValueError("TOML has no null: an array cannot hold None")
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items() if x is not None)
        return "{" + inner + "}" if inner else "{}"
    return toml_string(str(v))


def dumps(data: Mapping[str, Any], *, comments: Mapping[str, str] | None = None) -> str:
    """TOML for `data`. `comments` puts `# text` after a key or a table header, both named by their dotted
    path (`"smtp.listen"`, `"smtp"`). None values are left out."""
    out: list[str] = []
    _emit([], data, out, comments or {}, array=False)
    return "\n".join(out).rstrip() + "\n"


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _emit(path: list[str], data: Mapping[str, Any], out: list[str], comments: Mapping[str, str], *,
          array: bool) -> None:
    dotted = ".".join(path)
    scalars = {k: v for k, v in data.items() if v is not None and not isinstance(v, Mapping)
               and not _is_table_array(v)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping) or _is_table_array(v)}
    if path and (array or scalars or not tables or dotted in comments):
        header = ".".join(toml_key(p) for p in path)
        header = f"[[{header}]]" if array else f"[{header}]"
        out.append(_with_comment(header, comments.get(dotted)))
    for k, v in scalars.items():
        out.append(_with_comment(f"{toml_key(k)} = {toml_value(v)}", comments.get(".".join([*path, k]))))
    if out and out[-1] != "":
        out.append("")
    for k, v in tables.items():
        if isinstance(v, Mapping):
            _emit([*path, k], v, out, comments, array=False)
        else:
            for item in v:
                _emit([*path, k], item, out, comments, array=True)


def _with_comment(line: str, comment: str | None) -> str:
    return f"{line}  # {comment}" if comment else line


__all__ = ["dumps", "toml_key", "toml_string", "toml_value"]
