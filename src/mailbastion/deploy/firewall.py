"""nftables rules for one host of a deployment, generated from its configuration (`mailbastion firewall`).

One table, `inet mailbastion`, replaced whole when the file is loaded (`nft -f FILE`): input, output and
forward chains with a default of drop, so that what a host may receive and open is exactly what its role
needs, named rule by rule with the setting it comes from:

- gateway: in, the MX (smtp.listen and smtp.implicit_tls_listen) from anywhere and the map push
  (map_push.listen) from the internal host only; out, LMTP to the MDA (lmtp.connect) and nothing else
  towards the internal host, then SMTP to other MX hosts, DNS, HTTPS (MTA-STS, TLS-RPT) and NTP;
- internal: in, LMTP (lmtp.listen) from the gateway(s) only, and the user-facing listeners other sections
  name (submission, IMAP, portal: `listen` and `listen_tls` keys) from firewall.clients; out, the map push to the
  gateway(s), DNS and NTP, nothing else;
- all: the union, with nothing between the two roles (loopback).

Both: ssh (firewall.ssh_port) from firewall.admin_from, the metrics port from there when it is not on
loopback, ICMP, loopback, established traffic. Every chain ends with a counted drop, so `nft list ruleset`
shows what was refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailbastion.config import Settings
from mailbastion.config.sections.split import is_loopback, split_hostport
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.link import Network, push_sources, resolve_networks

USER_SERVICES = ("submission", "imap", "portal")  # user-facing sections: their listen and listen_tls keys


def user_listen_specs(settings: Settings) -> list[tuple[str, str]]:
    """(key, HOST:PORT) of every user-facing listener: `listen` and `listen_tls` of each USER_SERVICES
    section (submission 587 and 465, IMAP 143 and 993, the portal)."""
    out: list[tuple[str, str]] = []
    for name in USER_SERVICES:
        section = getattr(settings, name, None)
        for key in ("listen", "listen_tls"):
            value = getattr(section, key, None)
            specs = [value] if isinstance(value, str) else list(value or ())
            out += [(f"{name}.{key}", spec) for spec in specs if spec]
    return out


@dataclass(frozen=True, slots=True)
class Rule:
    text: str  # nft statement without the verdict's comment
    why: str

    def render(self) -> str:
        return f'        {self.text} comment "{self.why}"'


@dataclass(eq=False)
class Ruleset:
    role: str
    source: str
    input: list[Rule] = field(default_factory=list)
    output: list[Rule] = field(default_factory=list)

    def render(self) -> str:
        head = (f"#!/usr/sbin/nft -f\n# mailbastion firewall for the {self.role} role, generated from {self.source}\n"
                "# by `mailbastion firewall`: load with `nft -f FILE` (replaces the table inet mailbastion only),\n"
                "# and make it permanent with the nftables service (include it from /etc/nftables.conf).\n\n"
                "table inet mailbastion\ndelete table inet mailbastion\n\ntable inet mailbastion {\n")
        base = ["        ct state established,related accept", "        ct state invalid drop"]

        def chain(name: str, hook: str, rules: list[Rule], loop: str) -> str:
            lines = [f"    chain {name} {{", f"        type filter hook {hook} priority filter; policy drop;", *base,
                     f'        {loop} "lo" accept', "        meta l4proto { icmp, ipv6-icmp } accept",
                     *(r.render() for r in rules), f'        counter drop comment "everything else ({name})"', "    }"]
            return "\n".join(lines)

        forward = "    chain forward {\n        type filter hook forward priority filter; policy drop;\n    }"
        body = "\n\n".join([chain("input", "input", self.input, "iif"), chain("output", "output", self.output, "oif"),
                            forward])
        return head + body + "\n}\n"


def _ip_match(net: Network, direction: str) -> str:
    return f"{'ip' if net.version == 4 else 'ip6'} {direction} {net.with_prefixlen if net.prefixlen != net.max_prefixlen else net.network_address}"


def _listeners(specs: Iterable[str], key: str, why: str, sources: Sequence[Network] = ()) -> list[Rule]:
    """Accept rules for listen addresses (loopback ones need none: lo is open)."""
    out: list[Rule] = []
    for spec in specs:
        host, port = split_hostport(spec)
        if is_loopback(host):
            continue
        dest = ""
        if host not in ("0.0.0.0", "::"):
            dest = " ".join(_ip_match(n, "daddr") for n in resolve_networks(host, key)[:1]) + " "
        if sources:
            out.extend(Rule(f"{_ip_match(src, 'saddr')} {dest}tcp dport {port} accept", f"{why} ({key})")
                       for src in sources if not dest or src.version == ipaddress.ip_network(host).version)
        else:
            out.append(Rule(f"{dest}tcp dport {port} accept", f"{why}, from anywhere ({key})"))
    return out


def _admin(settings: Settings) -> list[Rule]:
    f = settings.firewall
    out: list[Rule] = []
    if f.ssh_port:
        if f.admin_from:
            out += [Rule(f"{_ip_match(n, 'saddr')} tcp dport {f.ssh_port} accept", "ssh (firewall.admin_from)")
                    for n in f.admin_from]
        else:
            out.append(Rule(f"tcp dport {f.ssh_port} accept", "ssh from anywhere (set firewall.admin_from)"))
    if settings.metrics.listen:
        out += _listeners([settings.metrics.listen], "metrics.listen", "Prometheus metrics", f.admin_from)
    return out


def _common_out(settings: Settings) -> list[Rule]:
    servers = [ipaddress.ip_network(n.split("#")[0]) for n in settings.dns.nameservers if _is_ip(n.split("#")[0])]
    port = settings.dns.port
    out = []
    if servers:
        for n in servers:
            out += [Rule(f"{_ip_match(n, 'daddr')} {proto} dport {port} accept", "DNS (dns.nameservers)")
                    for proto in ("udp", "tcp")]
    else:
        out += [Rule(f"{proto} dport {port} accept", "DNS (the system resolver)") for proto in ("udp", "tcp")]
    out.append(Rule("udp dport 123 accept", "NTP (certificates and the map's age need the right time)"))
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _gateway(settings: Settings, rs: Ruleset) -> None:
    s = settings
    rs.input += _listeners([*s.smtp.listen, *s.smtp.implicit_tls_listen], "smtp.listen", "MX")
    if s.map_push.listen:
        rs.input += _listeners([s.map_push.listen], "map_push.listen", "recipient map push from the internal host",
                               push_sources(s))
    if s.relay_in.listen:
        rs.input += _listeners(s.relay_in.listen, "relay_in.listen", "users' outbound mail from the internal host",
                               push_sources(s))
    mda_host, mda_port = split_hostport(s.lmtp.connect or s.lmtp.listen)
    if not is_loopback(mda_host):
        for n in resolve_networks(mda_host, "lmtp.connect"):
            rs.output.append(Rule(f"{_ip_match(n, 'daddr')} tcp dport {mda_port} accept",
                                  "LMTP to the MDA: the only connection inward (lmtp.connect)"))
            rs.output.append(Rule(f"{_ip_match(n, 'daddr')} counter drop", "nothing else towards the internal host"))
    rs.output += _common_out(s)
    if s.delivery.relayhost:
        host, port = split_hostport(s.delivery.relayhost if ":" in s.delivery.relayhost else
                                    f"{s.delivery.relayhost}:{s.delivery.remote_port}")
        rs.output += [Rule(f"{_ip_match(n, 'daddr')} tcp dport {port} accept", "SMTP to the relay host "
                           "(delivery.relayhost)") for n in resolve_networks(host, "delivery.relayhost")]
    else:
        rs.output.append(Rule(f"tcp dport {s.delivery.remote_port} accept", "SMTP to other domains' MX hosts"))
    if s.outbound.mta_sts or s.outbound.tls_rpt:
        rs.output.append(Rule("tcp dport 443 accept", "HTTPS: MTA-STS policies, TLS-RPT reports (outbound)"))


def _internal(settings: Settings, rs: Ruleset) -> None:
    s = settings
    gateways = [n for g in s.map_push.gateways for n in resolve_networks(split_hostport(g)[0], "map_push.gateways")]
    rs.input += _listeners([s.lmtp.listen], "lmtp.listen", "LMTP from the gateway", gateways)
    for key, spec in user_listen_specs(s):
        rs.input += _listeners([spec], key, key.split(".", 1)[0], s.firewall.clients)
    for g in s.map_push.gateways:
        host, port = split_hostport(g)
        rs.output += [Rule(f"{_ip_match(n, 'daddr')} tcp dport {port} accept",
                           "recipient map push to the gateway (map_push.gateways)") for n in resolve_networks(host, "map_push.gateways")]
    if s.relay_in.connect:
        host, port = split_hostport(s.relay_in.connect)
        if not is_loopback(host):
            rs.output += [Rule(f"{_ip_match(n, 'daddr')} tcp dport {port} accept",
                               "users' outbound mail to the gateway's relay listener (relay_in.connect)")
                          for n in resolve_networks(host, "relay_in.connect")]
    rs.output += _common_out(s)


def ruleset(settings: Settings, role: str | None = None) -> Ruleset:
    """The rules of `role` (default: server.role) for `settings`. Raises ConfigError when an address the
    rules need does not resolve, or the role does not match the configuration."""
    role = role or settings.server.role
    if settings.server.role != "all" and role != settings.server.role:
        raise ConfigError(f"this configuration is the {settings.server.role}'s (server.role): it cannot describe "
                          f"the {role}'s firewall")
    rs = Ruleset(role, str(settings.source or "<settings>"))
    if role in ("gateway", "all"):
        _gateway(settings, rs)
    if role in ("internal", "all"):
        _internal(settings, rs)
    rs.input += _admin(settings)
    seen: set[str] = set()
    rs.input = [r for r in rs.input if not (r.text in seen or seen.add(r.text))]  # type: ignore[func-returns-value]
    seen = set()
    rs.output = [r for r in rs.output if not (r.text in seen or seen.add(r.text))]  # type: ignore[func-returns-value]
    return rs


__all__ = ["USER_SERVICES", "Rule", "Ruleset", "ruleset", "user_listen_specs"]
