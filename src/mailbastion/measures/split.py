"""Measure 5: the MTA in the DMZ, the MDA inside. What this host can show about the split:

- the role (`server.role`): an all-in-one puts the MTA and the MDA on one host, which fails the measure;
- on a gateway: no CA key present (the self-check's file part), the recipient map's serial and age against
  `map_push.max_age` (the map file the gateway serves);
- on the internal host: gateways configured (`map_push.gateways`), and each one's last accepted push, read
  from our own metrics endpoint (`map_push_last_success_timestamp_seconds`, apps/map_publisher.py) when
  `[metrics] listen` is set; not readable otherwise (then UNKNOWN: an unproven push is not passed);
- the firewall rules in force: `nft list table inet mailbastion` (as root, with nft), else "could not check".
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import MET, NOT_MET, UNKNOWN, MeasureResult

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["SplitProbe", "firewall_in_force", "push_successes"]

_PUSH = re.compile(r'^(?:mailbastion_)?map_push_last_success_timestamp_seconds\{gateway="([^"]*)"\}\s+(\S+)$', re.MULTILINE)


def firewall_in_force(role: str) -> tuple[bool | None, str]:
    """(True: the table is loaded / False: it is not / None: could not check, evidence line)."""
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        return None, "firewall: could not check (needs nft and root)"
    res = subprocess.run([nft, "list", "table", "inet", "mailbastion"], capture_output=True, text=True, timeout=30,
                         check=False)
    if res.returncode != 0:
        return False, (f"firewall: no nftables table inet mailbastion in force (load `mailbastion firewall --role "
                       f"{role}` with nft -f)")
    rules = sum(1 for line in res.stdout.splitlines() if " accept" in line or " drop" in line)
    return True, f"firewall: table inet mailbastion in force ({rules} accept/drop rules)"


def push_successes(listen: str, timeout: float = 10.0) -> dict[str, float]:
    """gateway -> time of its last accepted push, from our metrics endpoint. Raises OSError."""
    host, _, port = listen.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
        text = resp.read(16 * 1024 * 1024).decode("utf-8", "replace")
    return {g: float(v) for g, v in _PUSH.findall(text)}


class SplitProbe:
    numbers: tuple[int, ...] = (5,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        s = self.settings
        role = s.server.role
        lines = [f"role: {role}"]
        fw, fw_line = firewall_in_force(role)
        if role == "all":
            lines.append(fw_line)
            return MeasureResult(5, NOT_MET, "all-in-one: the Internet-facing MTA and the mailbox server share this "
                                 "host", tuple(lines), "mailbastion audit",
                                 fix="split: `mailbastion init --role gateway` on a DMZ host, `--role internal` "
                                 "inside (docs/deployment guide)")
        bad: list[str] = []
        unknown: list[str] = []
        if role == "gateway":
            from mailbastion.directory.recipient_map import read_map

            if s.path(s.tls.ca_key).exists():
                bad.append(f"the CA key {s.tls.ca_key} is on the gateway: keep it on the internal host")
            else:
                lines.append("no CA key on this host")
            try:
                data = read_map(s.path(s.directory.recipient_map))
                age = data.age()
                lines.append(f"recipient map: serial {data.serial}, age "
                             f"{'unknown' if age is None else f'{age:.0f}s'} (limit {s.map_push.max_age:.0f}s)")
                if age is None or age > s.map_push.max_age:
                    bad.append("the recipient map is older than map_push.max_age: is the internal host pushing?")
            except (OSError, ValueError) as exc:
                bad.append(f"no recipient map: {str(exc).splitlines()[0][:200]}")
        else:
            gateways = list(s.map_push.gateways)
            if not gateways:
                bad.append("no gateway configured (map_push.gateways is empty): where does mail come in?")
            lines.append("gateways: " + (", ".join(gateways) or "(none)"))
            if gateways and not s.metrics.listen:
                unknown.append("the last map push cannot be read: set [metrics] listen")
            elif gateways:
                try:
                    pushed = push_successes(s.metrics.listen)
                except OSError as exc:
                    pushed = {}
                    unknown.append(f"metrics endpoint {s.metrics.listen}: {exc}")
                for g in gateways:
                    when = pushed.get(g)
                    if when is None:
                        bad.append(f"{g}: no map push accepted since the server started")
                    else:
                        age = time.time() - when
                        lines.append(f"{g}: last map push accepted {age:.0f}s ago")
                        if age > 2 * s.map_push.interval + s.map_push.timeout:
                            bad.append(f"{g}: last push {age:.0f}s ago (interval {s.map_push.interval:.0f}s)")
        lines.append(fw_line)
        if fw is False:
            bad.append("firewall rules not in force")
        elif fw is None:
            unknown.append("firewall rules could not be checked")
        if bad:
            return MeasureResult(5, NOT_MET, "; ".join(bad), tuple(lines), "mailbastion audit")
        if unknown:
            return MeasureResult(5, UNKNOWN, "; ".join(unknown), tuple(lines), "mailbastion audit",
                                 fix="run the audit as root with nft installed; set [metrics] listen")
        return MeasureResult(5, MET, f"{role} role: separate host, links and firewall in order", tuple(lines),
                             "mailbastion audit")
