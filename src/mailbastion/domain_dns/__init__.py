"""Our domains' DNS for mail, for the administrator: the records to publish (`records.py`: MX, SPF, DKIM,
DMARC, MTA-STS, TLS-RPT, TLSA) and the check of what is live (`check.py`, `mailbastion dns check`).

It sits above `auth/` (SPF evaluation, DMARC parsing, the DKIM keys) and `dns/` (the resolver, alone there),
and nothing on the message path imports it.
"""

from mailbastion.domain_dns.check import DomainChecker, Finding, key_bits
from mailbastion.domain_dns.records import DnsRecord, load_mx_certificate, records_for, render, tlsa_311

__all__ = ["DnsRecord", "DomainChecker", "Finding", "key_bits", "load_mx_certificate", "records_for", "render",
           "tlsa_311"]
