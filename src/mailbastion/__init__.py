"""mailbastion: a mail system whose every security measure is built in, on by default, and proven live."""

__version__ = "0.1.0"
__all__ = ["__version__"]
