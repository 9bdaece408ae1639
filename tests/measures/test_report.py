"""The measures' values and the audit's report without a deployment: merging parts, the three words, the JSON,
what changed, the HTML page (escaped), the portal's view of the last audit, the daily timer's units."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailbastion.config import load_settings
from mailbastion.measures.board import (
    MET,
    NOT_BUILT,
    NOT_MET,
    PARTIAL,
    TITLES,
    UNKNOWN,
    WARN,
    MeasureBoard,
    MeasureResult,
    NotBuilt,
    merge,
    status_word,
)
from mailbastion.measures.inventory import LAST_FILE, LastAuditProbe
from mailbastion.measures.report import changes, failed, report_html, report_json
from mailbastion.measures.smtp_probe import dot_stuff


def r(n: int, state: str, summary: str = "s", *details: str, fix: str = "") -> MeasureResult:
    return MeasureResult(n, state, summary, details, fix=fix)


def test_three_words_never_pass_what_is_not_built_or_unknown() -> None:
    assert [status_word(s) for s in (MET, WARN, PARTIAL, NOT_BUILT, NOT_MET, UNKNOWN)] == [
        "pass", "pass", "not built", "not built", "fail", "fail"]


def test_merge_takes_the_worst_part_and_not_built_parts_make_partial() -> None:
    assert merge([r(1, MET, "a"), r(1, NOT_MET, "b", "x", fix="do b")]).state == NOT_MET
    both = merge([r(1, MET, "a", "d1"), r(1, NOT_MET, "b", "d2", fix="do b")])
    assert both.summary == "a; b" and both.details == ("d1", "d2") and both.fix == "do b"
    assert merge([r(6, MET), r(6, NOT_BUILT)]).state == PARTIAL
    assert merge([r(6, NOT_BUILT), r(6, NOT_BUILT)]).state == NOT_BUILT
    assert merge([r(9, UNKNOWN), r(9, MET)]).state == UNKNOWN
    assert merge([r(9, WARN), r(9, MET)]).state == WARN


def test_board_merges_parts_of_one_measure_from_two_probes() -> None:
    class Part:
        def __init__(self, state: str) -> None:
            self.numbers = (1,)
            self.state = state

        async def __call__(self) -> list[MeasureResult]:
            return [r(1, self.state, self.state)]

    results = asyncio.run(MeasureBoard([Part(MET), Part(NOT_MET), NotBuilt((7, 8), "nb")]).refresh())
    assert results[1].state == NOT_MET and results[1].summary == "met; not met"
    assert results[7].state == NOT_BUILT and results[10].state == NOT_BUILT


def full(**states: str) -> dict[int, MeasureResult]:
    return {n: r(n, states.get(f"m{n}", MET), f"summary {n}", f"detail {n}") for n in TITLES}


def test_json_schema_failed_and_changes() -> None:
    doc = report_json(full(m5=NOT_MET, m7=NOT_BUILT))
    assert [m["id"] for m in doc["measures"]] == list(range(1, 11))
    five = doc["measures"][4]
    assert five == {"id": 5, "name": TITLES[5], "status": "fail", "evidence": ["summary 5", "detail 5"],
                    "fix": five["fix"]} and five["fix"]
    assert doc["measures"][0]["fix"] == "" and failed(doc) == [5]
    assert len(changes(None, doc)) == 10
    assert changes(doc, doc) == []
    later = report_json(full(m5=NOT_MET, m7=NOT_BUILT, m1=NOT_MET))
    assert changes(doc, later) == [f"measure 1 ({TITLES[1]}): pass -> fail: summary 1"]


class Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_everything() -> None:
    evil = '<script>alert("x")</script><img src=x onerror=y>&amp;'
    results = full(m3=NOT_MET)
    results[3] = MeasureResult(3, NOT_MET, evil, (evil,), fix=evil)
    page = report_html(report_json(results), host='<b>"mx"</b>', when="2026-12-02 03:00 UTC")
    parser = Texts()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags and "b" not in parser.tags
    text = "".join(parser.text)
    assert text.count(evil) == 3 and '<b>"mx"</b>' in text
    assert "1 fail" in text and "9 pass" in text


def test_dot_stuffing_keeps_bare_lfs() -> None:
    assert dot_stuff(b".a\r\n.b\n.c\r\n") == b"..a\r\n..b\n.c\r\n"


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    cfg = tmp_path / "mb.toml"
    cfg.write_text(f'[server]\ndata_dir = "{tmp_path}"\n')
    return cfg


def test_portal_shows_3_4_5_from_the_last_audit(settings_file: Path) -> None:
    settings = load_settings(settings_file)
    none = asyncio.run(LastAuditProbe(settings)())
    assert [(m.number, m.state) for m in none] == [(3, NOT_BUILT), (4, NOT_BUILT), (5, NOT_BUILT)]
    doc = report_json(full(m5=NOT_MET))
    path = settings.path(LAST_FILE)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**doc, "checked_at": "2026-12-02 03:00 UTC", "host": "mx"}))
    at = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    fresh = {m.number: m for m in asyncio.run(LastAuditProbe(settings, now=at)())}
    assert fresh[3].state == MET and fresh[5].state == NOT_MET and "audit of 2026-12-02 03:00 UTC" in fresh[4].summary
    stale = asyncio.run(LastAuditProbe(settings, now=at + dt.timedelta(days=2))())
    assert {m.state for m in stale} == {UNKNOWN} and "too old" in stale[0].summary


def test_units_write_the_daily_audit_timer(settings_file: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "mailbastion", "units", "-c", str(settings_file), "--role", "all"]
    text = settings_file.read_text() + '\n'
    settings_file.write_text(text.replace("[server]\n", '[server]\nuser = "mail"\n'))
    res = subprocess.run([*base, "--audit-at", "06:30", "--out", str(tmp_path / "u")], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    service = (tmp_path / "u" / "mailbastion-audit.service").read_text()
    timer = (tmp_path / "u" / "mailbastion-audit.timer").read_text()
    assert f"audit -c {settings_file} --mail-changes" in service and "SuccessExitStatus=1" in service
    assert "OnCalendar=*-*-* 06:30:00 UTC" in timer and "Persistent=true" in timer
    if shutil.which("systemd-analyze"):  # the calendar expression as systemd reads it
        cal = subprocess.run(["systemd-analyze", "calendar", "*-*-* 06:30:00 UTC"], capture_output=True, text=True,
                             timeout=60, check=False)
        assert cal.returncode == 0 and "06:30:00" in cal.stdout
    bad = subprocess.run([*base, "--audit-at", "25:00"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "expected HH:MM" in bad.stderr and "Traceback" not in bad.stderr
