"""Run ``backchannel`` on asyncio's event loop and uvicorn's pure-Python h11 parser, as before issue 14,
for interleaved before/after runs of the loop and parser choice in one window:

    BENCH_SERVER_PYTHON_ARGS=bench/_issue14_runtime_before.py .venv/bin/python bench/bench_server.py --calls
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

from backchannel import serve as serve_module
from backchannel.server import limits

_protocol_for = limits.protocol_for


def _h11(cap: int, request_timeout: float, **_: Any) -> Any:
    return _protocol_for(cap, request_timeout, parser="h11")


serve_module.event_loop = lambda: "asyncio"
limits.protocol_for = _h11
sys.argv = ["backchannel", *sys.argv[3:]]  # this script, then "-m backchannel serve ..."
runpy.run_module("backchannel", run_name="__main__")
