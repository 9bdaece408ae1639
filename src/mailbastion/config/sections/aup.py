"""`[aup]`: the acceptable use policy (issue 13, measure 7). Versions are published with `mailbastion aup
publish`; each active account accepts the version in effect in the portal within `grace_days` of the later
of the version's effective date and the account's activation. Past that, by `enforce`:

    "submission"   sending through submission is refused (550 5.7.1 naming the portal's policy page), and a
                   notice is delivered to the user's inbox once
    "notify"       only the notice
    "off"          nothing (measure 7 then fails: the policy is not enforced)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section


class AupSection(Section):
    grace_days: int = Field(14, ge=0, le=365)
    enforce: Literal["submission", "notify", "off"] = "submission"
    # The notice's sender; empty: postmaster@<the user's domain>.
    notice_sender: str = ""

    @field_validator("notice_sender")
    @classmethod
    def _one_address(cls, value: str) -> str:
        value = value.strip()
        if value and (value.count("@") != 1 or any(c.isspace() or c in "<>\"," for c in value)):
            raise ValueError("aup.notice_sender must be one plain address (local@domain) or empty")
        return value

    def weakened(self) -> list[str]:
        if self.enforce == "off":
            return ['aup.enforce = "off" (users who never accept the acceptable use policy keep sending)']
        return []


__all__ = ["AupSection"]
