"""DNS: the async caching resolver every check uses, and (later) our records to publish and check."""

from mailbastion.dns.resolver import DnsResolver, LookupResult

__all__ = ["DnsResolver", "LookupResult"]
