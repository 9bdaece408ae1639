"""What a mail client needs to know, generated from the configuration: Thunderbird's autoconfig
(config-v1.1.xml), Outlook's autodiscover (POX), and the lines `mailbastion account show` prints.

    client_settings(settings, "alice@example.org")   ClientSettings: servers, ports, security, user name
    autoconfig_xml(settings, "example.org")          /.well-known/autoconfig/mail/config-v1.1.xml (or
                                                      autoconfig.<domain>/mail/config-v1.1.xml)
    autodiscover_xml(settings, "alice@example.org")  the answer to POST /autodiscover/autodiscover.xml
    autodiscover_request_address(body)               the EMailAddress of such a request

Clients reach us by `server.hostname` on the ports of the listeners; implicit TLS comes first (RFC 8314
§3: preferred to STARTTLS). The user name is the address. Submission's listeners come with issue 10: until
`[submission]` exists they are shown from its defaults (127.0.0.1:2587 STARTTLS, 127.0.0.1:2465 implicit
TLS) and marked "not built yet", and the documents leave them out rather than send clients to a port
nothing listens on. The portal (issue 12) serves the documents; nothing here touches the network.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mailbastion.core.errors import MalformedAddress
from mailbastion.directory.resolution import to_address

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

SUBMISSION_DEFAULTS = {"listen_tls": ["127.0.0.1:2465"], "listen": ["127.0.0.1:2587"]}
_POX_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
_POX_OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
_POX_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"


@dataclass(frozen=True, slots=True)
class Endpoint:
    protocol: Literal["imap", "submission"]
    host: str
    port: int
    security: Literal["tls", "starttls"]  # implicit TLS from the first byte, or STARTTLS before login
    built: bool = True

    def describe(self) -> str:
        how = "implicit TLS (SSL/TLS)" if self.security == "tls" else "STARTTLS"
        return f"{self.protocol:11} {self.host}:{self.port:<6} {how:23}{'' if self.built else ' not built yet'}"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    address: str
    username: str
    endpoints: tuple[Endpoint, ...]

    def incoming(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.protocol == "imap" and e.built]

    def outgoing(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.protocol == "submission" and e.built]

    def lines(self) -> list[str]:
        return [f"user name   {self.username} (password: the account's, or an app password per device)",
                *(e.describe() for e in self.endpoints)]


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def _endpoints(protocol: Literal["imap", "submission"], host: str, tls: list[str], starttls: list[str],
               built: bool) -> list[Endpoint]:
    out = [Endpoint(protocol, host, _port(a), "tls", built) for a in tls[:1]]
    return out + [Endpoint(protocol, host, _port(a), "starttls", built) for a in starttls[:1]]


def client_settings(settings: Settings, address: str) -> ClientSettings:
    """The settings for the account `address` (normalized; not checked against the directory)."""
    key = to_address(address).normalized
    host = settings.server.hostname
    endpoints = _endpoints("imap", host, settings.imap.listen_tls, settings.imap.listen, settings.imap.enabled)
    submission = getattr(settings, "submission", None)  # issue 10 adds [submission]
    if submission is not None:
        endpoints += _endpoints("submission", host, list(submission.listen_tls), list(submission.listen),
                                submission.enabled)
    else:
        endpoints += _endpoints("submission", host, SUBMISSION_DEFAULTS["listen_tls"], SUBMISSION_DEFAULTS["listen"],
                                False)
    return ClientSettings(key, key, tuple(endpoints))


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def autoconfig_xml(settings: Settings, domain: str) -> str:
    """Thunderbird's config-v1.1.xml for `domain` (its clients fill in %EMAILADDRESS%)."""
    domain = to_address(f"postmaster@{domain}").domain
    sample = client_settings(settings, f"postmaster@{domain}")
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"{domain} mail")
    _text(provider, "displayShortName", domain)
    for kind, endpoints in (("incomingServer", sample.incoming()), ("outgoingServer", sample.outgoing())):
        for e in endpoints:
            server = ET.SubElement(provider, kind, type="imap" if e.protocol == "imap" else "smtp")
            _text(server, "hostname", e.host)
            _text(server, "port", str(e.port))
            _text(server, "socketType", "SSL" if e.security == "tls" else "STARTTLS")
            _text(server, "authentication", "password-cleartext")  # only ever inside TLS
            _text(server, "username", "%EMAILADDRESS%")
    return _xml(root)


def autodiscover_xml(settings: Settings, address: str) -> str:
    """Outlook's autodiscover (POX) answer for `address`: its IMAP (and, once built, SMTP) settings."""
    client = client_settings(settings, address)
    root = ET.Element("Autodiscover", xmlns=_POX_RESPONSE)
    response = ET.SubElement(root, "Response", xmlns=_POX_OUTLOOK)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    chosen = client.incoming()[:1] + client.outgoing()[:1]  # one of each: implicit TLS first
    for e in chosen:
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", "IMAP" if e.protocol == "imap" else "SMTP")
        _text(protocol, "Server", e.host)
        _text(protocol, "Port", str(e.port))
        _text(protocol, "DomainRequired", "off")
        _text(protocol, "LoginName", client.username)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        _text(protocol, "Encryption", "SSL" if e.security == "tls" else "TLS")
        _text(protocol, "AuthRequired", "on")
        if e.protocol == "submission":
            _text(protocol, "UsePOPAuth", "off")
            _text(protocol, "SMTPLast", "off")
    return _xml(root)


def autodiscover_request_address(body: bytes) -> str:
    """The EMailAddress of an Outlook autodiscover request. Raises ValueError for anything else (Python's
    expat refuses entity expansion bombs and never fetches external entities)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not an autodiscover request: {exc}") from None
    found = root.find(f"./{{{_POX_REQUEST}}}Request/{{{_POX_REQUEST}}}EMailAddress")
    text = (found.text or "").strip() if found is not None else ""
    if not text:
        raise ValueError("not an autodiscover request: no Request/EMailAddress")
    return to_address(text).normalized


__all__ = ["ClientSettings", "ClientSetupDocuments", "Endpoint", "autoconfig_xml", "autodiscover_request_address", "autodiscover_xml",
           "client_settings"]


class ClientSetupDocuments:
    """The portal's `ClientSetup` (portal/extensions.py): the documents above for addresses in our domains."""

    def __init__(self, settings: Settings, is_our_domain: Callable[[str], bool]) -> None:
        self.settings = settings
        self.is_our_domain = is_our_domain

    def _ours(self, address: str) -> str | None:
        try:
            key = to_address(address)
        except (MalformedAddress, ValueError):
            return None
        return key.normalized if self.is_our_domain(key.domain) else None

    def thunderbird_autoconfig(self, address: str) -> str | None:
        key = self._ours(address)
        return None if key is None else autoconfig_xml(self.settings, key.rpartition("@")[2])

    def outlook_autodiscover(self, address: str) -> str | None:
        key = self._ours(address)
        return None if key is None else autodiscover_xml(self.settings, key)
