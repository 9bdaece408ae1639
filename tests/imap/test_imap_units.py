"""Pure parts of the IMAP service: the configuration Dovecot gets, the auth socket's protocol, the learning
rate limit, the client set-up documents, the settings. (The real Dovecot is in the other test modules.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mailbastion.config import parse_settings
from mailbastion.core.errors import ConfigError
from mailbastion.imap import __all__ as imap_all
from mailbastion.imap.auth_socket import escape, line, unescape
from mailbastion.imap.client_setup import (
    autoconfig_xml,
    autodiscover_request_address,
    autodiscover_xml,
    client_settings,
)
from mailbastion.imap.dovecot_config import render
from mailbastion.imap.layout import MAX_BASE_DIR, DovecotLayout, MailUser
from mailbastion.imap.learn_socket import LearnRateLimit
from mailbastion.tls_policy import SERVER_GROUP, TLS12_CIPHERS

USER = MailUser("mailbastion", 999, 995, rootless=False)


def _conf(**data: object) -> str:
    settings = parse_settings({"server": {"hostname": "mail.example.org", "data_dir": "/srv/mb"}, **data})
    files = render(settings, DovecotLayout.from_settings(settings), USER)
    return files[Path("/srv/mb/imap/dovecot.conf")]


def test_dovecot_gets_the_one_tls_policy_and_our_listeners() -> None:
    conf = _conf(imap={"listen": ["127.0.0.1:143"], "listen_tls": ["192.0.2.1:993", "[::1]:993"]},
                 tls={"min_version": "TLSv1.3"})
    assert f"ssl_cipher_list = {TLS12_CIPHERS}\n" in conf and f"ssl_curve_list = {SERVER_GROUP}\n" in conf
    assert "ssl_min_protocol = TLSv1.3\n" in conf and "ssl = required\n" in conf
    assert "ssl_options = no_compression no_ticket\n" in conf and "ssl_prefer_server_ciphers = no\n" in conf
    assert "ssl_cert = </srv/mb/tls/gateway.crt\n" in conf and "ssl_key = </srv/mb/tls/gateway.key\n" in conf
    assert "inet_listener imap {\n    address = 127.0.0.1\n    port = 143\n  }" in conf
    assert "inet_listener imaps {\n    address = 192.0.2.1\n    port = 993\n    ssl = yes" in conf
    assert "inet_listener imaps_1 {\n    address = ::1\n    port = 993\n    ssl = yes" in conf
    assert "/etc/dovecot" not in conf.replace("Nothing here comes from /etc/dovecot", "")


def test_dovecot_asks_us_for_passwords_without_a_cache_and_reads_mail_as_the_mail_user_only() -> None:
    conf = _conf()
    assert "passdb {\n  driver = lua\n  args = file=/srv/mb/imap/auth.lua blocking=yes\n}" in conf
    assert "auth_cache_size = 0\n" in conf and "disable_plaintext_auth = yes\n" in conf
    assert "first_valid_uid = 999\nlast_valid_uid = 999\n" in conf
    assert "default_login_user = dovenull\n" in conf and "chroot =" not in conf


def test_dovecot_keeps_its_auth_penalty_unless_told_not_to() -> None:
    assert "anvil-auth-penalty" not in _conf() and "service anvil" not in _conf()
    conf = _conf(imap={"auth_penalty": False})
    assert "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}" in conf
    rootless = render(parse_settings({"server": {"data_dir": "/srv/mb"}, "imap": {"auth_penalty": False}}),
                      DovecotLayout.from_settings(parse_settings({"server": {"data_dir": "/srv/mb"}})),
                      MailUser("me", 1000, 1000, rootless=True))[Path("/srv/mb/imap/dovecot.conf")]
    assert "service anvil {\n  chroot =\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}" in rootless


def test_folders_quota_and_learning_follow_the_mailbox_settings() -> None:
    conf = _conf(mailbox={"junk_folder": "Spam", "default_quota_bytes": 5000})
    for name in ("Drafts", "Sent", "Archive", "Trash"):
        assert f'mailbox "{name}" {{\n    special_use = \\{name}\n    auto = subscribe' in conf
    assert 'mailbox "Spam" {\n    special_use = \\Junk' in conf
    assert "quota_rule = *:bytes=5000\n" in conf and "quota = maildir:User quota\n" in conf
    assert "imapsieve_mailbox1_name = Spam\n" in conf and "imapsieve_mailbox2_from = Spam\n" in conf
    assert "imapsieve_mailbox1_name" not in _conf(imap={"learn": {"enabled": False}})


def test_rootless_dovecot_runs_as_one_user_without_chroot() -> None:
    settings = parse_settings({"server": {"data_dir": "/srv/mb"}})
    me = MailUser("mailbastion", 999, 995, rootless=True)
    conf = render(settings, DovecotLayout.from_settings(settings), me)[Path("/srv/mb/imap/dovecot.conf")]
    assert "default_internal_user = mailbastion\n" in conf and "default_login_user = mailbastion\n" in conf
    assert "service anvil {\n  chroot =\n}" in conf and "  chroot =\n" in conf


def test_a_base_dir_too_long_for_socket_paths_is_replaced(tmp_path: Path) -> None:
    settings = parse_settings({"server": {"data_dir": "/srv/" + "x" * 80}})
    layout = DovecotLayout.from_settings(settings)
    assert len(str(layout.base_dir)) <= MAX_BASE_DIR
    assert DovecotLayout.from_settings(parse_settings({"server": {"data_dir": "/srv/mb"}})).base_dir == \
        Path("/srv/mb/imap/run")


def test_auth_protocol_escapes_every_separator() -> None:
    for value in ["plain", "tab\tnew\nline\rback\\slash", "", "\\t literal"]:
        assert unescape(escape(value)) == value
        assert "\t" not in escape(value) and "\n" not in escape(value)
    assert line("OK", "home=/a b\tc") == b"OK\thome=/a b\\tc\n"


def test_settings_refuse_bad_listeners_and_root_as_mail_user() -> None:
    with pytest.raises(ConfigError, match="imap.listen"):
        parse_settings({"imap": {"listen": ["143"]}})
    with pytest.raises(ConfigError, match="imap.mail_user"):
        parse_settings({"imap": {"mail_user": "root"}})
    with pytest.raises(ConfigError, match="imap.kick_interval_seconds"):
        parse_settings({"imap": {"kick_interval_seconds": 120}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_settings({"login": {"max_failures": 3}})


def test_learning_rate_limit_is_per_user_and_slides() -> None:
    now = [0.0]
    limit = LearnRateLimit(2, clock=lambda: now[0])
    assert limit.allow("a") and limit.allow("a") and not limit.allow("a") and limit.allow("b")
    now[0] = 3601
    assert limit.allow("a")


def test_client_settings_and_documents() -> None:
    settings = parse_settings({"server": {"hostname": "mail.example.org"},
                               "imap": {"listen": ["0.0.0.0:143"], "listen_tls": ["0.0.0.0:993"]}})
    client = client_settings(settings, "Alice@Example.org")
    assert client.username == "alice@example.org"
    assert [(e.protocol, e.port, e.security, e.built) for e in client.endpoints] == [
        ("imap", 993, "tls", True), ("imap", 143, "starttls", True),
        ("submission", 2465, "tls", True), ("submission", 2587, "starttls", True)]  # [submission] (issue 10)
    assert "not built yet" not in "\n".join(client.lines())

    config = ET.fromstring(autoconfig_xml(settings, "example.org"))
    servers = config.findall("./emailProvider/incomingServer")
    assert [(s.findtext("hostname"), s.findtext("port"), s.findtext("socketType")) for s in servers] == [
        ("mail.example.org", "993", "SSL"), ("mail.example.org", "143", "STARTTLS")]
    outgoing = config.findall("./emailProvider/outgoingServer")
    assert [(s.findtext("port"), s.findtext("socketType")) for s in outgoing] == [("2465", "SSL"), ("2587", "STARTTLS")]
    assert servers[0].findtext("username") == "%EMAILADDRESS%"

    ns = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
    pox = ET.fromstring(autodiscover_xml(settings, "alice@example.org"))
    protocol, smtp = pox.iter(f"{ns}Protocol")  # IMAP, then submission (issue 10)
    assert [protocol.findtext(f"{ns}{k}") for k in ("Type", "Server", "Port", "LoginName", "SSL")] == [
        "IMAP", "mail.example.org", "993", "alice@example.org", "on"]
    assert [smtp.findtext(f"{ns}{k}") for k in ("Type", "Port")] == ["SMTP", "2465"]

    request = (b'<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/'
               b'outlook/requestschema/2006"><Request><EMailAddress>Alice@Example.org</EMailAddress>'
               b"<AcceptableResponseSchema>x</AcceptableResponseSchema></Request></Autodiscover>")
    assert autodiscover_request_address(request) == "alice@example.org"
    with pytest.raises(ValueError):
        autodiscover_request_address(b"<Autodiscover/>")


def test_public_names() -> None:
    from mailbastion import imap

    assert sorted(imap_all) == ["ClientSettings", "DovecotService", "autoconfig_xml", "autodiscover_xml",
                                "client_settings"]
    for name in imap_all:
        assert getattr(imap, name) is not None
