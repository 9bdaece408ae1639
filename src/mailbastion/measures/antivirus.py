"""Measures 1 and 2: what `mailbastion av status` reports, and EICAR through the real listener.

    AntivirusProbe(av_status_command(settings))   # 1 and 2 from `av status --json` (its one logic, not a copy)
    EicarProbe(target)                            # 1: EICAR in three wrappings, each must be refused as malware

Measure 2 counts only engines with vendor-maintained signatures unlike the workstations' (the rule of `av
status`: our YARA rules and the attachment policy are defence in depth, not an engine).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mailbastion.core.child import run_child
from mailbastion.measures.board import MET, NOT_MET, PROBE_TIMEOUT, MeasureResult
from mailbastion.measures.smtp_probe import MailTarget, deliver_probe

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["EICAR", "AntivirusProbe", "AvStatus", "EicarProbe", "av_status_command", "eicar_messages"]

AvStatus = Callable[[], Awaitable[Mapping[str, Any]]]  # the JSON report of `mailbastion av status --json`

# The EICAR test file (https://www.eicar.org/download-anti-malware-testfile/): every engine detects it.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class AntivirusProbe:
    """Measures 1 and 2 from the `av status` report."""

    numbers: tuple[int, ...] = (1, 2)

    def __init__(self, status: AvStatus) -> None:
        self.status = status

    async def __call__(self) -> Sequence[MeasureResult]:
        report = await self.status()
        engines = list(report.get("engines", []))
        m2 = report.get("measure2", {})
        stale = [e["engine"] for e in engines if e.get("stale")]
        down = [e["engine"] for e in engines if not e.get("reachable") and not e.get("auto")]
        off = [e["engine"] for e in engines if not e.get("reachable") and e.get("auto")]
        lines = tuple(f"{e['engine']} ({e['vendor']}): {e['state']}, signatures {e.get('signature_age') or '-'}"
                      for e in engines)
        signed = [e["engine"] for e in engines if e.get("vendor_signatures") and e.get("reachable")
                  and not e.get("stale")]
        src = "mailbastion av status"
        if stale or down:
            one = MeasureResult(1, NOT_MET, "engines stale or unreachable: " + ", ".join(stale + down), lines, src,
                                fix="start the engines named and refresh their signatures (freshclam)")
        elif not signed:
            # Our YARA rules and attachment policy scan every message, but carry no vendor signatures to be fresh.
            why = f" ({', '.join(off)} does not answer)" if off else ""
            one = MeasureResult(1, NOT_MET, f"no engine with vendor signatures answers{why}", lines, src,
                                fix="start clamd and run freshclam, then `mailbastion av status`")
        else:
            one = MeasureResult(1, MET, f"every engine answers; fresh signatures in {', '.join(signed)}", lines, src)
        if m2.get("met"):
            two = MeasureResult(2, MET, "met by " + ", ".join(m2.get("by", [])),
                                (f"workstations: {report.get('workstation_engine') or '(not declared)'}",), src)
        else:
            two = MeasureResult(2, NOT_MET, "no vendor engine unlike the workstations' answers",
                                tuple(m2.get("reasons", [])), src)
        return [one, two]


def av_status_command(settings: Settings) -> AvStatus:
    """The source of measures 1 and 2: `mailbastion av status --json`, run as a child process, exactly as an
    administrator would (neither the portal nor the audit builds the engines itself)."""

    async def run() -> Mapping[str, Any]:
        if settings.source is None:
            raise RuntimeError("no configuration file to hand to `mailbastion av status`")
        done = await run_child([sys.executable, "-m", "mailbastion", "av", "status", "--json", "-c",
                                str(settings.source)], PROBE_TIMEOUT)  # cancelled: the portal or the audit stops
        try:
            data: Mapping[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise RuntimeError(f"av status said: {done.stderr.decode(errors='replace').strip()[:300]}") from None
        return data

    return run


def _mime(boundary: str, parts: list[tuple[str, str, bytes]], subject: str) -> bytes:
    """A multipart/mixed message with a text part and `parts` (content type, extra headers, body)."""
    head = (f"From: mailbastion audit <audit@audit-probe.invalid>\r\nTo: <postmaster>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{boundary}@audit-probe.invalid>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n")
    body = [f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "A test of the anti-virus by `mailbastion audit`; it must be refused.\r\n".encode()]
    for ctype, headers, data in parts:
        body.append(f"--{boundary}\r\nContent-Type: {ctype}\r\n{headers}\r\n".encode() + data + b"\r\n")
    body.append(f"--{boundary}--\r\n".encode())
    return head.encode() + b"".join(body)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def eicar_messages() -> dict[str, bytes]:
    """EICAR in three wrappings: a plain attachment, inside a zip, base64 in a nested message/rfc822."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("eicar.com", EICAR)
    encoded = "Content-Transfer-Encoding: base64\r\n"
    inner = _mime("inner-eicar", [("application/octet-stream; name=\"eicar.com\"",
                                   encoded + "Content-Disposition: attachment; filename=\"eicar.com\"\r\n",
                                   _b64(EICAR))], "nested")
    return {
        "plain attachment": _mime("plain-eicar", [("application/octet-stream; name=\"eicar.com\"",
                                                   "Content-Disposition: attachment; filename=\"eicar.com\"\r\n",
                                                   EICAR)], "audit: EICAR attached"),
        "zip": _mime("zip-eicar", [("application/zip; name=\"eicar.zip\"",
                                    encoded + "Content-Disposition: attachment; filename=\"eicar.zip\"\r\n",
                                    _b64(buf.getvalue()))], "audit: EICAR zipped"),
        "base64 in a nested message": _mime("nested-eicar", [("message/rfc822", "", inner)],
                                            "audit: EICAR in a forwarded message"),
    }


class EicarProbe:
    """Measure 1, live: each wrapping sent through the real MX listener must be refused as malware (a 5xx
    whose text says malware; a refusal for another reason proves nothing about the scanners)."""

    numbers: tuple[int, ...] = (1,)

    def __init__(self, target: MailTarget | None, why_not: str = "") -> None:
        self.target = target
        self.why_not = why_not

    async def __call__(self) -> Sequence[MeasureResult]:
        if self.target is None:
            return [MeasureResult(1, NOT_MET, f"EICAR could not be sent: {self.why_not}",
                                  fix="run the audit on the host of the MX listener")]
        lines, bad = [], []
        for name, raw in eicar_messages().items():
            seen = await asyncio.to_thread(deliver_probe, self.target, raw)
            lines.append(f"EICAR, {name}: {seen.text}")
            if not (seen.refused and "malware" in seen.final.lower()):
                bad.append(name)
        if bad:
            return [MeasureResult(1, NOT_MET, "EICAR not refused as malware: " + ", ".join(bad), tuple(lines),
                                  "mailbastion audit",
                                  fix="every engine must scan every message: check antivirus.* and the engines")]
        return [MeasureResult(1, MET, "EICAR refused in all three wrappings", tuple(lines), "mailbastion audit")]
