"""`[srs]`: mail we forward outside our domains (an alias with an outside target, a leaver's forward to a
successor elsewhere): the Sender Rewriting Scheme for its envelope sender and an ARC seal of our verdict
(delivery/forwarding.py, outbound/srs.py, outbound/arc_seal.py)."""

from __future__ import annotations

from pydantic import Field

from mailbastion.config.sections.base import Section


class SrsSection(Section):
    enabled: bool = True  # false: outside alias targets are not forwarded at all (logged), as before
    # The domain of our SRS addresses; empty: the forwarding alias's own domain. It must be one of ours
    # (the MX takes the bounces that come back to it).
    domain: str = ""
    # Bounces to an SRS address older than this are refused (550 5.1.1), like forged ones.
    max_age_days: int = Field(21, ge=1, le=365)
    # The HMAC secret (base64), below data_dir, 0600; made by `mailbastion init` (or at the first start).
    # Every gateway of a site must hold the same one. Never in this file.
    key_file: str = "srs.key"
    # Seal the forwarded copy with ARC (RFC 8617): our Authentication-Results become its
    # ARC-Authentication-Results, signed with the active RSA DKIM key of `arc_domain` (empty: the SRS domain).
    arc_seal: bool = True
    arc_domain: str = ""
    # On a split gateway (one with map_push.listen): where the sealing keys the internal host pushes are kept
    # (below data_dir, 0700; outbound/sealing_keys.py). The internal host's arc_seal/arc_domain choose them.
    arc_keys_dir: str = "arc-keys"


__all__ = ["SrsSection"]
