"""Users read mail: Dovecot, run by the internal role on our Maildirs, with our directory deciding every login.

    dovecot.py          DovecotService: configuration, supervision, reload, kick (what `serve` runs)
    dovecot_config.py   dovecot.conf, the Lua passdb/userdb and the IMAPSieve scripts, from our settings
    layout.py           where Dovecot's files live; the mail user
    mail_root.py        the Maildirs belong to the mail user, who can reach them
    auth_socket.py      the socket Dovecot's passdb asks: directory/login.py decides
    learn_socket.py     Junk moves teach the classifier (IMAPSieve pipes)
    session_guard.py    sessions of accounts that stopped being active are closed
    folders.py          INBOX, Junk, Sent, Drafts, Trash, Archive with SPECIAL-USE (RFC 6154)
    client_setup.py     Thunderbird autoconfig, Outlook autodiscover, the settings `account show` prints

Names load lazily (PEP 562): `import mailbastion.imap` loads nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.imap.client_setup import ClientSettings, autoconfig_xml, autodiscover_xml, client_settings
    from mailbastion.imap.dovecot import DovecotService

_WHERE = {
    "ClientSettings": "client_setup", "autoconfig_xml": "client_setup", "autodiscover_xml": "client_setup",
    "client_settings": "client_setup",
    "DovecotService": "dovecot",
}

__all__ = ["ClientSettings", "DovecotService", "autoconfig_xml", "autodiscover_xml", "client_settings"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
