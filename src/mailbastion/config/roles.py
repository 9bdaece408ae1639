"""Per-role rules of the one configuration schema: what a gateway or an internal host refuses, and needs.

One `Settings` class serves every role, so shared code (the TLS policy, the spool, the CLI) reads the same
keys everywhere. What differs is checked here, on the file as written (`server.role`):

- the gateway (the DMZ host) refuses every key that would put the directory, the mailboxes, passwords,
  the portal or the CA key on it, and the internal host's own certificates and listeners;
- the internal host refuses the MX listener's keys, relaying and outbound delivery, which only the gateway
  uses, and the gateway's own certificates;
- "all" (one machine) refuses nothing.

A refused key is reported as one line: the file, the key, and why it does not belong on this host. Keys
left out keep their defaults (the schema needs them to exist), but nothing of the role reads them; a key
written with its default value (as `config show` prints every key) is let through, so that what
`config show` prints on a gateway loads back there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailbastion.config.schema import Settings

_INSIDE = "belongs on the internal host"
_GATEWAY_REFUSES: dict[str, str] = {
    "directory.url": "the directory (accounts, password hashes) stays on the internal host; the gateway knows "
                     "our addresses from the recipient map the internal host pushes to it (map_push)",
    "mailbox": "mailboxes live on the internal host; the gateway delivers to its MDA over LMTP",
    "tls.ca_key": "the CA key stays on the internal host (`mailbastion pki issue-gateway` issues the "
                  "gateway's certificates there)",
    "tls.mda_cert": f"the MDA's certificate {_INSIDE}",
    "tls.mda_key": f"the MDA's key {_INSIDE}",
    "tls.internal_client_cert": f"the internal host's client certificate {_INSIDE}",
    "tls.internal_client_key": f"the internal host's client key {_INSIDE}",
    "lmtp.listen": "the MDA listens on the internal host; the gateway connects to lmtp.connect",
    "lmtp.require_client_cert": f"the MDA's listener setting {_INSIDE}",
    "lmtp.drain_timeout": f"the MDA's listener setting {_INSIDE}",
    "map_push.gateways": "the internal host pushes the map; the gateway listens (map_push.listen)",
    "relay_in.connect": "the internal host relays its outbound mail to the gateway; the gateway listens "
                        "(relay_in.listen)",
    "map_push.interval": "the internal host decides how often it pushes",
    "map_push.check_interval": "the internal host watches its directory",
    # Sections of the internal services: passwords are checked there, never in the DMZ.
    "portal": "the self-service portal (passwords) runs on the internal host",
    "imap": "IMAP (passwords, mailboxes) runs on the internal host",
    "submission": "submission authenticates users against the directory on the internal host",
    "training": "training records and phishing simulations live with the directory on the internal host",
    "aup": "the acceptable use policy and its acceptances live with the directory on the internal host",
    "phish_report": "reports of phishing are taken at submission and sweep the mailboxes of the internal host",
    "passwords": "password settings belong to the directory on the internal host",
}
_GATEWAY_ONLY = "is the gateway's"
_INTERNAL_REFUSES: dict[str, str] = {
    **{f"smtp.{key}": f"the MX listener {_GATEWAY_ONLY} (the internal host's MDA takes only its message and "
                      "line limits from [smtp])"
       for key in ("listen", "implicit_tls_listen", "banner", "proxy_protocol", "proxy_protocol_from",
                   "xclient_hosts", "greet_pause", "require_starttls", "postmaster_domain",
                   "max_connections_per_client", "max_hops")},
    "relay": f"relaying {_GATEWAY_ONLY}",
    "delivery": f"delivery to the Internet {_GATEWAY_ONLY}",
    "tls.gateway_client_cert": f"the LMTP client certificate {_GATEWAY_ONLY} (in its bundle)",
    "tls.gateway_client_key": f"the LMTP client key {_GATEWAY_ONLY} (in its bundle)",
    "tls.link_cert": f"the link certificate {_GATEWAY_ONLY} (in its bundle)",
    "tls.link_key": f"the link key {_GATEWAY_ONLY} (in its bundle)",
    "lmtp.connect": "the gateway connects to the MDA; the internal host listens (lmtp.listen)",
    "map_push.listen": "the gateway listens for the map; the internal host pushes (map_push.gateways)",
    "map_push.allow": "the gateway decides who may push",
    "map_push.max_age": "the gateway alarms on a stale map",
    "map_push.max_bytes": "the gateway limits the map it accepts",
    **{f"relay_in.{key}": f"the relay listener for outbound mail {_GATEWAY_ONLY} (the internal host connects "
                          "to it: relay_in.connect)"
       for key in ("listen", "client_names", "refuse_action", "max_recipients", "max_connections", "idle_timeout")},
}
REFUSED: dict[str, dict[str, str]] = {"gateway": _GATEWAY_REFUSES, "internal": _INTERNAL_REFUSES, "all": {}}


def _written(data: Mapping[str, Any], settings: Settings, dotted: str) -> list[str]:
    """The keys under `dotted` that the file sets to something other than the default: `dotted` itself for a
    key, each such key for a section; a section the schema does not have (yet) counts whenever written. A
    default written out (as `config show` prints every key) is no setting of the role's and is let through."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    section, _, key = dotted.partition(".")
    current, default = getattr(settings, section, None), getattr(_DEFAULTS, section, None)
    if current is None:
        return [dotted]
    if key:
        return [dotted] if getattr(current, key) != getattr(default, key) else []
    keys = node if isinstance(node, Mapping) else {}
    return [f"{section}.{k}" for k in keys if getattr(current, k, None) != getattr(default, k, None)] or (
        [] if isinstance(node, Mapping) else [dotted])


_DEFAULTS = Settings()


def refused_keys(data: Mapping[str, Any], role: str, settings: Settings | None = None) -> list[tuple[str, str]]:
    """(dotted key, why) for every key `data` sets to a non-default value that `role` refuses."""
    settings = settings if settings is not None else Settings.model_validate(data)
    return [(key, why) for dotted, why in REFUSED.get(role, {}).items() for key in _written(data, settings, dotted)]


def missing_keys(settings: Settings) -> list[tuple[str, str]]:
    """(dotted key, what to write) for what a role cannot run without."""
    out: list[tuple[str, str]] = []
    role = settings.server.role
    if role == "gateway":
        if not settings.lmtp.connect:
            out.append(("lmtp.connect", ('the gateway delivers to the internal host\'s MDA: set lmtp.connect = '
                                         '"HOST:PORT" (its lmtp.listen)')))
        if not settings.map_push.listen:
            out.append(("map_push.listen", ("the gateway learns our addresses from the internal host's pushes: "
                                            'set map_push.listen = "ADDRESS:2426" on the link')))
    elif role == "internal" and not settings.map_push.gateways:
        out.append(("map_push.gateways", ("the internal host pushes the recipient map to its gateway(s): set "
                                          'map_push.gateways = ["GATEWAY:2426"] (the gateway\'s map_push.listen)')))
    return out


def role_problems(data: Mapping[str, Any], settings: Settings) -> list[tuple[str, str]]:
    """Every refused or missing key of the role `settings.server.role`, as (key, message)."""
    role = settings.server.role
    refused = [(key, f"not used by the {role} role (server.role = \"{role}\"): {why}")
               for key, why in refused_keys(data, role, settings)]
    return refused + missing_keys(settings)


__all__ = ["REFUSED", "missing_keys", "refused_keys", "role_problems"]
