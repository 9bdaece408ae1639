from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, dns: DnsTestServer) -> Iterator[Deployment]:
    """One running all-in-one deployment shared by a module's tests (ClamAV off: flows of the message path)."""
    root: Path = tmp_path_factory.mktemp("deployment")
    d = Deployment(root, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"'})
    d.init()
    d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
    d.mb("account", "add", "bob@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
    d.mb("account", "add", "leaver@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
    d.mb("account", "alias", "add", "sales@example.test", "alice@example.test")
    d.mb("account", "alias", "add", "sales@example.test", "bob@example.test")
    d.start()
    yield d
    d.stop()
