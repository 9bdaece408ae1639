"""An audit's report: the JSON of `audit --json`, the one-page HTML for management, and what changed since
the last run (for the daily mail to the administrator).

    doc = report_json(results)      # {"measures": [{"id", "name", "status", "evidence", "fix"}, ...]}
    page = report_html(doc, host="mx.example.org", when="2026-12-02 04:00 UTC")   # everything escaped
    lines = changes(previous_doc, doc)                                             # [] when nothing changed
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, select_autoescape

from mailbastion.measures.board import TITLES, MeasureResult

__all__ = ["changes", "failed", "report_html", "report_json"]


def report_json(results: Mapping[int, MeasureResult]) -> dict[str, Any]:
    measures = []
    for n in sorted(TITLES):
        r = results[n]
        measures.append({"id": n, "name": r.title, "status": r.status, "evidence": [r.summary, *r.details],
                         "fix": r.advice})
    return {"measures": measures}


def failed(doc: Mapping[str, Any]) -> list[int]:
    return [int(m["id"]) for m in doc["measures"] if m["status"] == "fail"]


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """One line per measure whose status or first line of evidence changed (every measure on a first run)."""
    old = {int(m["id"]): m for m in (before or {}).get("measures", [])}
    out = []
    for m in after["measures"]:
        prev = old.get(int(m["id"]))
        if prev is None:
            out.append(f"measure {m['id']} ({m['name']}): {m['status']}: {m['evidence'][0]}")
        elif prev["status"] != m["status"]:
            out.append(f"measure {m['id']} ({m['name']}): {prev['status']} -> {m['status']}: {m['evidence'][0]}")
        elif prev["evidence"][:1] != m["evidence"][:1]:
            out.append(f"measure {m['id']} ({m['name']}): still {m['status']}, now: {m['evidence'][0]}")
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Mail security measures: {{ host }}</title>
<style>
body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}
.pass{background:#e3f4e3}.fail{background:#fbe0e0}.not-built{background:#eee}
details{font-size:.85em}
</style></head><body>
<h1>Mail security measures</h1>
<p>Server <strong>{{ host }}</strong>, checked {{ when }} by <code>mailbastion audit</code>:
{{ counts.pass }} pass, {{ counts.fail }} fail, {{ counts.not_built }} not built.</p>
<table class="measures"><thead><tr><th>#</th><th>Measure</th><th>Status</th><th>What we saw</th>
<th>What to do</th></tr></thead><tbody>
{% for m in measures %}<tr class="{{ m.status | replace(' ', '-') }}" id="measure-{{ m.id }}">
<td>{{ m.id }}</td><td>{{ m.name }}</td><td>{{ m.status }}</td>
<td>{{ m.evidence[0] }}{% if m.evidence | length > 1 %}<details><summary>evidence</summary><ul>
{% for e in m.evidence[1:] %}<li>{{ e }}</li>{% endfor %}</ul></details>{% endif %}</td>
<td>{{ m.fix }}</td></tr>
{% endfor %}</tbody></table>
<p>"not built": the capability does not exist yet, or only part of it does; never counted as passed.</p>
</body></html>
"""

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def report_html(doc: Mapping[str, Any], *, host: str, when: str) -> str:
    ms = doc["measures"]
    counts = {"pass": sum(m["status"] == "pass" for m in ms), "fail": sum(m["status"] == "fail" for m in ms),
              "not_built": sum(m["status"] == "not built" for m in ms)}
    return _ENV.from_string(_PAGE).render(measures=ms, host=host, when=when, counts=counts)
