"""DNS: the async caching resolver every check uses. (The records our domains publish, and their check,
are in `mailbastion.domain_dns`.)"""

from mailbastion.dns.resolver import DnsResolver, LookupResult

__all__ = ["DnsResolver", "LookupResult"]
