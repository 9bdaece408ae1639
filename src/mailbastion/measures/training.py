"""Measure 8, training on email risks, from the training records (training/): every active account has each
mandatory module (`[training] mandatory`) completed or not yet due; the evidence names the modules, how many
are completed, and the phishing-simulation campaigns with their results.

    NOT_MET    training off, no mandatory module, or an active account past the due date of one
    WARN       mandatory modules not yet assigned to some account (the scheduler assigns them within a
               check: is `mailbastion serve` running?) - passes, with the warning as evidence
    MET        everyone completed or within their due date
"""

from __future__ import annotations

from mailbastion.measures.board import MET, NOT_MET, WARN, MeasureResult
from mailbastion.measures.internal import InternalProbe, OnInternalHost

__all__ = ["NoTrainingRecords", "TrainingProbe"]

SOURCE = "mailbastion training report"
LISTED = 20


class TrainingProbe(InternalProbe):
    numbers = (8,)

    def _check(self) -> MeasureResult:
        from mailbastion.training.campaigns import CampaignStore
        from mailbastion.training.modules import ModuleError, load_modules
        from mailbastion.training.report import compliance
        from mailbastion.training.store import TrainingStore

        section = self.settings.training
        if not section.enabled:
            return MeasureResult(8, NOT_MET, "training is off ([training] enabled = false)", source=SOURCE,
                                 fix="set [training] enabled = true and keep `mailbastion serve` running")
        try:
            modules = load_modules(self.settings)
        except ModuleError as exc:
            return MeasureResult(8, NOT_MET, f"a training module does not load: {exc}", source=SOURCE,
                                 fix="correct the module file named (`mailbastion training modules`)")
        mandatory = [m for m in section.mandatory if m in modules]
        unknown = [m for m in section.mandatory if m not in modules]
        if not mandatory:
            return MeasureResult(8, NOT_MET, "no mandatory training module ([training] mandatory)", source=SOURCE,
                                 fix="list the modules everyone must complete in [training] mandatory")
        store = TrainingStore(self.directory)
        now = store.now()
        active = store.active_accounts()
        assignments = [a for a in store.assignments() if a.module in mandatory]
        overdue, missing = compliance(assignments, active, mandatory, now)
        done = sum(a.completed_at is not None for a in assignments if a.address in set(active))
        evidence = [(f"mandatory modules: {', '.join(mandatory)}; {len(active)} active account(s); "
                     f"{done} of {len(active) * len(mandatory)} completions done"),
                    *self._campaigns(CampaignStore(self.directory, self.settings))]
        if unknown:
            evidence.append(f"[training] mandatory names module(s) that do not exist: {', '.join(unknown)}")
        if overdue:
            return MeasureResult(8, NOT_MET, f"{len(overdue)} mandatory module(s) overdue",
                                 (*(f"overdue: {o}" for o in overdue[:LISTED]), *evidence), SOURCE,
                                 fix=("remind the people named (reminders are mailed by `mailbastion serve`), or "
                                      "extend with `mailbastion training assign MODULE --user ADDRESS --due DATE`"))
        if missing:
            return MeasureResult(8, WARN, f"{len(missing)} mandatory module(s) not yet assigned",
                                 (*(f"not assigned: {m}" for m in missing[:LISTED]), *evidence), SOURCE,
                                 fix="keep `mailbastion serve` running: its scheduler assigns mandatory modules")
        return MeasureResult(8, MET, "every active account has its mandatory training completed or not yet due",
                             tuple(evidence), SOURCE)

    @staticmethod
    def _campaigns(store: object) -> list[str]:
        from mailbastion.training.campaigns import CampaignStore

        assert isinstance(store, CampaignStore)
        sent = [c for c in store.campaigns() if c.sent_at is not None]
        if not sent:
            return ["no phishing-simulation campaign sent yet (`mailbastion training campaign create`)"]
        last = max(sent, key=lambda c: c.sent_at or c.start_at)
        results = store.results(last.name)
        clicked = sum(r.clicked for r in results)
        reported = sum(r.reported for r in results)
        return [(f"{len(sent)} phishing simulation(s) sent; the last, {last.name} on {last.sent_at:%Y-%m-%d}: "
                 f"{len(results)} delivered, {clicked} clicked, {reported} reported")]


class NoTrainingRecords(OnInternalHost):
    """Measure 8 where no directory lives (a gateway): checked on the internal host."""

    numbers = (8,)
    missing = "training records"
