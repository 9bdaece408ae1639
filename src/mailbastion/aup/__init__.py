"""The acceptable use policy (issue 13, measure 7): versioned Markdown documents, each active user's
acceptance in the portal, and enforcement past a grace period.

    store.py      versions (text, SHA-256, effective date) and acceptances in the directory's database
    standing.py   who is accepted, due or overdue; AupPolicy ([aup] settings); AupGate (submission's refusal)
    notices.py    the one notice to an overdue user, through our spool
    template.py   the shipped template (data/aup-template.md) a site edits

The portal's pages are portal/aup_pages.py (the Markdown shown by portal/markdown.py), the command line
cli/aup.py, the measure measures/aup.py.
"""

from __future__ import annotations
