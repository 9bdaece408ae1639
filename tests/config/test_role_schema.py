"""Per-role configuration: what the gateway and the internal host refuse, and what each needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbastion.config import load_settings, parse_settings
from mailbastion.config.roles import REFUSED
from mailbastion.core.errors import ConfigError

GATEWAY_OK = {"server": {"role": "gateway"}, "lmtp": {"connect": "10.77.0.2:2424"},
              "map_push": {"listen": "10.77.0.1:2426"}}
INTERNAL_OK = {"server": {"role": "internal"}, "lmtp": {"listen": "10.77.0.2:2424"},
               "map_push": {"gateways": ["10.77.0.1:2426"]}}


def _with(base: dict[str, dict[str, object]], dotted: str, value: object) -> dict[str, dict[str, object]]:
    data = {k: dict(v) for k, v in base.items()}
    section, _, key = dotted.partition(".")
    if key:
        data.setdefault(section, {})[key] = value
    else:
        data[section] = value  # type: ignore[assignment]
    return data


def test_the_minimal_role_files_load() -> None:
    assert parse_settings(GATEWAY_OK).server.role == "gateway"
    assert parse_settings(INTERNAL_OK).server.role == "internal"
    assert parse_settings({}).server.role == "all"


@pytest.mark.parametrize(("dotted", "value", "why"), [
    ("directory.url", "sqlite:///users.db", "the directory (accounts, password hashes) stays on the internal host"),
    ("mailbox.root", "/srv/mail", "mailboxes live on the internal host"),
    ("tls.ca_key", "tls/ca-key.pem", "the CA key stays on the internal host"),
    ("tls.mda_key", "tls/m.key", "belongs on the internal host"),
    ("tls.internal_client_key", "tls/i.key", "belongs on the internal host"),
    ("lmtp.listen", "0.0.0.0:2424", "the MDA listens on the internal host"),
    ("map_push.gateways", ["10.0.0.1:2426"], "the internal host pushes the map"),
])
def test_the_gateway_refuses_what_belongs_inside(tmp_path: Path, dotted: str, value: object, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_with(GATEWAY_OK, dotted, value), tmp_path / "gw.toml")
    line = str(err.value)
    assert line.count("\n") == 0, line  # one clear line
    assert line.startswith(f"{tmp_path / 'gw.toml'}: {dotted}: not used by the gateway role") and why in line
    assert err.value.key == dotted


def test_the_gateway_refuses_portal_and_password_sections_by_name() -> None:
    # By name, so the refusal names the gateway role for sections that are not built yet (submission,
    # passwords), whose keys would otherwise be refused as unknown.
    assert {"portal", "imap", "submission", "passwords"} <= set(REFUSED["gateway"])


@pytest.mark.parametrize(("dotted", "value", "reported"), [
    ("smtp.listen", ["0.0.0.0:25"], None), ("smtp.proxy_protocol", True, None),
    ("relay", {"networks": ["10.0.0.0/8"]}, "relay.networks"),
    ("delivery", {"relayhost": "smart.example.net"}, "delivery.relayhost"), ("tls.gateway_client_key", "x.key", None),
    ("tls.link_cert", "l.crt", None), ("lmtp.connect", "10.0.0.1:2424", None),
    ("map_push.listen", "10.0.0.2:2426", None), ("map_push.max_age", 60, None),
])
def test_the_internal_host_refuses_the_mx_and_the_gateways_keys(dotted: str, value: object,
                                                                  reported: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_with(INTERNAL_OK, dotted, value))
    assert f"{reported or dotted}: not used by the internal role" in str(err.value)


def test_the_mdas_limits_are_not_refused_on_the_internal_host() -> None:
    s = parse_settings(_with(INTERNAL_OK, "smtp.max_message_size", 10_000_000))
    assert s.smtp.max_message_size == 10_000_000


def test_every_refusal_is_listed_with_what_is_missing() -> None:
    data = {"server": {"role": "gateway"}, "directory": {"url": "sqlite:///d.db"}, "mailbox": {"root": "m"}}
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    keys = [line.split(": ")[1] for line in str(err.value).splitlines()]
    assert keys == ["directory.url", "mailbox.root", "lmtp.connect", "map_push.listen"]


def test_a_default_written_out_is_no_setting_and_config_show_loads_back(tmp_path: Path) -> None:
    s = parse_settings(_with(GATEWAY_OK, "mailbox", {"root": "mail", "junk_folder": "Junk"}))
    assert s.mailbox.root == "mail"  # the defaults, as `config show` prints them: nothing of the role's
    with pytest.raises(ConfigError, match="mailbox.root: not used by the gateway role"):
        parse_settings(_with(GATEWAY_OK, "mailbox", {"root": "/srv/mail", "junk_folder": "Junk"}))
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[server]\nrole = "gateway"\n[lmtp]\nconnect = "10.0.0.2:2424"\n[map_push]\n'
                   'listen = "10.0.0.1:2426"\n')
    shown = subprocess.run([sys.executable, "-m", "mailbastion", "config", "show", "-c", str(cfg)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    assert load_settings(again).model_dump() == load_settings(cfg).model_dump()


def test_all_in_one_refuses_nothing() -> None:
    s = parse_settings({"directory": {"url": "sqlite:///d.db"}, "smtp": {"listen": ["127.0.0.1:2525"]},
                        "map_push": {"listen": "127.0.0.1:2426", "gateways": ["10.0.0.1:2426"]}})
    assert s.map_push.gateways == ["10.0.0.1:2426"]


def test_split_sections_validate_addresses() -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_settings({"map_push": {"gateways": ["10.0.0.1"]}})
    with pytest.raises(ConfigError, match=r"write an IPv6 address in brackets"):
        parse_settings({"map_push": {"listen": "fd00::1:2426"}})
    with pytest.raises(ConfigError, match="not a loopback address"):
        parse_settings({"metrics": {"listen": "10.0.0.1:9325"}})
    assert parse_settings({"metrics": {"listen": "[::1]:9325"}}).metrics.listen == "[::1]:9325"
    assert parse_settings({"metrics": {"allow_remote": True, "listen": "10.0.0.1:9325"}}).metrics.allow_remote


def test_the_gateway_has_no_directory_for_commands_to_open(tmp_path: Path) -> None:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text('[server]\nrole = "gateway"\n[lmtp]\nconnect = "10.0.0.2:2424"\n[map_push]\n'
                   'listen = "10.0.0.1:2426"\n')
    res = subprocess.run([sys.executable, "-m", "mailbastion", "account", "add", "x@example.test", "-c", str(cfg)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "this host is the gateway" in res.stderr and "run directory commands on the internal host" in res.stderr
    assert not list(tmp_path.glob("*.db"))  # no empty user database created on the DMZ host
    with pytest.raises(ConfigError):
        _ = load_settings(cfg).directory_url


def test_serve_refuses_a_role_the_file_is_not_for(tmp_path: Path) -> None:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text('[server]\nrole = "gateway"\nuser = "root"\n[lmtp]\nconnect = "10.0.0.2:2424"\n[map_push]\n'
                   'listen = "10.0.0.1:2426"\n')
    res = subprocess.run([sys.executable, "-m", "mailbastion", "serve", "-c", str(cfg), "--role", "internal"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "server.role is 'gateway': this configuration cannot run the internal role" in res.stderr


def test_weakened_names_root_and_remote_metrics() -> None:
    from mailbastion.config import weakened

    s = parse_settings({"server": {"user": "root"}, "metrics": {"allow_remote": True, "listen": "10.0.0.1:9325"}})
    found = " | ".join(weakened(s))
    assert 'server.user = "root"' in found and "metrics.allow_remote = true" in found
