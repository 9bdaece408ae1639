"""Configurations that must not start: an open relay, an empty file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbastion.config import load_settings, weakened
from mailbastion.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


@pytest.mark.parametrize(("networks", "allow_public", "why"), [
    ('["0.0.0.0/0"]', False, "every address on the Internet"),
    ('["::/0"]', True, "every address on the Internet"),  # never, not even with allow_public
    ('["10.0.0.0/8", "0.0.0.0/1"]', False, "public network"),
    ('["8.8.8.0/24"]', False, "public network"),
    ('["2a00:1450::/32"]', False, "public network"),
    ('["172.15.0.0/16"]', False, "public network"),  # just outside 172.16/12
    ('["198.51.0.0/16"]', True, "wider than a /24"),
    ('["2a00:1450:4000::/40"]', True, "wider than a /56"),
])
def test_public_relay_networks_are_refused(tmp_path: Path, networks: str, allow_public: bool, why: str) -> None:
    cfg = write(tmp_path, f"[relay]\nallow_public = {str(allow_public).lower()}\nnetworks = {networks}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert err.value.file == str(cfg) and err.value.key == "relay.networks"
    assert why in str(err.value) and str(cfg) in str(err.value)
    assert "open relay" in str(err.value) or "small prefixes" in str(err.value)


def test_private_networks_load_and_own_public_hosts_need_the_switch(tmp_path: Path) -> None:
    private = '["10.0.0.0/8", "172.16.0.0/12", "192.168.1.0/24", "127.0.0.1/32", "169.254.0.0/16", ' \
              '"100.64.0.0/10", "::1/128", "fd12:3456::/32", "fe80::/10", "::ffff:192.168.0.0/112"]'
    s = load_settings(write(tmp_path, f"[relay]\nnetworks = {private}\n"))
    assert len(s.relay.networks) == 10 and not s.relay.allow_public
    own = '["203.0.114.7/32", "198.51.0.0/24", "2a00:1450:4001:800::/56"]'
    s = load_settings(write(tmp_path, f"[relay]\nallow_public = true\nnetworks = {own}\n"))
    assert [str(n) for n in s.relay.networks] == ["203.0.114.7/32", "198.51.0.0/24", "2a00:1450:4001:800::/56"]
    assert "relay.allow_public = true" in weakened(s)  # logged as config.weakened at start-up


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n"])
def test_empty_configuration_is_refused(tmp_path: Path, text: str) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError, match="empty") as err:
        load_settings(cfg)
    assert err.value.file == str(cfg) and "mailbastion init" in str(err.value)


def test_serve_with_an_empty_file_refuses_and_creates_nothing(tmp_path: Path) -> None:
    cfg = write(tmp_path, "")
    res = subprocess.run([sys.executable, "-m", "mailbastion", "serve", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode != 0 and "empty" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbastion.toml"]  # no directory.db, no spool


def test_serve_with_an_open_relay_refuses(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[relay]\nnetworks = ["0.0.0.0/0"]\n')
    res = subprocess.run([sys.executable, "-m", "mailbastion", "serve", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode != 0 and "relay.networks" in res.stderr and "open relay" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbastion.toml"]
