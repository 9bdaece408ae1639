"""Incoming DMARC aggregate and TLS-RPT reports: taken out of the report mails (gzip/zip under limits),
parsed safely (defusedxml; JSON), and summarised for `mailbastion reports dmarc|tls`.

    extract.py   report files out of a message: gzip, zip, plain; bombs and nested archives refused
    dmarc.py     RFC 7489 appendix C XML -> DmarcReport
    tlsrpt.py    RFC 8460 JSON -> TlsReport
    summary.py   the report Maildirs read, and the summaries
"""

from mailbastion.reports.dmarc import DmarcReport, DmarcRow, parse_dmarc
from mailbastion.reports.extract import Limits, ReportRejected, report_payloads
from mailbastion.reports.summary import ReadResult, read_reports, report_maildirs, summarise_dmarc, summarise_tls
from mailbastion.reports.tlsrpt import TlsReport, parse_tlsrpt

__all__ = ["DmarcReport", "DmarcRow", "Limits", "ReadResult", "ReportRejected", "TlsReport", "parse_dmarc",
           "parse_tlsrpt", "read_reports", "report_maildirs", "report_payloads", "summarise_dmarc", "summarise_tls"]
