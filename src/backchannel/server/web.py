"""The page people open: index.html with the per-start session secret, and the static assets."""

from __future__ import annotations

import hmac
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backchannel.people import PERSON_COOKIE_MAX_AGE
from backchannel.server.deps import services

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(str(resources.files("backchannel") / "web" / "static"))

LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>backchannel: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui;max-width:28rem;margin:4rem auto">
<h1>backchannel</h1><p>This server is reachable from the network. Enter the login secret that
<code>backchannel serve</code> printed.</p>
<form method="post" action="/login"><label>Login secret <input name="secret" type="password" autofocus
required></label> <button>Sign in</button></form>{error}</body></html>"""


def _with_cookie(response: Response, request: Request) -> Response:
    svc = services(request)
    response.set_cookie(
        svc.guard.session_cookie,
        svc.guard.secrets.session,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


async def _with_person(response: Response, request: Request) -> Response:
    """Network mode: give this signed-in browser its long-lived person key (kept, and its lifetime
    renewed, if it has one), so edits and deletes follow the browser, not a display name.

    A loopback-only server mints nothing: every browser there is the local person, no key needed,
    so page loads (any local process, a cross-site ``<img>``) cannot grow the database.
    """
    svc = services(request)
    if not svc.settings.allow_network:
        return response
    registry = svc.people
    key = request.cookies.get(registry.cookie)
    if await registry.by_key(key) is None:
        key, _ = await registry.new_person_key()
    assert key is not None
    response.set_cookie(
        registry.cookie,
        key,
        max_age=PERSON_COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/")
async def index(request: Request) -> Response:
    svc = services(request)
    if svc.settings.allow_network and not svc.guard.human_credential(request, header_only=False):
        return HTMLResponse(LOGIN_PAGE.format(error=""))
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{SESSION}}", svc.guard.secrets.session)
    response = HTMLResponse(
        html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                "form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
    return await _with_person(_with_cookie(response, request), request)


@router.post("/login")
async def login(request: Request, secret: str = Form(max_length=200)) -> Response:
    svc = services(request)
    svc.guard.check_origin(request)
    if not hmac.compare_digest(secret.encode(), svc.guard.secrets.login.encode()):
        return HTMLResponse(LOGIN_PAGE.format(error="<p role=alert>Wrong secret.</p>"), status_code=401)
    return _with_cookie(RedirectResponse("/", status_code=303), request)
