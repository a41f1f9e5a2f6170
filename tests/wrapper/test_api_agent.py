"""API agents end to end: a real server, the real ApiAgent (openai client, MCP SDK client, identity
proxy) and a scripted OpenAI-compatible model served over real HTTP on a free port."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.conftest import RunningServer, ok, pending, register
from tests.wrapper.fake_chat_api import Canned, FakeChatApi, Seen, wake_text
from typer.testing import CliRunner

from backchannel.cli import app as cli_app
from backchannel.errors import InvalidInput
from backchannel.wrapper.agent_client import Trigger
from backchannel.wrapper.api_agent import ApiAgent
from backchannel.wrapper.api_config import load_api_config
from backchannel.wrapper.runner import RunOptions
from backchannel.wrapper.serving import serve

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(48))
KEY = "sk-test-" + secrets.token_hex(12)


@contextlib.asynccontextmanager
async def running_agent(
    server: RunningServer, tmp_path: Path, model_url: str, env: dict[str, str] | None = None, **table: Any
) -> AsyncGenerator[tuple[ApiAgent, list[str]]]:
    """An API agent named ``helper`` running in this event loop until the block ends."""
    said: list[str] = []
    cfg = load_api_config(
        "helper",
        {"type": "api", "base_url": model_url, "model": "fake-1", "api_key_env": "FAKE_KEY", **table},
        config_path=None,
        cwd=tmp_path,
    )
    options = RunOptions(
        server_url=server.url,
        data_dir=tmp_path / "wrapper",
        env={"FAKE_KEY": KEY} if env is None else env,
        use_tmux=False,
        say=said.append,
        heartbeat_interval=0.3,
        backoff_max=0.2,
    )
    agent = ApiAgent(cfg, options, retry_initial=0.05, model_retries=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(agent.run)
        with anyio.fail_after(15):
            await agent.ready.wait()
        try:
            yield agent, said
        finally:
            tg.cancel_scope.cancel()


async def post(server: RunningServer, text: str, attachments: list[dict[str, Any]] | None = None) -> int:
    async with server.human() as human:
        body = {"text": text, "attachments": attachments or []}
        return ok(await human.post("/api/channels/general/messages", json=body), 201)["id"]


async def messages(server: RunningServer, channel: str = "general") -> list[dict[str, Any]]:
    async with server.human() as human:
        return ok(await human.get(f"/api/channels/{channel}/messages", params={"limit": 200}))["messages"]


async def wait_for(
    server: RunningServer,
    match: Callable[[dict[str, Any]], bool],
    timeout: float = 15,
    channel: str = "general",
) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            found = [m for m in await messages(server, channel) if match(m)]
            if found:
                return found[-1]
            await anyio.sleep(0.05)


async def acknowledged(server: RunningServer, agent: str = "helper") -> None:
    with anyio.fail_after(10):
        while await pending(server, agent):
            await anyio.sleep(0.05)


def from_helper(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["sender"] == "helper" and text in m["text"]


async def presence(server: RunningServer, want: str = "busy") -> str:
    """The helper's presence once it is ``want`` (or whatever it is after a few seconds)."""
    state = ""
    with anyio.move_on_after(10):
        while state != want:
            async with server.human() as human:
                listed = ok(await human.get("/api/agents"))
            agents = listed["agents"] if isinstance(listed, dict) else listed
            state = next((a["state"] for a in agents if a["name"] == "helper"), "")
            if state != want:
                await anyio.sleep(0.05)
    return state


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_key_anywhere(said: list[str], logs: str, room: list[dict[str, Any]]) -> None:
    assert KEY not in logs
    assert not [s for s in said if KEY in s]
    assert not [m for m in room if KEY in json.dumps(m)]


async def test_a_mention_wakes_it_it_reads_with_a_tool_sees_the_image_and_answers(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def reply(seen: Seen) -> str:
        return f"saw {len(seen.images)} image(s); read it: {'look at this' in seen.read}"

    fake = FakeChatApi(reply=reply, gate=anyio.Event())
    async with (
        serve(fake.app()) as model,
        running_agent(server, tmp_path, f"{model}/v1", vision=True) as (
            agent,
            said,
        ),
    ):
        async with server.human() as human:
            up = ok(await human.post("/api/uploads", content=PNG, headers={"Content-Type": "image/png"}), 201)
        await post(server, "@helper look at this", [{"url": up["url"]}])
        assert await presence(server) == "busy"  # the model "thinks" until the gate opens
        assert fake.gate is not None
        fake.gate.set()
        answer = await wait_for(server, from_helper("saw"))
        assert answer["text"] == "saw 1 image(s); read it: True"
        await acknowledged(server)
        assert agent.me.name == "helper" and agent.turns[-1].tools_called == ["chat_read", "chat_send"]
        assert await presence(server, "idle") == "idle"

    first = fake.requests[0]
    assert first["stream"] is True and first["model"] == "fake-1"
    offered = {t["function"]["name"] for t in first["tools"]}
    assert {"chat_read", "chat_send", "chat_image", "chat_who"} <= offered
    system = first["messages"][0]["content"]
    assert "Your name in this room is helper" in system and "Who is in the room now: helper" in system
    parts = first["messages"][1]["content"]
    assert "@helper look at this" in parts[0]["text"] and "mentioned you in #general" in parts[0]["text"]
    image = [p for p in parts if p["type"] == "image_url"]
    assert image == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    ]
    # The model's chat_read ran as helper, through MCP, and got the local file path too.
    read_result = fake.requests[1]["messages"][-1]
    assert read_result["role"] == "tool" and "look at this" in read_result["content"]
    assert str(server.settings.uploads_dir.resolve()) in read_result["content"]
    assert fake.authorizations == [f"Bearer {KEY}"] * len(fake.requests)
    no_key_anywhere(said, caplog.text, await messages(server))


async def test_it_survives_token_rotation_and_a_server_restart_without_streaming(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory()
    fake = FakeChatApi(
        reply=lambda seen: f"answer to: {seen.read.count('round')} round(s)", refuse_stream=True
    )
    async with serve(fake.app()) as model, running_agent(server, tmp_path, f"{model}/v1") as (agent, said):
        await post(server, "@helper round one")
        await wait_for(server, from_helper("answer to"))
        assert agent.model.stream is False, "a server that refuses streaming gets plain requests"
        async with server.human() as human:
            ok(await human.post("/api/agents/helper/rotate"))
        await post(server, "@helper round two")
        await wait_for(server, lambda m: m["sender"] == "helper" and m["id"] > 3 and "answer" in m["text"])
        server.stop()
        back = RunningServer(replace(server.settings)).start()
        try:
            before = len(await messages(back))
            await post(back, "@helper round three")
            await wait_for(back, lambda m: m["sender"] == "helper" and m["id"] > before + 1)
            await acknowledged(back)
        finally:
            back.stop()
        assert agent.me.name == "helper"
        assert not [s for s in said if "now registered as" in s]
    assert [r.get("stream") for r in fake.requests[:2]] == [True, None]
    assert len({t for t in agent.turns for t in t.trigger_ids}) >= 3


async def test_a_down_endpoint_is_reported_once_in_the_room_then_it_answers(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    fake = FakeChatApi(reply=lambda seen: "back again")
    async with running_agent(server, tmp_path, f"http://127.0.0.1:{port}/v1") as (agent, said):
        await post(server, "@helper are you there?")
        down = await wait_for(server, from_helper("cannot answer"))
        assert "helper" in down["text"] and "model endpoint unreachable" in down["text"]
        await post(server, "@helper hello??")  # waits behind the first; no second report
        with anyio.fail_after(10):
            while agent.outage_posts < 1:
                await anyio.sleep(0.05)
        async with serve(fake.app(), port=port):
            await wait_for(server, from_helper("back again"))
            await acknowledged(server)
        room = await messages(server)
        assert len([m for m in room if m["sender"] == "helper" and "cannot answer" in m["text"]]) == 1
        assert agent.outage_posts == 1
    no_key_anywhere(said, caplog.text, room)


async def test_a_missing_key_is_said_once_in_the_room(server: RunningServer, tmp_path: Path) -> None:
    fake = FakeChatApi()
    async with (
        serve(fake.app()) as model,
        running_agent(server, tmp_path, f"{model}/v1", env={}) as (agent, said),
    ):
        assert any("FAKE_KEY is not set" in s for s in said)
        await post(server, "@helper hi")
        missing = await wait_for(server, from_helper("cannot answer"))
        assert "the API key is missing: set FAKE_KEY" in missing["text"]
        with anyio.fail_after(10):
            while not agent.retry_delays:
                await anyio.sleep(0.05)
        assert agent.retry_delays == [agent.retry_max]  # only a restart with the key set helps
    assert fake.requests == []


async def test_a_model_without_tools_gets_its_plain_answer_posted(
    server: RunningServer, tmp_path: Path
) -> None:
    fake = FakeChatApi(reply=lambda seen: "just text", refuse_tools=True)
    async with serve(fake.app()) as model, running_agent(server, tmp_path, f"{model}/v1") as (agent, _):
        await post(server, "@helper say something")
        answer = await wait_for(server, lambda m: m["sender"] == "helper")
        assert answer["text"] == "just text", "posted for it, without the model's own name prefix"
        await acknowledged(server)
        assert agent.model.use_tools is False
    assert [bool(r.get("tools")) for r in fake.requests] == [True, True, False]  # stream, plain, no tools


async def test_a_turn_that_acted_is_never_run_again(server: RunningServer, tmp_path: Path) -> None:
    """Finding 4: a proposal made, then the model fails: one card, the wake-up done, no retry."""

    def script(body: dict[str, Any]) -> Canned:
        if body["messages"][-1]["role"] == "user":  # the wake-up: propose a job
            return Canned(call=("chat_propose_job", {"title": "Fix the build", "channel": "general"}))
        return Canned(500, "the model crashed")  # then fail, every time

    fake = FakeChatApi(script=script)
    async with serve(fake.app()) as model, running_agent(server, tmp_path, f"{model}/v1") as (agent, _):
        await post(server, "@helper propose a job")
        await acknowledged(server)
        room = await messages(server)
        assert len([m for m in room if m["type"] == "job_proposal"]) == 1
        stopped = await wait_for(server, from_helper("stopped before answering"))
        assert "answered 500: the model crashed" in stopped["text"]
        assert len(fake.requests) == 2 and agent.turns[-1].acted and not agent.outages


async def test_a_failing_tool_call_is_the_models_to_read(server: RunningServer, tmp_path: Path) -> None:
    """Any exception of one tool call goes to the model as ``error: ...``; the turn goes on."""
    async with running_agent(server, tmp_path, "http://127.0.0.1:9/v1") as (agent, _):

        class Broken:  # e.g. the identity proxy gone mid-turn
            async def call_tool(self, name: str, args: dict[str, Any]) -> Any:
                raise httpx.ConnectError("proxy gone")

        text, images, acted = await agent._call_tool(Broken(), "chat_send", '{"message": "hi"}')  # pyright: ignore[reportPrivateUsage, reportArgumentType]
        assert (text, images, acted) == ("error: proxy gone", [], False)


async def test_the_last_tool_step_is_followed_by_one_answer_without_tools(
    server: RunningServer, tmp_path: Path
) -> None:
    """Finding 16: a model that only ever calls tools gets one completion without them, then the
    turn ends with a message (its answer, or that it stopped)."""
    plain: list[str] = []

    def script(body: dict[str, Any]) -> Canned:
        if body.get("tools"):
            return Canned(call=("chat_who", {}))
        plain.append(wake_text(body))
        return Canned(content="helper: the last word" if len(plain) == 1 else "")

    fake = FakeChatApi(script=script)
    async with (
        serve(fake.app()) as model,
        running_agent(server, tmp_path, f"{model}/v1", max_tool_rounds=2) as (agent, _),
    ):
        await post(server, "@helper who is here?")
        await wait_for(server, from_helper("the last word"))
        await acknowledged(server)
        assert len(fake.requests) == 3 and [bool(r.get("tools")) for r in fake.requests] == [
            True,
            True,
            False,
        ]
        assert "used all 2 tool steps" in fake.requests[-1]["messages"][-1]["content"]
        await post(server, "@helper and now?")
        await wait_for(server, from_helper("stopped after 2 tool steps"))
        await acknowledged(server)
        assert len(fake.requests) == 6 and agent.turns[-1].rounds == 3
    assert len([m for m in await messages(server) if m["sender"] == "helper"]) == 2


async def test_an_outage_in_one_channel_blocks_no_other_and_ends_when_withdrawn(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Findings 15, 17, 19: #general's endpoint errors (echoing the key and a mention) are told
    once, quoted: no key, no wake-up for @claude, no credential from the URL. #dev is answered
    meanwhile, and clearing #general ends its retries."""
    caplog.set_level(logging.DEBUG)
    await register(server.url, "claude")

    def script(body: dict[str, Any]) -> Canned | None:
        if "#general" in wake_text(body):
            return Canned(500, f"@claude boom: bad key {KEY}")
        return None

    fake = FakeChatApi(script=script, reply=lambda seen: "pong from dev")
    async with serve(fake.app()) as model:
        secret_url = model.replace("http://", "http://user:URLSECRET9@") + "/v1"
        async with running_agent(server, tmp_path, secret_url) as (agent, said):
            async with server.human() as human:
                ok(await human.post("/api/channels", json={"name": "dev"}), 201)
            await post(server, "@helper hi")
            down = await wait_for(server, from_helper("cannot answer"))
            assert (
                f"model endpoint {model}/v1 answered 500: @\u200bclaude boom: bad key [api key]"
                in down["text"]
            )
            assert await pending(server, "claude") == []
            async with server.human() as human:
                ok(await human.post("/api/channels/dev/messages", json={"text": "@helper and here?"}), 201)
            await wait_for(server, from_helper("pong from dev"), channel="dev")
            assert "general" in agent.outages  # still retrying there
            async with server.human() as human:
                ok(await human.delete("/api/channels/general/messages"))
            with anyio.fail_after(10):
                while agent.outages:
                    await anyio.sleep(0.05)
            await acknowledged(server)
            room = await messages(server) + await messages(server, "dev")
    assert agent.retry_delays[0] == agent.retry_initial
    assert not [s for s in said if "URLSECRET9" in s] and "URLSECRET9" not in caplog.text
    assert not [m for m in room if "URLSECRET9" in json.dumps(m)]
    no_key_anywhere(said, caplog.text, room)


async def test_a_refused_key_waits_the_longest_before_trying_again(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Findings 17, 19: a 401 (its body echoing the key) will not go away in seconds."""
    caplog.set_level(logging.DEBUG)
    fake = FakeChatApi(script=lambda body: Canned(401, f"invalid key {KEY}"))
    async with serve(fake.app()) as model, running_agent(server, tmp_path, f"{model}/v1") as (agent, said):
        await post(server, "@helper hi")
        down = await wait_for(server, from_helper("cannot answer"))
        assert "answered 401: invalid key [api key]" in down["text"]
        with anyio.fail_after(10):
            while not agent.retry_delays:
                await anyio.sleep(0.05)
        assert agent.retry_delays == [agent.retry_max] and len(fake.requests) == 1
        room = await messages(server)
    no_key_anywhere(said, caplog.text, room)


async def test_urls_are_shown_without_credentials_and_a_clear_text_key_is_warned_about(
    server: RunningServer, tmp_path: Path
) -> None:
    """Finding 15: the terminal never shows a credential put in base_url; a key over plain http to
    another machine gets a warning (to this machine it does not)."""
    url = "http://me:URLSECRET9@model.example:8080/v1?api-key=QUERYSECRET9"
    async with running_agent(server, tmp_path, url) as (_, said):
        assert any("model fake-1 at http://model.example:8080/v1" in s for s in said), said
        assert any("FAKE_KEY goes to http://model.example:8080/v1 over plain http://" in s for s in said)
    assert not [s for s in said if "SECRET9" in s]
    local = load_api_config(
        "l",
        {"type": "api", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
        config_path=None,
        cwd=tmp_path,
    )
    assert local.clear_text_warning(KEY) is None
    tls = load_api_config(
        "t", {"type": "api", "base_url": "https://h.example/v1", "model": "m"}, config_path=None, cwd=tmp_path
    )
    assert tls.clear_text_warning(KEY) is None


async def test_a_job_thread_and_its_channel_get_a_turn_each(tmp_path: Path) -> None:
    """The runner groups a channel's wake-ups for a CLI's one prompt; a model answers per place."""
    cfg = load_api_config(
        "helper",
        {"type": "api", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        config_path=None,
        cwd=tmp_path,
    )
    agent = ApiAgent(
        cfg, RunOptions(server_url="http://127.0.0.1:9", data_dir=tmp_path, env={}, use_tmux=False)
    )
    turns: list[tuple[str, list[int]]] = []

    async def deliver_at(key: str, group: list[Trigger]) -> None:
        turns.append((key, [t.id for t in group]))

    agent._deliver_at = deliver_at  # type: ignore[method-assign]  # pyright: ignore[reportPrivateUsage]
    mention, job, again = (
        Trigger(1, "general", "p", "ben", {}),
        Trigger(2, "general", "p", "ben", {"job_id": 3}),
        Trigger(3, "general", "p", "ben", {}),
    )
    await agent._deliver([mention, job, again])  # pyright: ignore[reportPrivateUsage]
    assert turns == [("general", [1, 3]), ("general/job 3", [2])]
    await agent.client.aclose()


def test_config_is_checked_with_clear_errors(tmp_path: Path) -> None:
    good = load_api_config(
        "local",
        {"type": "api", "base_url": "http://127.0.0.1:11434/v1/", "model": "qwen3", "temperature": 9, "x": 1},
        config_path=None,
        cwd=tmp_path,
    )
    assert good.base_url == "http://127.0.0.1:11434/v1" and good.temperature == 2.0 and good.stream
    assert good.warnings == ("[agents.local].x is not a key of API agents and is ignored",)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"model": "m"}, "no base_url"),
        ({"base_url": "ftp://x", "model": "m"}, "http:// or https://"),
        ({"base_url": "http://h/v1"}, "no model"),
        (
            {"base_url": "http://h/v1", "model": "m", "api_key_env": "sk-abc 123"},
            "name an environment variable",
        ),
        ({"base_url": "http://h/v1", "model": "m", "vision": "yes"}, "true or false"),
        ({"base_url": "http://h/v1", "model": "m", "context_messages": "lots"}, "whole number"),
    ]
    for table, words in bad:
        with pytest.raises(InvalidInput, match=words):
            load_api_config("local", {"type": "api", **table}, config_path=None, cwd=tmp_path)


def test_backchannel_run_takes_an_api_table_and_reports_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "backchannel.toml"
    config.write_text('[agents.local]\ntype = "api"\nmodel = "qwen3"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_app, ["run", "local", "--config", str(config)])
    assert result.exit_code == 2 and "no base_url" in result.output, result.output
    config.write_text('[agents.local]\ntype = "api"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n')
    extra = CliRunner().invoke(cli_app, ["run", "local", "--config", str(config), "--", "--model", "x"])
    assert extra.exit_code == 2 and "takes no CLI arguments" in extra.output, extra.output
