"""Load the configuration file and explain every mistake by file, key and what is allowed."""

from __future__ import annotations

import json
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailbastion.config.schema import Settings
from mailbastion.core.errors import ConfigError

log = logging.getLogger("mailbastion.config")

DEFAULT_PATH = Path("var/mailbastion.toml")
SECRET_MARKERS = ("password", "secret", "key_pass", "token")


def default_config_path() -> Path:
    env = os.environ.get("MAILBASTION_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def _explain(exc: ValidationError, file: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (not allowed here; see `mailbastion config show` for the known keys)"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            ctx = err.get("ctx") or {}
            if "expected" in ctx:
                msg += f" (allowed: {ctx['expected']})"
        lines.append(f"{file}: {key}: {msg}")
    first = exc.errors()[0]
    error = ConfigError("\n".join(lines))  # each line already names the file and the key
    error.file, error.key = file, ".".join(str(p) for p in first["loc"])
    return error


def parse_settings(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Validate `data` (the parsed file) and the rules of its role (config/roles.py). Raises ConfigError with
    one line per problem, each naming the file and the key."""
    from mailbastion.config.roles import role_problems

    file = str(source or "<config>")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, file) from None
    problems = role_problems(data, settings)
    if problems:
        error = ConfigError("\n".join(f"{file}: {key}: {why}" for key, why in problems))
        error.file, error.key = file, problems[0][0]
        raise error
    settings._source = source.resolve() if source else None
    return settings


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate the configuration. Raises ConfigError (never a traceback) on any mistake."""
    p = Path(path) if path else default_config_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("configuration file not found (run `mailbastion init` first, or pass -c FILE)",
                          file=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(p)) from None
    if not data:
        # An empty file is a mistake (a truncated copy, a wrong path), not a request for every default:
        # starting would create a new, empty deployment next to it.
        raise ConfigError("the configuration file is empty (no settings at all); refusing to start. "
                          "Create a deployment with `mailbastion init`, or point -c at its mailbastion.toml",
                          file=str(p))
    return parse_settings(data, p)


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if any(m in key.lower() for m in SECRET_MARKERS) and value:
        return "********"
    return value


def effective(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked (like `postconf -n`)."""
    masked: dict[str, Any] = _mask(json.loads(settings.model_dump_json()))
    return masked


def weakened(settings: Settings) -> list[str]:
    """Settings that are weaker than the secure defaults; logged as `config.weakened` at start-up."""
    out = []
    defaults = Settings()
    if settings.relay.networks:
        out.append(f"relay.networks = {[str(n) for n in settings.relay.networks]}")
    if settings.relay.allow_public:
        out.append("relay.allow_public = true")
    if not settings.lmtp.require_client_cert:
        out.append("lmtp.require_client_cert = false")
    if settings.server.user == "root":
        out.append('server.user = "root" (serve keeps root privileges after binding its ports)')
    if settings.metrics.allow_remote and settings.metrics.listen:
        out.append(f"metrics.allow_remote = true (metrics on {settings.metrics.listen}, no authentication)")
    if settings.smtp.xclient_hosts:
        out.append(f"smtp.xclient_hosts = {settings.smtp.xclient_hosts}")
    for name in ("auth", "antivirus", "spam"):
        if not getattr(settings, name).enabled and getattr(defaults, name).enabled:
            out.append(f"{name}.enabled = false")
    out.extend(settings.directory.ldap.weakened())
    for name in ("auth", "antivirus", "spam", "outbound", "encryption", "relay_in", "portal", "lifecycle", "aup"):
        section_weakened = getattr(getattr(settings, name), "weakened", None)
        if callable(section_weakened):
            out.extend(section_weakened())
    return out
