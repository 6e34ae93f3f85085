"""The server's defaults, importable without loading asyncio (the CLI reads them)."""

DEFAULT_PORT = 80
DEFAULT_BIND = "::"
DEFAULT_TIMEOUT = 15.0
