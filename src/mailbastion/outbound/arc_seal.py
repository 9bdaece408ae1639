"""An ARC seal (RFC 8617) of our verdict on a copy we forward outside our domains.

    sealer = ArcSealer(KeyStore(settings.path(settings.auth.dkim_keys_dir)), authserv_id="mx.example.org")
    sealed = sealer.seal(raw, "example.org")    # ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results
                                                # on top of raw; raw itself when it cannot be sealed

Why: the forwarded copy reaches its next hop from our address with the original From, so SPF cannot
pass for it and a DKIM signature that a list footer or our own header edits broke cannot either. The ARC
set carries what we saw when it reached us (the Authentication-Results our gateway wrote, under our
authserv-id, become the ARC-Authentication-Results), sealed by our domain, so a receiver that trusts us
as a sealer (Gmail, Microsoft 365, our own `auth.trusted_arc_sealers`) can apply our result instead.

The signing key is the active rsa-sha256 DKIM key of the sealing domain (RFC 8617 §4.1.4: ARC uses the
DKIM key records; RSA only, as every ARC verifier knows it); a split gateway holds a pushed copy of it
(outbound/sealing_keys.py). No Authentication-Results of ours, no active
RSA key, or a previous ARC chain that our results do not cover (dkimpy then ends the chain): the copy is
sent unsealed, and `seal` says so in `last_reason`. Never raises for a message; ConfigError for a key
file that cannot be used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import dkim  # type: ignore[import-untyped]

from mailbastion.auth.keys import KeyStore
from mailbastion.core.errors import ConfigError
from mailbastion.core.header_block import HeaderBlock

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = ["ARC_SIGNED_HEADERS", "ArcSealer"]

log = logging.getLogger("mailbastion.outbound.arc")
_QUIET = logging.getLogger("mailbastion.outbound.arc.dkimpy")

ARC_SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to", b"references",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"dkim-signature",
)


class ArcSealer:
    def __init__(self, keys: KeyStore, *, authserv_id: str, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.authserv_id = authserv_id
        self.clock = clock
        self.last_reason = ""
        self._cache: dict[str, tuple[float, tuple[str, bytes] | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ArcSealer:
        """Sealing with this host's keys: the DKIM key store, or on a split gateway the copy of the sealing
        keys the internal host pushes (outbound/sealing_keys.py)."""
        from mailbastion.outbound.sealing_keys import sealing_store

        return cls(sealing_store(settings), authserv_id=settings.auth.authserv_id or settings.server.hostname)

    def _key(self, domain: str) -> tuple[str, bytes] | None:
        """(selector, PEM) of the domain's active RSA key; re-read when the key state file changed."""
        state = self.keys.root / domain / "state.json"
        try:
            mtime = state.stat().st_mtime
        except FileNotFoundError:
            return None
        cached = self._cache.get(domain)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        found = next(((k.selector, self.keys.private_key(domain, k.selector)) for k in self.keys.active(domain)
                      if k.algorithm == "rsa-sha256"), None)
        self._cache[domain] = (mtime, found)
        return found

    def seal(self, raw: bytes, domain: str) -> bytes:
        """`raw` with the next ARC set on top, or `raw` unchanged (reason in `last_reason`)."""
        domain = domain.lower().rstrip(".")
        key = self._key(domain)
        if key is None:
            self.last_reason = f"no active rsa-sha256 DKIM key for {domain}"
            return raw
        selector, private = key
        present = {f.name for f in HeaderBlock.parse(raw).fields}
        include = [h for h in ARC_SIGNED_HEADERS if h.decode() in present]
        if b"from" not in include:
            self.last_reason = "no From field"
            return raw
        try:
            fields = dkim.arc_sign(raw, selector.encode(), domain.encode(), private, self.authserv_id.encode(),
                                   include_headers=include, timestamp=int(self.clock()), logger=_QUIET)
        except dkim.KeyFormatError as exc:
            raise ConfigError(f"DKIM key {selector} of {domain} unusable for ARC: {exc}") from None
        except (dkim.DKIMException, ValueError, UnicodeDecodeError) as exc:
            self.last_reason = f"dkimpy: {exc}"
            return raw
        if not fields:
            self.last_reason = f"no Authentication-Results of {self.authserv_id} covering the chain"
            return raw
        self.last_reason = ""
        return b"".join(fields) + raw
