"""What a reload (SIGHUP) applies, and which settings only a restart changes.

    restart_needed(old, new)   # ["smtp.listen"]: changed keys the running server keeps until a restart
    applied_on_reload(old, new) # ["spam.external.mode"]: changed keys a reload puts into effect
    needs_restart("smtp.listen") -> True

The contract the running server keeps on SIGHUP (`apps/process.py`, the roles, `apps/pipeline.py`'s
`PolicyStack`, and each acceptor process in `apps/workers.py`):
- the features (gateway checks, sender authentication, anti-virus, spam) are built again from the new
  settings and their pipeline swapped in, so every `auth.*`, `spam.*` and `antivirus.*` key applies to the
  next message (checks read their settings when they are built: reusing the old features re-reads only
  the score table, which is why `spam.external.mode` used to need a restart);
- submission's sending limits and hijack detector (`submission.limits`, `submission.hijack`), and the
  failed-login throttle (`login`) of submission and IMAP, take the new values; the counts so far are kept;
- the gateway's certificate (`tls.cert`, `tls.key`) and the MDA's (`tls.mda_cert`, `tls.mda_key`) are
  re-read for new connections (as are `local.d/scores.toml` and the certificate files themselves, which
  are not keys of the configuration).
Everything else is read once when the process starts: listeners and their limits, the relay networks
(the SMTP edge holds them), TLS versions and the private CA (both ends of the LMTP link hold it), the
spool and queue, the directory, the mailboxes, the DNS resolver, outbound delivery, logging and the
quarantine store. `config show` marks those keys `# restart`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from mailbastion.config.schema import Settings

# Dotted prefixes of the keys a reload applies; a longer entry of RESTART_ONLY inside one of them wins.
APPLIED_ON_RELOAD: tuple[str, ...] = (
    "auth", "spam", "antivirus",
    "tls.cert", "tls.key", "tls.mda_cert", "tls.mda_key",
    "imap", "login",  # DovecotService.reload rewrites Dovecot's configuration and reloads it
    "submission.limits", "submission.hijack",  # SubmissionRole.reload: the meter takes the new values
)
# The quarantine store is built once per process (the gateway hands it to its handler at start); Dovecot's
# base folder and mail user, and whether it runs at all, are fixed while it runs.
RESTART_ONLY: tuple[str, ...] = ("antivirus.quarantine", "imap.enabled", "imap.base_dir", "imap.mail_user")

RESTART = "restart"


def _matches(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def needs_restart(key: str) -> bool:
    """True when a running server keeps the old value of the dotted `key` until it restarts."""
    if any(_matches(key, p) for p in RESTART_ONLY):
        return True
    return not any(_matches(key, p) for p in APPLIED_ON_RELOAD)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of nested tables by dotted key; an array (of tables too) is one leaf."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _plain(settings: Settings) -> dict[str, Any]:
    return json.loads(settings.model_dump_json())  # type: ignore[no-any-return]


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Every dotted key whose effective value differs (secrets included: this is not for display)."""
    a, b = flatten(_plain(old)), flatten(_plain(new))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """Changed keys that a reload does not apply: the runtime logs them so the administrator restarts."""
    return [k for k in changed_keys(old, new) if needs_restart(k)]


def applied_on_reload(old: Settings, new: Settings) -> list[str]:
    return [k for k in changed_keys(old, new) if not needs_restart(k)]


def restart_marks(data: Mapping[str, Any]) -> dict[str, str]:
    """`{dotted key or table: "restart"}` for `toml_writer.dumps(comments=...)`: a table whose every key
    needs a restart is marked once on its header, otherwise each such key is marked."""
    marks: dict[str, str] = {}

    def leaves(prefix: str, node: Mapping[str, Any]) -> Iterable[str]:
        return flatten(node, prefix).keys()

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, Mapping):
                keys = list(leaves(key, v))
                if keys and all(needs_restart(x) for x in keys):
                    marks[key] = RESTART
                else:
                    walk(key, v)
            elif needs_restart(key):
                marks[key] = RESTART

    walk("", data)
    return marks


__all__ = ["APPLIED_ON_RELOAD", "RESTART_ONLY", "applied_on_reload", "changed_keys", "flatten", "needs_restart",
           "restart_marks", "restart_needed"]
