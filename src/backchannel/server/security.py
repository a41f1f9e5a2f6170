"""Who may do what: the browser session, the local CLI secret, agent tokens, Host and Origin checks.

Threat model (loopback default): other local users and processes are trusted only as far as they
can read the 0600 files in the data dir or open the UI; other web sites are not trusted at all.
A page on another origin can make the browser send requests here, so every state-changing request
needs the session secret in a header (a cross-site page can neither read it nor add the header
without a CORS preflight we never grant) and a matching ``Origin``; the WebSocket upgrade checks
the cookie and ``Origin``. ``Host`` is checked against loopback names so DNS rebinding cannot turn
a foreign page into a same-origin one.

Network mode (``--allow-network``): a same-host forwarder (stunnel, socat, ``ssh -L``, a TLS
terminator) makes every client look like loopback, so the peer address proves nothing. Every
registration then needs the join key (local wrappers read it from the 0600 ``join_key`` file), and
the MCP endpoints refuse requests without a valid agent token before they read anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    # Annotations only: importing starlette.requests at run time pulls in email, http.client and
    # python_multipart (~27 ms) for every process that imports this module's helpers.
    from starlette.requests import HTTPConnection

from backchannel.config import Settings
from backchannel.errors import Forbidden, Unauthorized

SESSION_HEADER = "x-backchannel-session"
JOIN_KEY_HEADER = "x-join-key"
LOCAL_SECRET_FILE = "local_secret"
JOIN_KEY_FILE = "join_key"
_MIN_SECRET_CHARS = 16
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def cookie_name(prefix: str, data_dir: Path) -> str:
    """A cookie name of this server's own (``prefix`` + a digest of its data dir).

    Browsers keep cookies per host, not per port: two servers on one machine sharing a name would
    overwrite each other's cookie, and the first server's page would lose its session or person.
    """
    digest = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:12]
    return f"{prefix}_{digest}"


def read_or_create_secret(data_dir: Path, filename: str = LOCAL_SECRET_FILE) -> str:
    """A secret in a 0600 file, created atomically on first use."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / filename
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        existing = path.read_text().strip()
        if len(existing) >= _MIN_SECRET_CHARS:
            return existing
        # Empty or truncated (a crash mid-write, a hand edit): an empty secret would match an
        # empty header, so replace it atomically.
        secret = secrets.token_urlsafe(32)
        spare = path.with_name(f".{filename}.{os.getpid()}")
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        os.replace(spare, path)
        return secret
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def is_loopback_address(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True, slots=True)
class Secrets:
    session: str  # per start, given to the browser
    local: str  # persistent, 0600 file, for local CLI commands
    join_key: str  # --allow-network: every registration must present it (0600 file in the data dir)
    login: str  # --allow-network: people must present it once to get the session cookie

    @classmethod
    def create(cls, settings: Settings) -> Secrets:
        return cls(
            session=secrets.token_urlsafe(32),
            local=read_or_create_secret(settings.data_dir),
            # Kept across restarts in network mode so configured remote agents keep working.
            join_key=read_or_create_secret(settings.data_dir, JOIN_KEY_FILE)
            if settings.allow_network
            else secrets.token_urlsafe(16),
            login=secrets.token_urlsafe(16),
        )


class Guard:
    """The checks, in one place; endpoints call them and errors map to 401/403 at the edge."""

    def __init__(self, settings: Settings, secrets_: Secrets) -> None:
        self.settings = settings
        self.secrets = secrets_
        self.session_cookie = cookie_name("bc_session", settings.data_dir)

    def human_credential(self, conn: HTTPConnection, *, header_only: bool) -> bool:
        value = conn.headers.get(SESSION_HEADER)
        if value is None and not header_only:
            value = conn.cookies.get(self.session_cookie)
        return _same(value, self.secrets.session) or _same(value, self.secrets.local)

    def is_local_cli(self, conn: HTTPConnection) -> bool:
        """The request carries the 0600 local secret: the ``backchannel`` CLI of this machine's user."""
        return _same(conn.headers.get(SESSION_HEADER), self.secrets.local)

    def check_origin(self, conn: HTTPConnection) -> None:
        origin = conn.headers.get("origin")
        if origin is None:
            return  # not a browser (curl, the CLI); the secret header still applies
        host = conn.headers.get("host", "")
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc != host:
            raise Forbidden(f"cross-origin request from {origin} refused")

    def require_human(self, conn: HTTPConnection, *, state_changing: bool) -> None:
        """Reads accept the cookie; writes need the header (CSRF) and a same-origin ``Origin``."""
        if state_changing:
            self.check_origin(conn)
        if not self.human_credential(conn, header_only=state_changing):
            raise Unauthorized(
                "missing or wrong session secret: open the UI again, or use `backchannel send`"
                if state_changing
                else "missing session: open the UI at / first"
            )

    def require_agent_origin(self, conn: HTTPConnection) -> None:
        """Agent endpoints are for wrappers, never for browsers: any ``Origin`` is refused."""
        if conn.headers.get("origin") is not None:
            raise Forbidden("agent endpoints do not accept browser requests")

    def require_registration_allowed(self, conn: HTTPConnection) -> None:
        """Loopback mode: loopback peers only. Network mode: the join key, from everyone.

        In network mode the peer address proves nothing: behind a same-host forwarder every client
        is 127.0.0.1, so a loopback exemption would let the whole network in.
        """
        self.require_agent_origin(conn)
        if self.settings.allow_network:
            if _same(conn.headers.get(JOIN_KEY_HEADER), self.secrets.join_key):
                return
            raise Forbidden(
                "network mode: registration needs the join key in X-Join-Key "
                f"(printed by `backchannel serve`, and in the data dir's {JOIN_KEY_FILE} file)"
            )
        client = conn.client.host if conn.client else None
        if is_loopback_address(client):
            return
        raise Forbidden(
            "registration is only accepted from this machine (start the server with --allow-network)"
        )

    def host_allowed(self, host_header: str | None) -> bool:
        if self.settings.allow_network:
            return True
        if not host_header:
            return False
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return host in _LOOPBACK_HOSTS or is_loopback_address(host)

    def mcp_origin_allowed(self, origin: str | None) -> bool:
        """MCP from a browser page only if the page is on this machine (the spec asks servers to check
        ``Origin`` against DNS rebinding); no ``Origin`` is not a browser. Network mode: the token
        gate decides. Loopback means the same as for ``Host``: :func:`is_loopback_address`."""
        if origin is None or self.settings.allow_network:
            return True
        try:
            parts = urlsplit(origin)
            host = parts.hostname
        except ValueError:  # e.g. an unbalanced "[" in the host
            return False
        return parts.scheme in ("http", "https") and is_loopback_address(host)


async def refuse_foreign_host(guard: Guard, scope: Scope, send: Send) -> bool:
    """Answer a request whose ``Host`` is not ours (DNS rebinding) and return True; else False.

    The app's outermost step, for every HTTP request and WebSocket, MCP included.
    """
    if guard.settings.allow_network:
        return False
    host = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
            break
    if guard.host_allowed(host.decode("latin-1")):
        return False
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403})
    else:
        await send_json_error(send, 403, "forbidden", "unexpected Host header")
    return True


def agent_token(headers: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <t>``, else ``X-Agent-Token``: the one rule for REST, MCP and the gate."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("x-agent-token", "").strip() or None


class BodyLimitMiddleware:
    """Refuse oversized JSON bodies before anything reads them into memory.

    FastAPI parses a body before auth dependencies run, so without this an anonymous client could
    make the server buffer gigabytes. Routes that stream their own bodies (uploads, imports) are
    exempt: they enforce their own limits while reading. MCP never comes through here (its endpoint
    has its own limit).
    """

    EXEMPT = ("/api/uploads", "/api/import")

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or scope["path"].startswith(self.EXEMPT)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        # Chunked or lying: read at most max_bytes ourselves, then replay the body to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_json_error(send, 413, "payload_too_large", f"request body over {self.max_bytes} bytes")


async def send_json_error(send: Send, status: int, code: str, detail: str) -> None:
    """The app's error shape, for middleware that answers before any route runs."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
