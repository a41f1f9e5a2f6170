"""One exception tree for the whole package, translated to HTTP / MCP errors at the edges only.

::

    BackchannelError
    ├── InvalidInput            400  bad argument, clear message
    ├── Unauthorized            401
    │   └── StaleToken          401  {"error": "stale_token"}: re-register and retry
    ├── Forbidden               403  origin / CSRF / loopback checks
    ├── NotFound                404
    ├── Conflict                409  name taken, channel exists
    ├── PayloadTooLarge         413
    └── LimitReached            429  e.g. too many channels
"""

from __future__ import annotations

STALE_TOKEN_TEXT = "stale or unknown authenticated agent session. Re-register and retry."


class BackchannelError(Exception):
    """Base class; ``code`` is the machine-readable error name in JSON bodies."""

    status = 500
    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(BackchannelError):
    status = 400
    code = "invalid_input"


class Unauthorized(BackchannelError):
    status = 401
    code = "unauthorized"


class StaleToken(Unauthorized):
    code = "stale_token"

    def __init__(self, detail: str = STALE_TOKEN_TEXT) -> None:
        super().__init__(detail)


class Forbidden(BackchannelError):
    status = 403
    code = "forbidden"


class NotFound(BackchannelError):
    status = 404
    code = "not_found"


class Conflict(BackchannelError):
    status = 409
    code = "conflict"


class PayloadTooLarge(BackchannelError):
    status = 413
    code = "payload_too_large"


class LimitReached(BackchannelError):
    status = 429
    code = "limit_reached"
