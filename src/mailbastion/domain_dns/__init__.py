"""Our domains' DNS for mail, for the administrator: the records to publish (`records.py`: MX, SPF, DKIM,
DMARC, MTA-STS, TLS-RPT) and the check of what is live (`check.py`, `mailbastion dns check`).

It sits above `auth/` (SPF evaluation, DMARC parsing, the DKIM keys) and `dns/` (the resolver, alone there),
and nothing on the message path imports it.
"""

from mailbastion.domain_dns.check import DomainChecker, Finding, key_bits
from mailbastion.domain_dns.records import DnsRecord, records_for, render

__all__ = ["DnsRecord", "DomainChecker", "Finding", "key_bits", "records_for", "render"]
