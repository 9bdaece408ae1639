"""Replies parsed once from the wire into fields (core/outcome.py), and outcomes made from them."""

from __future__ import annotations

from mailbastion.core.outcome import (
    Deferred,
    Delivered,
    Failed,
    Handoff,
    describe,
    is_enhanced_status,
    outcome_of,
    parse_reply,
)
from mailbastion.core.replies import Reply


def test_enhanced_status_is_taken_off_every_line_that_repeats_it() -> None:
    assert parse_reply(452, ["4.2.2 mailbox full", "4.2.2 try later"]) == Reply(452, "4.2.2",
                                                                               "mailbox full\ntry later")
    assert parse_reply(250, ["2.0.0 Ok"]) == Reply(250, "2.0.0", "Ok")


def test_text_without_a_fitting_status_stays_whole() -> None:
    assert parse_reply(550, ["user unknown"]) == Reply(550, "", "user unknown")
    assert parse_reply(550, ["4.1.1 class disagrees with the code"]) == Reply(550, "", "4.1.1 class disagrees "
                                                                                       "with the code")
    assert parse_reply(250, ["mda", "PIPELINING"]) == Reply(250, "", "mda\nPIPELINING")
    assert parse_reply(221, []) == Reply(221, "", "")
    assert not is_enhanced_status("5.1.1234") and not is_enhanced_status("3.1.1") and not is_enhanced_status("5.1")
    assert is_enhanced_status("5.7.30", 550) and not is_enhanced_status("5.7.30", 450)


def test_outcome_of_maps_code_classes() -> None:
    assert outcome_of(Reply(250, "2.0.0", "ok"), remote="h") == Delivered(Reply(250, "2.0.0", "ok"), "h",
                                                                            Handoff.DELIVERED)
    assert outcome_of(Reply(451, "4.3.0", "later")) == Deferred(Reply(451, "4.3.0", "later"))
    assert outcome_of(Reply(554, "5.6.0", "no")) == Failed(Reply(554, "5.6.0", "no"))
    assert isinstance(outcome_of(Reply(354, "", "go ahead")), Failed)  # a reply out of place is not a success


def test_describe_is_one_line() -> None:
    assert describe(Reply(550, "5.1.1", "user\r\nunknown")) == "550 5.1.1 user unknown"
    assert describe(Reply(451, "", "no status")) == "451 no status"
