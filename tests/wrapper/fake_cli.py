"""A stand-in for a file-config coding CLI (like Claude Code), for end-to-end tests and the bench.

It reads ``--mcp-config FILE`` ONCE at start, connects to the ``backchannel`` entry with the real MCP
client (streamable HTTP, handshake-era session like today's CLIs) and never reconnects. Each line
typed at its ``ready>`` prompt is handled like a model turn: ``chat_read`` on the channel named in
the prompt, then ``chat_send`` with a reply that echoes the prompt and the newest message read.
While it works, the pane shows ``esc to interrupt``. Events go as JSON lines to ``--log``.

With ``--dialog`` it behaves like Qwen Code asking for tool approval: it redraws the whole screen
for each state (so no stale ``esc to interrupt`` stays), and its first turn stops before
``chat_read`` at ``Allow execution of MCP tool "chat_read" ...?`` with no busy marker on screen. The
dialog reads single keys and logs each one (``dialog_key``); ``1`` or Enter allows (Enter is what a
careless wrapper would press), Esc declines.
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
CLEAR = "\x1b[2J\x1b[H"
DIALOG = (
    "  MCP Server: backchannel\n  Tool: chat_read\n\n"
    ' Allow execution of MCP tool "chat_read" from server "backchannel"?\n\n'
    "  › 1. Yes, allow once\n    2. No, suggest changes (esc)\n\n"
    "  Waiting for user confirmation..."
)


def ask(logfile: Path | None) -> str:
    """Show the approval dialog and read single keys (no echo) until it is answered."""
    import termios
    import tty

    print(CLEAR + DIALOG, end="", flush=True)
    log(logfile, event="dialog_open")
    saved = termios.tcgetattr(0)
    tty.setcbreak(0)
    try:
        while True:
            key = os.read(0, 1).decode(errors="replace")
            log(logfile, event="dialog_key", key=key)
            if key in ("1", "\r", "\n"):
                answer = "allowed" if key == "1" else "allowed by Enter"
                break
            if key == "\x1b":
                answer = "declined"
                break
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
    log(logfile, event="dialog_closed", answer=answer)
    return answer


def log(path: Path | None, **event: Any) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"t": time.time(), **event}) + "\n")


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def turn(
    client: Client,
    prompt: str,
    gate: Path | None,
    logfile: Path | None,
    dialog: bool = False,
    dialog_gap: float = 0.0,
    tui: bool = False,
) -> None:
    match = re.search(r'channel="([^"]+)"', prompt) or re.search(r"#([a-z0-9-]+)", prompt)
    channel = match.group(1) if match else "general"
    print((CLEAR if tui else "") + "working... (esc to interrupt)", flush=True)
    if dialog:
        answer = await anyio.to_thread.run_sync(ask, logfile)
        if dialog_gap:  # like Claude Code: the dialog is gone before the busy marker is drawn
            print(CLEAR + answer, flush=True)
            await anyio.sleep(dialog_gap)
        print(CLEAR + f"{answer}; working... (esc to interrupt)", flush=True)
    read = await client.call_tool("chat_read", {"channel": channel})
    if read.is_error:
        log(logfile, event="error", tool="chat_read", text=text_of(read))
        print(f"ERROR {text_of(read)}", flush=True)
        return
    messages = json.loads(text_of(read)) if text_of(read).lstrip().startswith("[") else []
    others = [m["text"] for m in messages if not m["text"].startswith("echo prompt=")]  # not our own
    newest = others[-1] if others else ""
    log(logfile, event="read", channel=channel, saw=newest)  # not "newest": that marks a finished turn
    if gate is not None:  # a FIFO: stay busy until the test lets us go on
        await anyio.to_thread.run_sync(gate.read_text)
    reply = f"echo prompt={json.dumps(prompt)} read={json.dumps(newest)}"
    sent = await client.call_tool("chat_send", {"channel": channel, "message": reply})
    log(logfile, event="turn", prompt=prompt, channel=channel, newest=newest, sent=text_of(sent))
    print((CLEAR if tui else "") + f"{'ERROR' if sent.is_error else 'done'}: {text_of(sent)}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mcp-config", type=Path, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--gate", type=Path, help="FIFO read before each chat_send (keeps us busy)")
    parser.add_argument("--dialog", action="store_true", help="first turn asks for approval (see above)")
    parser.add_argument(
        "--dialog-gap", type=float, default=0.0, help="seconds with no marker after the dialog"
    )
    parser.add_argument("--exit", type=int, help="exit with this status right after connecting (a crash)")
    args, _unknown = parser.parse_known_args()
    config = json.loads(args.mcp_config.read_text(encoding="utf-8"))  # read once, never again
    url = config["mcpServers"]["backchannel"]["url"]
    headers = config["mcpServers"]["backchannel"].get("headers", {})
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(15, read=300))
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        seen_env = {k: v for k, v in os.environ.items() if k.startswith("BCTEST_")}
        log(args.log, event="connected", url=url, argv=sys.argv[1:], pid=os.getpid(), env=seen_env)
        if args.exit is not None:
            os._exit(args.exit)
        while True:
            try:
                line = await anyio.to_thread.run_sync(input, PROMPT)
            except EOFError:
                return
            if line.strip():
                try:
                    await turn(
                        client,
                        line,
                        args.gate,
                        args.log,
                        dialog=args.dialog,
                        tui=args.dialog,
                        dialog_gap=args.dialog_gap,
                    )
                    args.dialog = False  # only the first turn asks
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
