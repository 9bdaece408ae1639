"""Configuration: TOML + pydantic, secure defaults, unknown keys refused."""

from mailbastion.config.loader import default_config_path, effective, load_settings, parse_settings, weakened
from mailbastion.config.schema import Settings

__all__ = ["Settings", "default_config_path", "effective", "load_settings", "parse_settings", "weakened"]
