"""Security-awareness training (measure 8 of issue 13): modules with quizzes, assignments with due dates and
reminders, phishing-simulation campaigns.

    modules.py      Markdown modules with a TOML front matter holding the quiz; grading; safe rendering
    models.py       the tables (migration 0009_training)
    store.py        assignments: assign (everyone, a group, a person), joiners, attempts and scores
    reminders.py    reminder mail and the scheduler's training round (run by lifecycle/scheduler.py)
    simulation.py   simulation templates, the HMAC mark, `recognise` (the report loop)
    campaigns.py    campaigns: create, send through our spool, clicks, reports (`record_reported`), results
    report.py       the training report (per user, per group, campaigns) and its CSV
    data/           the shipped modules and simulation templates

Depends on core, config, directory (its database and clock), spool (commits), private_files and durable
(the simulation key). The portal's pages are portal/training_pages.py; the measure is measures/training.py.
"""

from __future__ import annotations

__all__ = ["SimulationHit", "recognise"]

from mailbastion.training.simulation import SimulationHit, recognise
