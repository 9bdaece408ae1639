"""The per-account sending limits and the signs of a hijacked account (submission/limits.py), on a fake clock."""

from __future__ import annotations

from mailbastion.submission.limits import HOUR, SendingMeter, network_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def meter(clock: Clock, **kw: object) -> SendingMeter:
    return SendingMeter(clock=clock, **kw)  # type: ignore[arg-type]


def test_messages_per_hour_slide_and_the_day_stays() -> None:
    clock = Clock()
    m = meter(clock, messages_per_hour=2, messages_per_day=3)
    for _ in range(2):
        assert m.check("a@x.test") is None
        m.record("a@x.test", ["b@y.test"])
    refused = m.check("a@x.test")
    assert refused is not None and refused.code == 450 and refused.status == "4.7.1" and "2 messages per hour" in refused.text
    assert m.check("other@x.test") is None  # per account
    clock.now += HOUR + 1
    assert m.check("a@x.test") is None
    m.record("a@x.test", ["b@y.test"])
    clock.now += HOUR + 1
    day = m.check("a@x.test")
    assert day is not None and "3 messages per day" in day.text


def test_recipients_count_per_message() -> None:
    clock = Clock()
    m = meter(clock, recipients_per_hour=5)
    m.record("a@x.test", ["1@y", "2@y", "3@y"])
    assert m.check("a@x.test", rcpts=2) is None
    refused = m.check("a@x.test", rcpts=3)
    assert refused is not None and "5 recipients per hour" in refused.text


def test_fanout_counts_distinct_recipients_in_the_window() -> None:
    clock = Clock()
    m = meter(clock, fanout_recipients=4, fanout_window=600)
    m.record("a@x.test", ["1@y", "2@y", "1@y"])
    assert m.fanout("a@x.test", ["3@y"]) is None  # three distinct
    sign = m.fanout("a@x.test", ["3@y", "4@y"])
    assert sign is not None and sign.kind == "fanout" and "4 distinct recipients" in sign.detail
    clock.now += 601
    assert m.fanout("a@x.test", ["3@y", "4@y"]) is None  # the old ones left the window
    assert meter(clock, fanout_recipients=2, hijack=False).fanout("a@x.test", ["1@y", "2@y", "3@y"]) is None


def test_new_networks_after_the_home_one() -> None:
    clock = Clock()
    m = meter(clock, new_clients=2, new_clients_window=3600)
    assert m.login("a@x.test", "192.0.2.7") is None  # home
    assert m.login("a@x.test", "192.0.2.99") is None  # same /24
    assert m.login("a@x.test", "198.51.100.1") is None  # first new network
    sign = m.login("a@x.test", "203.0.113.5")
    assert sign is not None and sign.kind == "new_networks" and "203.0.113.0/24" in sign.detail
    assert m.login("a@x.test", "198.51.100.2") is None  # known now


def test_bounces_burst() -> None:
    clock = Clock()
    m = meter(clock, bounces=3, bounce_window=100)
    assert m.bounce("a@x.test") is None and m.bounce("a@x.test") is None
    clock.now += 101
    assert m.bounce("a@x.test") is None  # the first two left the window
    assert m.bounce("a@x.test") is None
    sign = m.bounce("a@x.test")
    assert sign is not None and sign.kind == "bounces"


def test_network_of() -> None:
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"
    assert network_of("::ffff:192.0.2.1") == "192.0.2.0/24"


def test_one_throttle_per_process_for_every_password_path() -> None:
    from mailbastion.config import Settings
    from mailbastion.directory.throttle import process_throttle

    first = process_throttle(Settings())
    assert process_throttle(Settings()) is first  # IMAP's auth socket and submission count together
