"""monday-notify: an aiohttp backend for monday.com apps."""

__version__ = "0.1.0"
