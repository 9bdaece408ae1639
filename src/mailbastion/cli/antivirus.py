"""`mailbastion av status` and `mailbastion av update-rules [--from DIR|URL]`."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tempfile
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group

if TYPE_CHECKING:
    from mailbastion.engines.base import EngineStatus

_MAX_RULES_DOWNLOAD = 20 * 1024 * 1024


@main_group.group("av")
def av_group() -> None:
    """Anti-virus engines: status, signature freshness, YARA rule updates."""


async def _status(settings: Any) -> dict[str, Any]:
    from mailbastion.apps.feature_antivirus import build_scanners, build_watch, startup_refusals, vendor_problems

    av = settings.antivirus

    class _S:  # the services build_scanners reads: settings only
        pass

    services = _S()
    services.settings = settings  # type: ignore[attr-defined]
    scanners = build_scanners(av, services) if av.enabled else []  # type: ignore[arg-type]
    watch = build_watch(av, scanners)
    statuses = await watch.check_now()
    measure2 = watch.measure2()
    workstation = av.workstation_engine or ""
    engines = []
    for s in scanners:
        st = statuses[s.name]
        info = st.info
        differs = s.vendor.lower() != workstation
        engines.append({
            "engine": s.name,
            "vendor": s.vendor,
            "version": info.version if info else "",
            "signatures": info.signature_version if info else "",
            "signature_date": info.signature_date.isoformat(timespec="seconds") if info and info.signature_date
            else "",
            "signature_age": st.age_text if info else "",
            "age_hours": round(st.age.total_seconds() / 3600, 1) if st.age is not None else None,
            "max_age_hours": st.max_age.total_seconds() / 3600 if st.max_age else None,
            "state": _state(st),
            "stale": st.is_stale,
            "reachable": not st.error,
            "auto": st.auto,
            "error": st.error,
            "required": s.name in av.required_engines(),
            "vendor_signatures": s.vendor_signatures,
            "differs_from_workstations": differs and s.vendor_signatures,
            "counts_for_measure2": s.name in measure2.by,
        })
        close = getattr(s, "close", None)
        if close is not None:
            await close()
    return {
        "workstation_engine": workstation,
        "engines": engines,
        "measure2": {"met": measure2.met, "by": list(measure2.by), "reasons": list(measure2.reasons)},
        "problems": vendor_problems(av, scanners),
        "refuses_to_start": startup_refusals(av, scanners),
        "stale_policy": av.stale_policy,
        # Encrypted parts cannot be scanned: the gateway holds no private key (by design, measure 5).
        "inbound_encrypted": settings.encryption.inbound_encrypted,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _state(st: EngineStatus) -> str:
    if st.error:
        return "OFF" if st.auto else "UNREACHABLE"
    if st.is_stale:
        return "UNDATED" if st.age is None else "STALE"
    return "ok"


def _measure2_column(e: dict[str, Any]) -> str:
    if e["counts_for_measure2"]:
        return "counts"
    if not e["vendor_signatures"]:
        return "no (ours)"
    if not e["differs_from_workstations"]:
        return "no (same vendor)"
    return f"NO ({str(e['state']).lower()})"


@av_group.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@handle_errors
def status(config_path: Path | None, as_json: bool) -> None:
    """Each engine: vendor, version, signature date and age; and measure 2 (mail scanned by an engine with
    vendor-maintained signatures unlike the workstations': ClamAV or an ICAP product; our YARA rules and the
    attachment policy do not count).

    Exit code 1 when measure 2 is not met, or an engine is unreachable or stale."""
    settings = load(config_path)
    report = asyncio.run(_status(settings))
    m2 = report["measure2"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"workstation anti-virus: {report['workstation_engine'] or '(not declared)'}")
        header = ("ENGINE", "VENDOR", "VERSION", "SIGNATURES", "SIGNATURE DATE", "AGE", "STATE", "MEASURE 2")
        rows = [header]
        for e in report["engines"]:
            age = f"{e['age_hours']:g}h" if e["age_hours"] is not None else ("unknown" if e["reachable"] else "-")
            rows.append((e["engine"], e["vendor"], e["version"] or "-", e["signatures"] or "-",
                         e["signature_date"] or "-", age, e["state"], _measure2_column(e)))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        for r in rows:
            click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        for e in report["engines"]:
            if e["error"]:
                hint = " (used by itself once clamd answers: run freshclam, start clamd)" if e["auto"] else ""
                click.echo(f"  {e['engine']}: {e['error']}{hint}")
            if e["state"] == "UNDATED":
                click.echo(f"  {e['engine']}: signature age {e['signature_age']}; see antivirus.clamav."
                           "undated_signatures in docs/antivirus.md")
            if e["stale"]:
                click.echo(f"ALARM: {e['engine']} signatures are {e['signature_age']} "
                           f"(limit {e['max_age_hours']:g}h): check freshclam")
        if m2["met"]:
            click.echo(f"measure 2: met by {', '.join(m2['by'])}")
        else:
            click.echo("measure 2: NOT MET")
            for reason in m2["reasons"]:
                click.echo(f"  - {reason}")
            from mailbastion.engines.freshness import policy_consequence

            click.echo("  YARA and the attachment policy are defence in depth: they do not count towards measure 2."
                       f" Until it is met, {policy_consequence(report['stale_policy'])}.")
        for p in report["refuses_to_start"]:
            click.echo(f"REFUSES TO START: {p}")
        click.echo(f"encrypted mail (S/MIME, OpenPGP): opaque to every engine, the gateway holds no private keys; "
                   f"encryption.inbound_encrypted = \"{report['inbound_encrypted']}\"")
    bad = (not m2["met"] or report["problems"]
           or any(e["stale"] or (not e["reachable"] and not e["auto"]) for e in report["engines"]))
    if bad:
        raise SystemExit(1)


def _fetch(source: str) -> dict[str, bytes]:
    """Rule files from a folder, a .yar/.zip file, or an http(s)/file URL (size-capped)."""
    p = Path(source)
    if p.is_dir():
        return {f.name: f.read_bytes() for f in sorted(p.iterdir()) if f.suffix in (".yar", ".yara")}
    if p.is_file():
        data, name = p.read_bytes(), p.name
    elif source.startswith(("http://", "https://", "file://")):
        with urllib.request.urlopen(source, timeout=60) as resp:
            data = resp.read(_MAX_RULES_DOWNLOAD + 1)
        if len(data) > _MAX_RULES_DOWNLOAD:
            raise Failed(f"{source}: more than {_MAX_RULES_DOWNLOAD} bytes")
        name = source.rstrip("/").rsplit("/", 1)[-1] or "rules.yar"
    else:
        raise Failed(f"{source}: not a folder, a file or an http(s):// URL")
    if data[:4] == b"PK\x03\x04":
        out: dict[str, bytes] = {}
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                base = Path(info.filename).name
                if base.endswith((".yar", ".yara")) and info.file_size <= _MAX_RULES_DOWNLOAD:
                    out[base] = zf.read(info)
        return out
    return {name if name.endswith((".yar", ".yara")) else name + ".yar": data}


@av_group.command("update-rules")
@config_option
@click.option("--from", "source", default=None, help="folder, .yar/.zip file or URL (default: antivirus.yara.rules_url)")
@handle_errors
def update_rules(config_path: Path | None, source: str | None) -> None:
    """Install YARA rules into the first configured rule folder, after proving they compile.

    The running gateway picks them up within antivirus.yara.reload_interval seconds."""
    from mailbastion.engines.yara import SHIPPED_RULES, compile_rules

    settings = load(config_path)
    y = settings.antivirus.yara
    source = source or y.rules_url
    if not source:
        raise Failed("no source: pass --from DIR|FILE|URL or set antivirus.yara.rules_url")
    target = settings.path(y.rule_dirs[0] if y.rule_dirs else "yara")
    files = _fetch(source)
    if not files:
        raise Failed(f"{source}: no .yar files found")
    with tempfile.TemporaryDirectory(prefix="mb-yara-") as tmp:
        staged = Path(tmp)
        for name, data in files.items():
            (staged / Path(name).name).write_bytes(data)
        try:
            _, fingerprint, _ = compile_rules([SHIPPED_RULES, staged] if y.include_shipped else [staged])
        except Exception as exc:  # noqa: BLE001 - yara.SyntaxError and friends: nothing is installed
            raise Failed(f"rules from {source} do not compile, nothing installed: {exc}") from None
        target.mkdir(parents=True, exist_ok=True, mode=0o750)
        for f in staged.iterdir():
            tmp_target = target / (f.name + ".new")
            shutil.copyfile(f, tmp_target)
            tmp_target.replace(target / f.name)
    click.echo(f"installed {len(files)} rule file(s) into {target} (rule set {fingerprint})")
