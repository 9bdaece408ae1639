"""config/reload.py: which changed keys a reload applies and which need a restart."""

from __future__ import annotations

from mailbastion.config import parse_settings
from mailbastion.config.reload import applied_on_reload, changed_keys, needs_restart, restart_marks, restart_needed


def test_changed_keys_split_into_reload_and_restart() -> None:
    old = parse_settings({})
    new = parse_settings({
        "smtp": {"listen": ["127.0.0.1:2600"]},
        "spam": {"external": {"mode": "subject"}, "dnsbl": {"client_lists": []}},
        "tls": {"cert": "tls/new.crt", "min_version": "TLSv1.3"},
        "antivirus": {"quarantine": {"dir": "q2"}, "yara": {"enabled": False}},
    })
    assert changed_keys(old, new) == ["antivirus.quarantine.dir", "antivirus.yara.enabled", "smtp.listen",
                                      "spam.dnsbl.client_lists", "spam.external.mode", "tls.cert",
                                      "tls.min_version"]
    assert restart_needed(old, new) == ["antivirus.quarantine.dir", "smtp.listen", "tls.min_version"]
    assert applied_on_reload(old, new) == ["antivirus.yara.enabled", "spam.dnsbl.client_lists",
                                           "spam.external.mode", "tls.cert"]
    assert restart_needed(old, old) == []


def test_prefixes_match_whole_key_parts() -> None:
    assert not needs_restart("tls.key") and needs_restart("tls.key_extra")  # "tls.key" is not a prefix of it
    assert needs_restart("antivirus.quarantine") and not needs_restart("antivirus")


def test_marks_name_a_whole_table_once() -> None:
    marks = restart_marks({"smtp": {"listen": [], "banner": "x"}, "tls": {"cert": "a", "ca": "b"},
                           "spam": {"enabled": True}})
    assert marks == {"smtp": "restart", "tls.ca": "restart"}
