"""A stand-in for a file-config coding CLI (like Claude Code), for end-to-end tests and the bench.

It reads ``--mcp-config FILE`` ONCE at start, connects to the ``backchannel`` entry with the real MCP
client (streamable HTTP, handshake-era session like today's CLIs) and never reconnects. Each line
typed at its ``ready>`` prompt is handled like a model turn: ``chat_read`` on the channel named in
the prompt, then ``chat_send`` with a reply that echoes the prompt and the newest message read.
While it works, the pane shows ``esc to interrupt``. Events go as JSON lines to ``--log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

PROMPT = "fake-cli ready> "


def log(path: Path | None, **event: Any) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"t": time.time(), **event}) + "\n")


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def turn(client: Client, prompt: str, gate: Path | None, logfile: Path | None) -> None:
    match = re.search(r'channel="([^"]+)"', prompt) or re.search(r"#([a-z0-9-]+)", prompt)
    channel = match.group(1) if match else "general"
    print("working... (esc to interrupt)", flush=True)
    read = await client.call_tool("chat_read", {"channel": channel})
    if read.is_error:
        log(logfile, event="error", tool="chat_read", text=text_of(read))
        print(f"ERROR {text_of(read)}", flush=True)
        return
    messages = json.loads(text_of(read)) if text_of(read).lstrip().startswith("[") else []
    others = [m["text"] for m in messages if not m["text"].startswith("echo prompt=")]  # not our own
    newest = others[-1] if others else ""
    if gate is not None:  # a FIFO: stay busy until the test lets us go on
        await anyio.to_thread.run_sync(gate.read_text)
    reply = f"echo prompt={json.dumps(prompt)} read={json.dumps(newest)}"
    sent = await client.call_tool("chat_send", {"channel": channel, "message": reply})
    log(logfile, event="turn", prompt=prompt, channel=channel, newest=newest, sent=text_of(sent))
    print(f"{'ERROR' if sent.is_error else 'done'}: {text_of(sent)}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mcp-config", type=Path, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--gate", type=Path, help="FIFO read before each chat_send (keeps us busy)")
    args, _unknown = parser.parse_known_args()
    config = json.loads(args.mcp_config.read_text(encoding="utf-8"))  # read once, never again
    url = config["mcpServers"]["backchannel"]["url"]
    headers = config["mcpServers"]["backchannel"].get("headers", {})
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(15, read=300))
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        seen_env = {k: v for k, v in os.environ.items() if k.startswith("BCTEST_")}
        log(args.log, event="connected", url=url, argv=sys.argv[1:], pid=os.getpid(), env=seen_env)
        while True:
            try:
                line = await anyio.to_thread.run_sync(input, PROMPT)
            except EOFError:
                return
            if line.strip():
                try:
                    await turn(client, line, args.gate, args.log)
                except Exception as exc:  # a real CLI shows the error and stays up; so do we
                    log(args.log, event="error", tool="?", text=repr(exc), trace=traceback.format_exc())
                    print(f"ERROR {exc!r}", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except BaseException:
        log_path = Path(sys.argv[sys.argv.index("--log") + 1]) if "--log" in sys.argv else None
        log(log_path, event="crash", trace=traceback.format_exc())
        raise
