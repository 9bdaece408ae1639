"""`[phish_report]`: the report-a-phish loop (issue 13, measure 8).

A user reports a phishing message by sending it (attached, bounced or inline-forwarded) through submission
to `report-phish@<one of our domains>`, or with the "Report as phishing" button of the portal. The
report is acknowledged to the user, the message is learned as spam, and copies of the same message still
in other users' mailboxes are moved into the quarantine, each with an audit record (phish_report/).
"""

from __future__ import annotations

from pydantic import Field

from mailbastion.config.sections.base import Section


class PhishReportSection(Section):
    enabled: bool = True
    local_part: str = Field("report-phish", min_length=1, max_length=64)  # report-phish@<each of our domains>
    match_window_days: int = Field(14, ge=1, le=365)  # mail delivered this many days back is searched
    max_copies: int = Field(500, ge=0, le=100_000)  # at most this many copies are moved per report
    notify_affected: bool = True  # tell each user whose copy was moved (a short mail)
    learn: bool = True  # teach the spam classifier the reported message (needs [spam] enabled)
    # URLs: a copy from one of our own domains (a colleague's forward quoting the link) is never matched by
    # URL alone; these hosts are too common to identify a message.
    ignore_url_hosts: list[str] = Field(default_factory=lambda: [
        "www.w3.org", "w3.org", "schemas.microsoft.com", "schemas.openxmlformats.org", "purl.org", "ns.adobe.com"])
