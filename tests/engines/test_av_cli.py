"""`mailbastion av status` against the real clamd, and `av update-rules`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.testing.clamd import ClamdTestServer


def write_config(tmp_path: Path, socket: str, *clamav: str, **extra: str) -> Path:
    """A configuration with clamd at `socket`; `clamav` lines go into [antivirus.clamav], `extra` tables below."""
    config = tmp_path / "mb.toml"
    lines = [f'[server]\ndata_dir = "{tmp_path}"', '[antivirus]\nworkstation_engine = "microsoft"',
             "\n".join([f'[antivirus.clamav]\nsocket = "{socket}"', *clamav])]
    lines += [f"[{k}]\n{v}" for k, v in extra.items()]
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.mark.clamd
def test_status_shows_each_engine_vendor_version_date_and_difference(clamd: ClamdTestServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, clamd.socket_path)
    out = CliRunner().invoke(main_group, ["av", "status", "-c", str(config), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    engines = {e["engine"]: e for e in report["engines"]}
    assert set(engines) == {"clamav", "yara", "attachments"}
    clam = engines["clamav"]
    assert clam["vendor"] == "clamav" and clam["version"] and clam["signature_date"]
    assert clam["differs_from_workstations"] and not clam["stale"] and clam["reachable"]
    assert report["measure2"] == {"met": True, "by": ["clamav"], "reasons": []}
    assert clam["counts_for_measure2"] and not engines["yara"]["counts_for_measure2"]
    text = CliRunner().invoke(main_group, ["av", "status", "-c", str(config)])
    assert "clamav" in text.output and "MEASURE 2" in text.output and "measure 2: met by clamav" in text.output


@pytest.mark.clamd
def test_status_raises_the_stale_alarm(clamd: ClamdTestServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, clamd.socket_path)
    clamd.write_database(age=timedelta(days=2))
    clamd.reload()
    try:
        out = CliRunner().invoke(main_group, ["av", "status", "-c", str(config)])
        assert out.exit_code == 1 and "ALARM: clamav signatures" in out.output
        assert "measure 2: NOT MET" in out.output  # stale signatures do not count
    finally:
        clamd.write_database(age=timedelta(hours=1))
        clamd.reload()


def test_status_reports_unreachable_and_measure_2(tmp_path: Path) -> None:
    config = tmp_path / "mb.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[antivirus]\nworkstation_engine = "yara"\n'
                      '[antivirus.clamav]\nenabled = true\nsocket = "/nonexistent.sock"\n')
    out = CliRunner().invoke(main_group, ["av", "status", "-c", str(config)])
    assert out.exit_code == 1 and "UNREACHABLE" in out.output and "measure 2: NOT MET" in out.output


def test_status_without_clamd_says_measure_2_not_met_whatever_yara_finds(tmp_path: Path) -> None:
    """Issue 8.5: with ClamAV waiting for signatures (auto) or off, YARA and the attachment policy do not count."""
    auto = write_config(tmp_path, "/nonexistent.sock")
    out = CliRunner().invoke(main_group, ["av", "status", "-c", str(auto), "--json"])
    assert out.exit_code == 1, out.output
    report = json.loads(out.output)
    assert report["measure2"]["met"] is False and report["refuses_to_start"] == []
    assert "clamav: off" in report["measure2"]["reasons"][0]
    engines = {e["engine"]: e for e in report["engines"]}
    assert engines["clamav"]["state"] == "OFF" and engines["clamav"]["auto"]
    assert engines["yara"]["reachable"] and not engines["yara"]["counts_for_measure2"]
    text = CliRunner().invoke(main_group, ["av", "status", "-c", str(auto)]).output
    assert "measure 2: NOT MET" in text and "do not count towards measure 2" in text
    off = write_config(tmp_path, "/nonexistent.sock", "enabled = false")
    out = CliRunner().invoke(main_group, ["av", "status", "-c", str(off)])
    assert out.exit_code == 1 and "measure 2: NOT MET" in out.output and "REFUSES TO START" in out.output


def test_update_rules_installs_only_rules_that_compile(tmp_path: Path) -> None:
    config = write_config(tmp_path, "/nonexistent.sock")
    src = tmp_path / "incoming"
    src.mkdir()
    (src / "site.yar").write_text('rule Site_Marker { strings: $a = "site-marker" condition: $a }')
    out = CliRunner().invoke(main_group, ["av", "update-rules", "-c", str(config), "--from", str(src)])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "yara" / "site.yar").exists()
    (src / "bad.yar").write_text("rule broken {")
    out = CliRunner().invoke(main_group, ["av", "update-rules", "-c", str(config), "--from", str(src)])
    assert out.exit_code == 1 and "do not compile" in out.output
    assert not (tmp_path / "yara" / "bad.yar").exists()


def test_update_rules_from_a_loopback_url(tmp_path: Path) -> None:
    import http.server
    import threading

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "mail.yar").write_text('rule Url_Marker { strings: $a = "url-marker" condition: $a }')

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = write_config(tmp_path, "/nonexistent.sock")
        url = f"http://127.0.0.1:{server.server_address[1]}/mail.yar"
        out = CliRunner().invoke(main_group, ["av", "update-rules", "-c", str(config), "--from", url])
        assert out.exit_code == 0, out.output
        assert "Url_Marker" in (tmp_path / "yara" / "mail.yar").read_text()
    finally:
        server.shutdown()


@pytest.mark.clamd
def test_local_database_without_build_date_is_reported_and_can_be_dated_by_its_files(tmp_path: Path) -> None:
    """A clamd with .ndb/.hdb files only (like the anchor bench's) prints no signature date: reported as
    such, stale under the default; `undated_signatures = "newest_file"` takes the files' age instead."""
    with ClamdTestServer() as clamd:
        clamd.write_local_database(age=timedelta(hours=2))
        clamd.reload()
        config = write_config(tmp_path, clamd.socket_path)
        out = CliRunner().invoke(main_group, ["av", "status", "-c", str(config), "--json"])
        assert out.exit_code == 1, out.output
        clam = {e["engine"]: e for e in json.loads(out.output)["engines"]}["clamav"]
        assert clam["state"] == "UNDATED" and clam["signature_age"] == "unknown: local database only"
        text = CliRunner().invoke(main_group, ["av", "status", "-c", str(config)]).output
        assert "signature age unknown: local database only" in text and "undated_signatures" in text
        dated = write_config(tmp_path, clamd.socket_path, 'undated_signatures = "newest_file"',
                             f'database_dir = "{clamd.db_dir}"')
        out = CliRunner().invoke(main_group, ["av", "status", "-c", str(dated), "--json"])
        assert out.exit_code == 0, out.output
        report = json.loads(out.output)
        clam = {e["engine"]: e for e in report["engines"]}["clamav"]
        assert clam["state"] == "ok" and 1.9 <= clam["age_hours"] <= 2.2 and "mtime of daily." in clam["signature_age"]
        assert report["measure2"]["met"]
        clamd.write_local_database(age=timedelta(days=3))  # freshclam-less site that stopped updating
        clamd.reload()
        out = CliRunner().invoke(main_group, ["av", "status", "-c", str(dated)])
        assert out.exit_code == 1 and "ALARM: clamav signatures" in out.output
