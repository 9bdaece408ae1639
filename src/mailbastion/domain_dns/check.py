"""`dns check`: look our domain's live records up and say what is missing, wrong or weak.

    findings = await DomainChecker(resolver, store).check("example.org", mx_host="mx.example.org")
    for f in findings: print(f.level, f.purpose, f.message)    # level: ok | missing | wrong | weak | info

Weak is what works but protects less than it should: SPF ~all or ?all, DMARC p=none for too long, a
DKIM key under 2048 bits. A pending DKIM key whose record is live is switched to (with `switch=True`),
and the old selector's removal date is reported.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mailbastion.auth.dmarc import parse_record
from mailbastion.auth.keys import KeyStore
from mailbastion.auth.spf import SpfEvaluator
from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver

MAX_SPF_LOOKUPS = 10  # RFC 7208 §4.6.4
_LOOKUP_TERMS = re.compile(r"^[+?~-]?(include:|a\b|a:|a/|mx\b|mx:|mx/|ptr\b|ptr:|exists:|redirect=)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "ok" | "missing" | "wrong" | "weak" | "info"
    purpose: str  # "mx" | "spf" | "dkim" | "dmarc" | "mta-sts" | "tls-rpt"
    message: str

    @property
    def is_problem(self) -> bool:
        return self.level in ("missing", "wrong")


def key_bits(record: str) -> int:
    """Bits of the RSA key in a DKIM record's p= (0 when not RSA or unreadable)."""
    m = re.search(r"(?:^|;)\s*p=([A-Za-z0-9+/=\s]*)", record)
    if not m or "k=ed25519" in record.replace(" ", ""):
        return 0
    try:
        key = load_der_public_key(base64.b64decode(re.sub(r"\s", "", m.group(1))))
    except ValueError:
        return 0
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else 0


class DomainChecker:
    def __init__(self, resolver: DnsResolver, store: KeyStore | None = None, *, state_file: Path | None = None,
                 dmarc_none_max_days: int = 60, retire_after_days: int = 7) -> None:
        self.resolver = resolver
        self.store = store
        self.state_file = state_file
        self.dmarc_none_max_days = dmarc_none_max_days
        self.retire_after_days = retire_after_days

    async def check(self, domain: str, *, mx_host: str, switch: bool = True,
                    now: datetime | None = None) -> list[Finding]:
        """Every finding for `domain`. DNS failures are findings ("wrong: lookup failed"), never raised."""
        domain = domain.lower().rstrip(".")
        now = now or datetime.now(UTC)
        out: list[Finding] = []
        for part in (self._mx(domain, mx_host), self._spf(domain, mx_host), self._dkim(domain, switch, now),
                     self._dmarc(domain, now), self._txt_present(f"_mta-sts.{domain}", "v=STSv1", "mta-sts"),
                     self._txt_present(f"_smtp._tls.{domain}", "v=TLSRPTv1", "tls-rpt")):
            try:
                out.extend(await part)
            except LookupTimeout as exc:
                out.append(Finding("wrong", "dns", f"lookup failed: {exc}"))
        return out

    async def _txts(self, name: str) -> list[str]:
        return list((await self.resolver.lookup(name, "TXT")).records)

    async def _mx(self, domain: str, mx_host: str) -> list[Finding]:
        hosts = [r.split(" ", 1)[1].rstrip(".").lower() for r in (await self.resolver.lookup(domain, "MX")).records]
        if not hosts:
            return [Finding("missing", "mx", f"no MX record for {domain}")]
        if mx_host.lower() not in hosts:
            return [Finding("wrong", "mx", f"MX points to {', '.join(hosts)}, not to {mx_host}")]
        return [Finding("ok", "mx", f"MX → {', '.join(hosts)}")]

    async def spf_lookups(self, domain: str, seen: set[str] | None = None) -> int:
        """DNS-querying terms of `domain`'s SPF record, includes and redirects followed (RFC 7208 §4.6.4)."""
        seen = seen if seen is not None else set()
        if domain in seen or len(seen) > 4 * MAX_SPF_LOOKUPS:
            return MAX_SPF_LOOKUPS + 1  # a loop or an absurd tree is over the limit either way
        seen.add(domain)
        recs = [r for r in await self._txts(domain) if r.lower().startswith("v=spf1")]
        if len(recs) != 1:
            return 0
        count = 0
        for term in recs[0].split()[1:]:
            if _LOOKUP_TERMS.match(term):
                count += 1
                low = term.lower().lstrip("+?~-")
                if low.startswith(("include:", "redirect=")) and "%" not in low:
                    count += await self.spf_lookups(low.split(":", 1)[-1].split("=", 1)[-1], seen)
        return count

    async def _spf(self, domain: str, mx_host: str) -> list[Finding]:
        recs = [r for r in await self._txts(domain) if r.lower().startswith("v=spf1")]
        if not recs:
            return [Finding("missing", "spf", f"no SPF record at {domain}")]
        if len(recs) > 1:
            return [Finding("wrong", "spf", "more than one SPF record: receivers see permerror (RFC 7208 §4.5)")]
        rec, out = recs[0], []
        terms = [t.lower() for t in rec.split()[1:]]
        if "+all" in terms or "all" in terms:
            out.append(Finding("wrong", "spf", f"'{rec}': +all authorizes every host on the internet"))
        elif "?all" in terms or "~all" in terms:
            out.append(Finding("weak", "spf", f"'{rec}': ends softly; -all lets receivers refuse forgeries"))
        elif "-all" not in terms and not any(t.startswith("redirect=") for t in terms):
            out.append(Finding("weak", "spf", f"'{rec}': no 'all' term, so the default is neutral"))
        if any(t.lstrip("+?~-").startswith("ptr") for t in terms):
            out.append(Finding("weak", "spf", "ptr is slow and unreliable (RFC 7208 §5.5: SHOULD NOT be used)"))
        lookups = await self.spf_lookups(domain)
        if lookups > MAX_SPF_LOOKUPS:
            out.append(Finding("wrong", "spf", f"{lookups} DNS lookups: over the limit of {MAX_SPF_LOOKUPS} "
                                               "(receivers see permerror)"))
        addrs = (await self.resolver.lookup(mx_host, "A")).records
        evaluator = SpfEvaluator(self.resolver)
        for ip in addrs:
            result = await evaluator.evaluate(ip=ip, sender=f"postmaster@{domain}", helo=mx_host)
            if result.result != "pass":
                out.append(Finding("wrong", "spf", f"our own server {mx_host} ({ip}) gets SPF {result.result}"))
        if not any(f.level in ("wrong", "weak") for f in out):
            out.append(Finding("ok", "spf", f"'{rec}' ({lookups} lookups)"))
        return out

    async def _dkim(self, domain: str, switch: bool, now: datetime) -> list[Finding]:
        if self.store is None or not self.store.keys(domain):
            return [Finding("missing", "dkim", f"no DKIM key for {domain}: run `mailbastion dkim keygen {domain}`")]
        out: list[Finding] = []
        published = {k.selector for k in self.store.published(domain)}
        for key in self.store.keys(domain):
            if key.selector not in published and any("p=" in r for r in await self._txts(key.record_name)):
                out.append(Finding("info", "dkim", f"{key.record_name} is retired since {key.retired}: "
                                                   f"remove its record now (due {key.remove_after})"))
        for key in self.store.published(domain):
            live = [r for r in await self._txts(key.record_name) if "p=" in r]
            holds_ours = any(re.sub(r"\s", "", key.public) in re.sub(r"\s", "", r) for r in live)
            if not live:
                level = "missing" if key.state != "retired" else "info"
                out.append(Finding(level, "dkim", f"{key.record_name} ({key.state}) is not published"))
                continue
            if not holds_ours:
                out.append(Finding("wrong", "dkim", f"{key.record_name} holds another key than ours"))
                continue
            bits = key_bits(live[0])
            if bits and bits < 2048:
                out.append(Finding("weak", "dkim", f"{key.record_name}: {bits}-bit RSA key (use 2048, RFC 8301)"))
            if key.state == "pending" and switch:
                retired = self.store.activate(domain, key.selector, retire_after_days=self.retire_after_days, now=now)
                out.append(Finding("ok", "dkim", f"{key.record_name} is live: signing switched to {key.selector}"))
                for old in retired:
                    out.append(Finding("info", "dkim", f"remove {old.record_name} after {old.remove_after}"))
            elif key.state == "retired":
                out.append(Finding("info", "dkim", f"{key.record_name} retired: remove after {key.remove_after}"))
            else:
                out.append(Finding("ok", "dkim", f"{key.record_name} ({key.state}, {key.algorithm}) published"))
        return out

    async def _dmarc(self, domain: str, now: datetime) -> list[Finding]:
        recs = [r for r in (parse_record(domain, t) for t in await self._txts(f"_dmarc.{domain}")) if r]
        if not recs:
            return [Finding("missing", "dmarc", f"no DMARC record at _dmarc.{domain}")]
        if len(recs) > 1:
            return [Finding("wrong", "dmarc", "more than one DMARC record: receivers ignore both (RFC 7489 §6.6.3)")]
        rec, out = recs[0], []
        if rec.malformed:
            out.append(Finding("wrong", "dmarc", f"'{rec.raw}': {rec.malformed}"))
        if not rec.rua:
            out.append(Finding("weak", "dmarc", "no rua: nobody receives the aggregate reports"))
        since = self._first_seen_none(domain, rec.p == "none", now)
        if since is not None:
            days = (now - since).days
            if days >= self.dmarc_none_max_days:
                out.append(Finding("weak", "dmarc", f"p=none for {days} days: move to p=quarantine, then p=reject"))
            else:
                out.append(Finding("info", "dmarc", f"p=none (monitoring) since {since:%Y-%m-%d}"))
        elif rec.pct < 100:
            out.append(Finding("weak", "dmarc", f"pct={rec.pct}: the policy applies to part of the mail only"))
        if not any(f.level in ("wrong", "weak") for f in out):
            out.append(Finding("ok", "dmarc", f"'{rec.raw}'"))
        return out

    def _first_seen_none(self, domain: str, is_none: bool, now: datetime) -> datetime | None:
        """When we first saw p=none for `domain` (kept in state_file); None once the policy is stronger."""
        state: dict[str, str] = {}
        if self.state_file is not None and self.state_file.exists():
            state = json.loads(self.state_file.read_text(encoding="utf-8")).get("dmarc_none_since", {})
        if not is_none:
            state.pop(domain, None)
            result = None
        else:
            state.setdefault(domain, now.isoformat())
            result = datetime.fromisoformat(state[domain])
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"dmarc_none_since": state}, indent=2), encoding="utf-8")
        return result

    async def _txt_present(self, name: str, prefix: str, purpose: str) -> list[Finding]:
        recs = [r for r in await self._txts(name) if r.replace(" ", "").startswith(prefix)]
        if not recs:
            return [Finding("missing", purpose, f"no {prefix} record at {name}")]
        return [Finding("ok", purpose, f"{name}: '{recs[0]}'")]


__all__ = ["DomainChecker", "Finding", "key_bits"]
