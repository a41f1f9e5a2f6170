"""Run ``backchannel`` with issue 14's per-call changes put back, for before/after runs in one window.

    BENCH_SERVER_PYTHON_ARGS=bench/_issue14_before.py .venv/bin/python bench/bench_server.py --calls

Undoes, in this server process only: JSON responses on ``/mcp`` (back to SSE), the token cache
(every call reads the store) and the MCP routes' place at the front of the route table.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

from mcp.server.mcpserver import server as mcp_server

from backchannel import registry
from backchannel import serve as serve_module
from backchannel.config import Settings
from backchannel.models import Agent
from backchannel.server import app as app_module

_streamable_http_app = mcp_server.MCPServer.streamable_http_app


def _sse_responses(self: mcp_server.MCPServer, **kwargs: Any) -> Any:
    return _streamable_http_app(self, **{**kwargs, "json_response": False})


async def _uncached(self: registry.Registry, token_hash: str) -> Agent | None:
    return await self.store.agent_by_token_hash(token_hash)


_create_app = app_module.create_app


def _mcp_routes_last(settings: Settings) -> Any:
    app = _create_app(settings)
    routes = app.router.routes
    mcp = [r for r in routes if getattr(r, "path", None) in ("/mcp", "/sse", "/messages")]
    for route in mcp:
        routes.remove(route)
    routes.extend(mcp)
    return app


mcp_server.MCPServer.streamable_http_app = _sse_responses  # type: ignore[method-assign]
registry.Registry._agent_by_token = _uncached  # type: ignore[method-assign]
serve_module.create_app = _mcp_routes_last
sys.argv = ["backchannel", *sys.argv[3:]]  # this script, then "-m backchannel serve ..."
runpy.run_module("backchannel", run_name="__main__")
