"""The portal's seams filled by the real parts: app passwords from the directory, client set-up documents
from imap/client_setup.py for our domains only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.config import load_settings
from mailbastion.directory import Directory
from mailbastion.directory.app_passwords import AppPasswordUnknown
from mailbastion.imap.client_setup import ClientSetupDocuments
from mailbastion.portal.extensions import DirectoryAppPasswords
from mailbastion.testing.deployment import Deployment


@pytest.fixture()
def directory(tmp_path: Path) -> tuple[Deployment, Directory]:
    d = Deployment(tmp_path, settings={("imap", "enabled"): "true"})  # written, not started: IMAP advertised
    d.init()
    d.mb("account", "add", "alice@example.test")
    return d, Directory.from_settings(load_settings(d.config))


def test_app_passwords_are_the_directorys_and_log_in(directory: tuple[Deployment, Directory]) -> None:
    _, store = directory
    apps = DirectoryAppPasswords(store)
    secret = apps.create("alice@example.test", "phone", by="alice@example.test")
    assert [i.name for i in apps.list("alice@example.test")] == ["phone"]
    assert store.verify_login("alice@example.test", secret).ok
    with pytest.raises(ValueError):
        apps.revoke("alice@example.test", "", by="alice@example.test")  # never "every device" by accident
    with pytest.raises(AppPasswordUnknown):
        apps.revoke("alice@example.test", "laptop", by="alice@example.test")
    apps.revoke("alice@example.test", "phone", by="alice@example.test")
    assert apps.list("alice@example.test") == []
    assert not store.verify_login("alice@example.test", secret).ok


def test_client_set_up_documents_for_our_domains_only(directory: tuple[Deployment, Directory]) -> None:
    d, store = directory
    docs = ClientSetupDocuments(load_settings(d.config), store.is_local_domain)
    xml = docs.thunderbird_autoconfig("alice@example.test")
    assert xml is not None and "<incomingServer" in xml and "example.test" in xml
    outlook = docs.outlook_autodiscover("alice@example.test")
    assert outlook is not None and "<Type>IMAP</Type>" in outlook
    assert docs.thunderbird_autoconfig("someone@elsewhere.example") is None
    assert docs.outlook_autodiscover("not an address") is None
