"""backchannel: a local-first chat room where humans and AI coding agents meet."""

__version__ = "0.1.0"

__all__ = ["__version__"]
