"""What the loop stands on: its public surface, its settings, the address `init` makes, and where its mail
is committed in each role."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mailbastion.config import load_settings
from mailbastion.config.loader import parse_settings
from mailbastion.core.errors import ConfigError
from mailbastion.core.ports import ResolutionKind


@pytest.mark.parametrize("module", ["mailbastion.phish_report", "mailbastion.phish_report.fingerprint",
                                    "mailbastion.phish_report.sweep", "mailbastion.phish_report.service",
                                    "mailbastion.phish_report.observers", "mailbastion.phish_report.intake",
                                    "mailbastion.phish_report.inbox", "mailbastion.phish_report.notices",
                                    "mailbastion.apps.phish_report", "mailbastion.portal.phish_pages"])
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_settings_have_safe_defaults_and_refuse_unknown_keys() -> None:
    s = parse_settings({})
    p = s.phish_report
    assert p.enabled and p.local_part == "report-phish" and p.match_window_days == 14 and p.max_copies == 500
    assert p.notify_affected and p.learn
    with pytest.raises(ConfigError, match="phish_report"):
        parse_settings({"phish_report": {"sweep_everything": True}})
    with pytest.raises(ConfigError, match="match_window_days"):
        parse_settings({"phish_report": {"match_window_days": 0}})


def test_init_makes_the_report_address(tmp_path: Path) -> None:
    from mailbastion.directory import Directory

    root = tmp_path / "var"
    res = subprocess.run([sys.executable, "-m", "mailbastion", "init", "--dir", str(root), "--domain", "example.test"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    directory = Directory.from_settings(load_settings(root / "mailbastion.toml"))
    r = directory.resolve("report-phish@example.test")
    assert r.kind is ResolutionKind.ALIAS and [str(t) for t in r.targets] == ["postmaster@example.test"]


def test_mail_of_the_loop_goes_where_a_queue_manager_delivers_it(tmp_path: Path) -> None:
    from mailbastion.apps.phish_report import notice_spool

    base = {"server": {"data_dir": str(tmp_path)}}
    assert notice_spool(parse_settings(base)).root == tmp_path / "spool"  # type: ignore[attr-defined]
    inside = parse_settings({"server": {"data_dir": str(tmp_path), "role": "internal"},
                             "map_push": {"gateways": ["192.0.2.25:2426"]}})
    assert notice_spool(inside).root == tmp_path / inside.submission.spool_dir  # type: ignore[attr-defined]
