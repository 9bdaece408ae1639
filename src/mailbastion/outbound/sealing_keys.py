"""The ARC sealing keys of a split deployment: the internal host pushes them to its gateways.

    keys = sealing_keys(settings)              # internal host: {domain: (selector, PEM)}
    data = encode_keys(keys)                   # sent on the map push link as `KEYS <length>` (apps/map_push.py)
    changed = gateway_store(gw_settings).hold_only(decode_keys(data))   # the gateway's copy
    ArcSealer(sealing_store(settings), ...)    # reads the store that fits the host

Why: on a split the forwarded copies leave from the DMZ gateway, which seals them (delivery/forwarding.py),
but DKIM keys are made, published and rotated on the internal host (`dkim keygen`, `dns check`). So the
internal host pushes the active RSA key of each sealing domain with the recipient map, whenever it changes,
and the gateway holds exactly those, in `srs.arc_keys_dir` (the KeyStore layout, 0700/0600). A rotation
reaches the gateway within `map_push.check_interval`, so the seal follows the key `dns check` activated.

Which keys (the internal host's settings): none when `srs.arc_seal` is false (the gateway then removes
what it held, and forwarded copies go unsealed); the key of `srs.arc_domain` when set, else of
`srs.domain` when set, else of every domain with an active RSA key. The cost: the DMZ holds an RSA key
that can sign for those domains. A gateway already sends our mail from the address SPF names, so a host
that takes it over can pass DMARC for us with or without it; docs/deployment.md says how to keep keys off it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from mailbastion.auth.keys import KeyStore

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = ["FORMAT", "MAX_KEYS", "decode_keys", "encode_keys", "gateway_store", "sealing_keys", "sealing_store"]

FORMAT = "mailbastion-sealing-keys/1"
MAX_KEYS = 500
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def sealing_keys(settings: Settings) -> dict[str, tuple[str, bytes]]:
    """The internal host's sealing keys for its gateways: {domain: (selector, PEM)} (blocking: reads files)."""
    s = settings.srs
    if not s.arc_seal:
        return {}
    store = KeyStore(settings.path(settings.auth.dkim_keys_dir))
    chosen = (s.arc_domain or s.domain).lower().rstrip(".")
    out: dict[str, tuple[str, bytes]] = {}
    for domain in [chosen] if chosen else store.domains():
        key = next((k for k in store.active(domain) if k.algorithm == "rsa-sha256"), None)
        if key is not None:
            out[domain] = (key.selector, store.private_key(domain, key.selector))
    return out


def encode_keys(keys: dict[str, tuple[str, bytes]]) -> bytes:
    return json.dumps({"format": FORMAT, "keys": [{"domain": d, "selector": sel, "pem": pem.decode("ascii")}
                                                  for d, (sel, pem) in sorted(keys.items())]}).encode()


def decode_keys(data: bytes) -> dict[str, tuple[str, bytes]]:
    """What `encode_keys` wrote, checked (names, count, PEM framing). Raises ValueError saying what is wrong."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("keys"), list):
        raise ValueError(f"not a {FORMAT} document")
    if len(doc["keys"]) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    out: dict[str, tuple[str, bytes]] = {}
    for item in doc["keys"]:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("domain", "selector", "pem")):
            raise ValueError("each key needs domain, selector and pem")
        domain, selector, pem = item["domain"], item["selector"], item["pem"]
        if not _DOMAIN.match(domain) or not _SELECTOR.match(selector) or domain in out:
            raise ValueError(f"bad or repeated domain or selector: {domain!r} {selector!r}")
        if not pem.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in pem:
            raise ValueError(f"the key of {domain} is not a PEM private key")
        out[domain] = (selector, pem.encode("ascii"))
    return out


def gateway_store(settings: Settings) -> KeyStore:
    """Where a gateway that receives the map push keeps the pushed sealing keys."""
    return KeyStore(settings.path(settings.srs.arc_keys_dir))


def sealing_store(settings: Settings) -> KeyStore:
    """The keys a sealer of this host reads: the pushed copy on a gateway that receives the map push (a split
    gateway), the DKIM key store itself everywhere else (all-in-one)."""
    return gateway_store(settings) if settings.map_push.listen else KeyStore(settings.path(settings.auth.dkim_keys_dir))
