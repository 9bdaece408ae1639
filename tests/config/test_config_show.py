"""`mailbastion config show` prints a configuration that loads back to the same settings, and marks the
keys that only a restart applies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.config import Settings, effective, load_settings
from mailbastion.config.reload import needs_restart

# Every section of the schema, each with at least one key away from its default; arrays of tables with
# several entries; and a key whose "unset" (None) differs from its default.
EVERY_SECTION = """\
[server]
hostname = "mx.example.org"
workers = 2
log_level = "debug"
log_file = "log/mailbastion.log"
[smtp]
listen = ["127.0.0.1:2526", "[::1]:2526"]
banner = "ESMTP \\"quoted\\" \u00e9t\u00e9"
max_recipients = 50
xclient_hosts = ["127.0.0.2"]
[tls]
min_version = "TLSv1.3"
cert = "tls/public.crt"
[relay]
networks = ["10.1.0.0/16", "fd00::/8"]
[lmtp]
connect = "10.0.0.5:2424"
timeout = 30.5
[spool]
dir = "/var/spool/mailbastion"
min_backoff_seconds = 60
[directory]
url = "postgresql+psycopg://mail@db.internal/mail"
[audit]
url = "sqlite:///audit-log.db"

[encryption]
at_rest = ["alice@example.org", "example.net"]
without_key = "pickup"

[encryption.national_id_patterns]
"fr_nir" = '\\b[12]\\d{14}\\b'

[relay_in]
listen = ["127.0.0.1:2526"]
client_names = ["internal"]

[outbound]
dnssec_resolver = "127.0.0.1:5353"

[outbound.tls_policy]
"partner.example" = "verify"

[map_push]
gateways = ["10.77.0.1:2426", "[fd00::1]:2426"]
interval = 60.5
[metrics]
listen = "127.0.0.1:9325"
[firewall]
admin_from = ["192.0.2.0/28"]

[mailbox]
default_quota_bytes = 0
recipient_delimiter = "-"
[dns]
nameservers = ["127.0.0.53"]
port = 5353
[delivery]
relayhost = "smarthost.example.net:587"
[auth]
trusted_arc_sealers = ["lists.example.net"]
sign_algorithms = ["ed25519-sha256"]
report_address = "dmarc@example.org"
[antivirus]
workstation_engine = ""
required = ["clamav"]
[antivirus.clamav]
address = "127.0.0.1:3310"
[antivirus.yara]
rule_dirs = ["yara", "more rules"]
max_signature_age_hours = 48.0
[antivirus.attachments]
allowed_types = ["java"]
[antivirus.archives]
max_depth = 2
[antivirus.icap]
url = "icap://127.0.0.1:1344/avscan"
vendor = "sophos"
[antivirus.quarantine]
audit_url = "postgresql+psycopg://audit@db.internal/audit"
retention_days = 7
[spam]
enabled = true
[spam.classifier]
spam_probability = 0.8
[spam.rules]
extra_domains = ["brand.example"]
[spam.dnsbl]
timeout = 1.5
[[spam.dnsbl.client_lists]]
zone = "zen.spamhaus.org"
symbol = "RBL_SPAMHAUS_ZEN"
answers = ["127.0.0.2", "127.0.0.3"]
[[spam.dnsbl.client_lists]]
zone = "bl.spamcop.net"
symbol = "RBL_SPAMCOP"
[[spam.dnsbl.domain_lists]]
zone = "multi.surbl.org"
symbol = "URIBL_SURBL"
[spam.ratelimit]
backend = "sqlite"
[spam.greylist]
enabled = true
[spam.external]
mode = "subject"
subject_tag = "[EXT]"
[spam.report]
trusted_symbols = ["DMARC_POLICY_ALLOW", "R_DKIM_ALLOW"]
[portal]
listen = "127.0.0.1:9443"
public_url = "https://mail.example.org"
totp_roles = ["administrator"]
digest_time = ""
[imap]
listen = ["127.0.0.1:143", "[::1]:143"]
listen_tls = ["0.0.0.0:993"]
mail_user = "vmail"
kick_interval_seconds = 30.0
[imap.learn]
max_per_hour = 50
[login]
max_failures_per_account = 5
lockout_seconds = 600

[lifecycle]
check_interval_seconds = 30
leaver_policy = "forward"
forward_days = 14
archive_dir = "/srv/archive"

[srs]
domain = "example.org"
max_age_days = 10
key_file = "/srv/srs.key"

[submission]
listen = ["127.0.0.1:3587"]
listen_tls = []

[submission.limits]
messages_per_hour = 50

[submission.hijack]
fanout_recipients = 40
alert = "log"

[aup]
grace_days = 7
enforce = "notify"
notice_sender = "policy@example.org"
[phish_report]
match_window_days = 7
ignore_url_hosts = ["www.w3.org"]
[training]
mandatory = ["phishing", "reporting"]
due_days = 14
overdue_every_days = 0
"""


def show(config: Path, *extra: str) -> str:
    result = CliRunner().invoke(main_group, ["config", "show", "-c", str(config), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def round_trip(config: Path) -> tuple[Settings, Settings]:
    original = load_settings(config)
    printed = config.with_name("shown.toml")
    printed.write_text(show(config), encoding="utf-8")
    return original, load_settings(printed)


def test_every_section_round_trips_through_the_loader(tmp_path: Path) -> None:
    config = tmp_path / "mailbastion.toml"
    config.write_text(EVERY_SECTION, encoding="utf-8")
    assert set(tomllib.loads(EVERY_SECTION)) == set(Settings.model_fields)  # the test covers every section
    original, back = round_trip(config)
    assert effective(back) == effective(original)
    assert back.spam.dnsbl.client_lists[1].zone == "bl.spamcop.net"  # tables, not a dict printed as a string
    assert back.antivirus.workstation_engine is None and back.antivirus.clamav.address == "127.0.0.1:3310"


def test_init_configuration_round_trips(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "mailbastion", "init", "--dir", str(tmp_path / "var"),
                          "--domain", "example.test"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    original, back = round_trip(tmp_path / "var" / "mailbastion.toml")
    assert effective(back) == effective(original)
    assert back.model_dump() == original.model_dump()  # unmasked, too


def test_keys_needing_a_restart_are_marked(tmp_path: Path) -> None:
    config = tmp_path / "mailbastion.toml"
    config.write_text(EVERY_SECTION, encoding="utf-8")
    text = show(config)
    assert "[smtp]  # restart\n" in text and "[antivirus.quarantine]  # restart\n" in text
    assert 'min_version = "TLSv1.3"  # restart\n' in text and 'cert = "tls/public.crt"\n' in text
    assert '[spam.external]\nmode = "subject"\n' in text  # a reload applies it: no mark
    assert 'workstation_engine = ""  # unset\n' in text  # unset, not the default "microsoft"
    assert needs_restart("smtp.listen") and not needs_restart("spam.external.mode")
    plain = show(config, "--no-marks")
    assert "# restart" not in plain and tomllib.loads(plain) == tomllib.loads(text)
