"""Writes plain data (tables, scalars, lists of scalars) back as TOML: `config show` and the test kit."""

from __future__ import annotations

import json
from typing import Any


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def dumps(data: dict[str, Any]) -> str:
    """TOML for `data`. None values are left out (TOML has no null: absent means the default)."""
    out: list[str] = []
    _emit("", data, out)
    return "\n".join(out).rstrip() + "\n"


def _emit(prefix: str, data: dict[str, Any], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        out.append(f"[{prefix}]")
    for k, v in scalars.items():
        out.append(f"{k} = {toml_value(v)}")
    if scalars or (prefix and not tables):
        out.append("")
    for k, v in tables.items():
        _emit(f"{prefix}.{k}" if prefix else k, v, out)
