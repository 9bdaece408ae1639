"""Accounts over time: the audit log (and, later, joiners, leavers, AUP, training)."""
