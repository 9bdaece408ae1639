"""DKIM signing (RFC 6376) of our outgoing mail with every active key of the From domain.

    signer = DkimSigner(KeyStore(settings.path(settings.auth.dkim_keys_dir)))
    headers = signer.sign(raw)             # b"DKIM-Signature: ...\r\n" lines to prepend; b"" when not ours
    headers = await signer.sign_async(raw) # the same, hashing large bodies off the event loop
    signed = signer.sign_message(raw)      # the message to send: signatures on top of what they sign

Dual signing (RFC 8463 §1): an rsa-sha256 signature for every verifier and an ed25519-sha256 one for
those that know it. From is over-signed (listed once more than present) so no From can be added
after signing (RFC 6376 §8.15). Relaxed/relaxed canonicalization survives benign re-folding.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

import dkim  # type: ignore[import-untyped]

from mailbastion.auth.dkim_verify import verifiable_message
from mailbastion.auth.from_header import analyze_from
from mailbastion.auth.keys import KeyInfo, KeyStore
from mailbastion.core.errors import ConfigError
from mailbastion.core.header_block import HeaderBlock

THREAD_BYTES = 256 * 1024
SIGNED_HEADERS = (
    b"from", b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"in-reply-to", b"references",
    b"list-id", b"list-unsubscribe",
)
_QUIET = logging.getLogger("mailbastion.auth.dkimpy")


class DkimSigner:
    def __init__(self, store: KeyStore, *, domains: Iterable[str] = (),
                 algorithms: Iterable[str] = ("rsa-sha256", "ed25519-sha256")) -> None:
        self.store = store
        self.allowed = {d.lower().rstrip(".") for d in domains}
        self.algorithms = tuple(algorithms)
        self._keys: dict[str, list[tuple[KeyInfo, bytes]]] = {}
        self._stamp: dict[str, float] = {}

    def domains(self) -> list[str]:
        """Our domains that have an active key (and are configured for signing, when a list is set)."""
        return [d for d in self.store.domains()
                if (not self.allowed or d in self.allowed) and self._active(d)]

    def _active(self, domain: str) -> list[tuple[KeyInfo, bytes]]:
        state = self.store.root / domain / "state.json"
        try:
            mtime = state.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._stamp.get(domain) != mtime:  # a rotation switched keys: reload
            keys = [k for k in self.store.active(domain) if k.algorithm in self.algorithms]
            keys.sort(key=lambda k: self.algorithms.index(k.algorithm))
            self._keys[domain] = [(k, self.store.private_key(domain, k.selector)) for k in keys]
            self._stamp[domain] = mtime
        return self._keys.get(domain, [])

    def sign(self, raw: bytes, domain: str | None = None) -> bytes:
        """The DKIM-Signature fields to prepend (CRLF line ends), or b"" when `domain` is not ours.

        `domain` defaults to the From domain. Raises ConfigError if a key file cannot be used."""
        block = HeaderBlock.parse(raw)
        if domain is None:
            domain = analyze_from(block).domain
        if not domain:
            return b""
        domain = domain.lower().rstrip(".")
        if self.allowed and domain not in self.allowed:
            return b""
        out = b""
        # dkimpy's own splitter raises on a header section that starts folded or holds a line that is
        # no field; it signs the fields our parser found (those lines are no fields: nothing to sign).
        signable = verifiable_message(raw, block)
        for info, private in self._active(domain):
            try:
                field = dkim.sign(signable, info.selector.encode(), domain.encode(), private,
                                  signature_algorithm=info.algorithm.encode(),
                                  canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS),
                                  logger=_QUIET, linesep=b"\r\n")
            except dkim.DKIMException as exc:
                raise ConfigError(f"DKIM key {info.selector} of {domain} unusable: {exc}") from None
            out += field
        return out

    def sign_message(self, raw: bytes, domain: str | None = None) -> bytes:
        """The message as it should leave: its signatures prepended to the fields they sign.

        Malformed lines of the header section (one that starts folded, a line that is no field) are
        dropped: prepending anything to a section that starts folded makes that line a continuation
        of the new field, which would break the signature for every verifier. Not our fields to keep."""
        signable = verifiable_message(raw)
        return self.sign(signable, domain) + signable

    async def sign_async(self, raw: bytes, domain: str | None = None) -> bytes:
        if len(raw) > THREAD_BYTES:
            return await asyncio.to_thread(self.sign, raw, domain)
        return self.sign(raw, domain)


def signer_for(keys_dir: Path, domains: Iterable[str] = ()) -> DkimSigner:
    return DkimSigner(KeyStore(keys_dir), domains=domains)


__all__ = ["DkimSigner", "signer_for"]
