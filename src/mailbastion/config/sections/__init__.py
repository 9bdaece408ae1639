"""One pydantic model per configuration section. Secure defaults; unknown keys refused."""
