"""Hardened systemd units for a role, generated from its configuration (`mailbastion units`).

The service starts as `server.user` (never root): the only capability it may ever hold is
CAP_NET_BIND_SERVICE, and only when a listener's port is below 1024 (the MX's 25); `serve` gives that up
too once its ports are bound (apps/privileges.py). The file system is read-only but for data_dir (and the
spool, mailboxes and log folder when they live elsewhere); /home, /root, /tmp, devices, kernel tunables,
modules, logs, the clock and control groups are out of reach; system calls are limited to
@system-service; address families to IPv4, IPv6 and Unix sockets. On the internal host, where every peer is
known, IP traffic is limited to loopback, the gateway(s) and the clients of the user-facing listeners.

`systemd-analyze security --offline=true UNIT` scores what it writes (docs/architecture.md, change 20, has the figures).
"""

from __future__ import annotations

import grp
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mailbastion.config import Settings
from mailbastion.config.sections.split import is_loopback, split_hostport
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.firewall import user_listen_specs
from mailbastion.deploy.link import resolve_networks

DESCRIPTIONS = {
    "gateway": "mailbastion gateway (DMZ MTA: MX, filters, queue)",
    "internal": "mailbastion internal host (MDA, directory, mailboxes)",
    "all": "mailbastion (all roles on one host)",
}
_HIDDEN_HOMES = ("/home", "/root", "/run/user")


@dataclass(frozen=True, slots=True)
class Unit:
    name: str  # "mailbastion-gateway.service"
    text: str


def _listen_specs(settings: Settings, role: str) -> list[str]:
    s = settings
    specs: list[str] = []
    if role in ("gateway", "all"):
        specs += [*s.smtp.listen, *s.smtp.implicit_tls_listen]
        specs += [s.map_push.listen] if s.map_push.listen else []
    if role in ("internal", "all"):
        specs.append(s.lmtp.listen)
        specs += [spec for _, spec in user_listen_specs(s)]
    specs += [s.metrics.listen] if s.metrics.listen else []
    return specs


def _writable(settings: Settings) -> list[str]:
    """data_dir, and what lives outside it: the spool, mailboxes, the log file's folder."""
    base = settings.base_dir
    paths = [base]
    for sub in (settings.spool.dir, settings.mailbox.root):
        p = settings.path(sub)
        if not p.is_relative_to(base):
            paths.append(p)
    if settings.server.log_file:
        log_dir = settings.path(settings.server.log_file).parent
        if not log_dir.is_relative_to(base):
            paths.append(log_dir)
    return [str(p) for p in dict.fromkeys(paths)]


def _group(user: str) -> str:
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return user  # `useradd --user-group` (init, make run) gives the user a group of its own name


def _public_user_listeners(settings: Settings) -> list[str]:
    """The user services' listen addresses other than loopback (a loopback listener needs no client)."""
    return [spec for _, spec in user_listen_specs(settings) if not is_loopback(split_hostport(spec)[0])]


def _ip_allow(settings: Settings, role: str) -> list[str]:
    """IPAddressAllow for the internal host: loopback, the gateways, the user services' clients."""
    if role != "internal":
        return []
    allow = ["localhost"]
    for g in settings.map_push.gateways:
        allow += [str(n) for n in resolve_networks(split_hostport(g)[0], "map_push.gateways")]
    allow += [str(n) for n in settings.firewall.clients]
    if _public_user_listeners(settings) and not settings.firewall.clients:
        return []  # user-facing listeners open to any client: no address allow-list
    for ns in settings.dns.nameservers:
        allow.append(ns.split("#")[0])
    return list(dict.fromkeys(allow))


def render(settings: Settings, role: str | None = None, *, python: str | None = None) -> Unit:
    """The unit of `role` (default: server.role). Raises ConfigError when the role does not match the
    configuration or the configuration file is not known."""
    role = role or settings.server.role
    if settings.server.role != "all" and role != settings.server.role:
        raise ConfigError(f"this configuration is the {settings.server.role}'s (server.role): it cannot run the "
                          f"{role} role")
    if settings.source is None:
        raise ConfigError("the unit needs the configuration file's path (-c FILE)")
    user = settings.server.user
    if user == "root":
        raise ConfigError('server.user = "root": a unit runs the service as an unprivileged user; set server.user',
                          key="server.user")
    python = python or sys.executable
    privileged = sorted({p for spec in _listen_specs(settings, role)
                         for _, p in [split_hostport(spec)] if p < 1024})
    caps = "CAP_NET_BIND_SERVICE" if privileged else ""
    needed = [python, str(Path(python).resolve()), str(settings.source), *_writable(settings),
              str(Path(__file__).resolve().parents[1])]
    hidden = [p for p in needed if any(PurePosixPath(p).is_relative_to(h) for h in _HIDDEN_HOMES)]
    lines = [
        "# Generated by `mailbastion units` from " + str(settings.source) + "; regenerate after changing it.",
        "[Unit]",
        f"Description={DESCRIPTIONS[role]}",
        "Documentation=https://github.com/mailbastion/mailbastion/blob/main/docs/deployment.md",
        "After=network-online.target" + (" clamav-daemon.service" if role != "internal" else ""),
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={python} -m mailbastion serve -c {settings.source} --role {role}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "TimeoutStopSec=90",
        "Restart=on-failure",
        "RestartSec=5s",
        f"User={user}",
        f"Group={_group(user)}",
        "UMask=0077",
        "LimitNOFILE=65536",
        f"# Ports below 1024: {', '.join(map(str, privileged)) or 'none'}; serve drops this once they are bound.",
        f"AmbientCapabilities={caps}",
        f"CapabilityBoundingSet={caps}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={' '.join(_writable(settings))}",
        ("ProtectHome=yes" if not hidden else
         f"# ProtectHome=yes would hide {', '.join(hidden)}: install Python and mailbastion outside /home and /root\n"
         "ProtectHome=read-only"),
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateMounts=yes",
        "DevicePolicy=closed",
        *(["PrivateUsers=yes"] if not privileged else []),  # a user namespace cannot bind privileged ports
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RemoveIPC=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "KeyringMode=private",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources @obsolete @debug @mount @cpu-emulation @raw-io @reboot @swap @module",
        # capset: serve clears the ambient CAP_NET_BIND_SERVICE once its ports are bound
        *(["SystemCallFilter=capset"] if privileged else []),
        "SystemCallErrorNumber=EPERM",
    ]
    allow = _ip_allow(settings, role)
    if allow:
        lines += ["IPAddressDeny=any", f"IPAddressAllow={' '.join(allow)}"]
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return Unit(f"mailbastion-{role}.service", "\n".join(lines))


def write(settings: Settings, out: Path, role: str | None = None) -> Path:
    """Write the unit into the folder `out` (made if missing); returns its path."""
    unit = render(settings, role)
    out.mkdir(parents=True, exist_ok=True)
    path = out / unit.name
    path.write_text(unit.text, encoding="utf-8")
    return path


__all__ = ["DESCRIPTIONS", "Unit", "render", "write"]
