"""`[training]`: security-awareness training (measure 8, issue 13): the modules everyone must complete, when
they are due, the reminders mailed about them, and phishing-simulation campaigns (mailbastion/training/)."""

from __future__ import annotations

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section


class TrainingSection(Section):
    enabled: bool = True  # the portal pages, joiner assignment and reminders (run by the lifecycle scheduler)
    # Modules every active account must complete; assigned automatically to each account when it becomes
    # active (a joiner) and to every active account that lacks them. Ids of shipped or site modules.
    mandatory: tuple[str, ...] = ("phishing", "attachments", "passwords", "confidential", "reporting")
    due_days: int = Field(30, ge=1, le=3650)  # an assignment is due this many days after it is made
    # Reminders mailed to the user: `remind_before_days` before the due date, then every
    # `overdue_every_days` once overdue (0: no reminder after the due date).
    remind_before_days: int = Field(7, ge=0, le=365)
    overdue_every_days: int = Field(7, ge=0, le=365)
    # Site modules (Markdown with a TOML front matter, see docs/notes-training.md): a module here with the
    # id of a shipped one replaces it. Relative paths are below data_dir.
    modules_dir: str = "training/modules"
    templates_dir: str = "training/templates"  # site phishing-simulation templates, same rule
    # The key that marks our own phishing simulations (HMAC-SHA256), created 0600 at first use.
    simulation_key: str = "training/simulation.key"
    sender_local_part: str = "security-training"  # reminders come from this address of the user's domain

    @field_validator("mandatory")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not item or not item.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"module id {item!r}: letters, digits, - and _ only")
        return value

    @field_validator("sender_local_part")
    @classmethod
    def _local(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-._" for c in value):
            raise ValueError("sender_local_part: letters, digits, '-', '.', '_' only")
        return value
