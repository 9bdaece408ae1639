"""Settings of the relay hop and of delivery to the Internet: secure defaults, clear refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mailbastion.config.schema import Settings
from mailbastion.config.sections.outbound import OutboundSection
from mailbastion.config.sections.relay_in import RelayInSection


def test_defaults() -> None:
    s = Settings()
    assert s.relay_in.listen == [] and s.relay_in.connect_address() is None  # off until init writes it
    assert s.relay_in.client_names == ["internal"] and s.relay_in.server_name == "gateway-link"
    assert s.tls.internal_client_cert == "tls/internal-client.crt" and s.tls.link_cert == "tls/gateway-link.crt"
    d = s.delivery
    assert (d.destination_concurrency_limit, d.connection_cache_idle_seconds, d.connection_reuse_seconds) == (20, 2.0,
                                                                                                               300.0)
    assert s.outbound.send_time() == (0, 30)


def test_connect_defaults_to_the_first_listen_address() -> None:
    r = RelayInSection(listen=["127.0.0.1:2526", "[::1]:2526"])
    assert r.connect_address() == "127.0.0.1:2526"
    assert RelayInSection(listen=["0.0.0.0:2526"], connect="gw.dmz.example:2526").connect_address() == \
        "gw.dmz.example:2526"


@pytest.mark.parametrize("values, message", [
    ({"client_names": []}, "at least one certificate name"),
    ({"client_names": ["bad name"]}, "not a certificate name"),
    ({"listen": ["2526"]}, "HOST:PORT"),
    ({"refuse_action": "junk"}, "quarantine"),
    ({"unknown": 1}, "Extra inputs"),
])
def test_refusals(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RelayInSection(**values)  # type: ignore[arg-type]


def test_report_time_is_a_time_of_day() -> None:
    assert OutboundSection(tls_rpt_send_time="3:05").tls_rpt_send_time == "03:05"
    for bad in ("24:00", "noon", "12:60"):
        with pytest.raises(ValidationError, match="HH:MM"):
            OutboundSection(tls_rpt_send_time=bad)


def test_weakened_settings_are_named() -> None:
    assert RelayInSection().weakened() == []
    weak = RelayInSection(refuse_action="reject", client_names=["internal", "backup"]).weakened()
    assert any("refuse_action" in w for w in weak) and any("backup" in w for w in weak)
