from __future__ import annotations

import time

from backchannel.models import Agent, Channel
from backchannel.router import mention_tokens, plan_routing, strip_code, wake_prompt


def agent(name: str, *, seen_ago: float = 0.0, base: str | None = None, ident: int = 0) -> Agent:
    return Agent(
        id=ident or hash(name) % 10_000,
        name=name,
        base=base or name.split("-")[0],
        instance_id=name,
        slot=1,
        label=name,
        color="#000",
        activity="idle",
        last_seen=time.time() - seen_ago,
        left=False,
        retired=False,
        last_channel="",
        role="",
        hat="",
        created_at=0.0,
    )


def channel(hops: int = 0, paused: bool = False) -> Channel:
    return Channel(id=1, name="dev", topic="", summary="", hops=hops, paused=paused, created_at=0.0)


def plan(
    text: str, agents: list[Agent], *, sender: str = "ben", kind: str = "human", ch: Channel | None = None
):
    return plan_routing(
        tokens=mention_tokens(text),
        sender=sender,
        sender_kind=kind,
        channel=ch or channel(),
        agents=agents,  # type: ignore[arg-type]
        now=time.time(),
        crash_timeout=30,
        max_hops=2,
    )


def test_longest_hyphenated_name_wins() -> None:
    agents = [agent("claude"), agent("claude-2")]
    assert [a.name for a in plan("@claude-2 please look", agents).targets] == ["claude-2"]
    assert [a.name for a in plan("@claude, please look", agents).targets] == ["claude"]


def test_mentions_inside_code_are_ignored() -> None:
    text = "run `@claude` like this:\n```\n@codex do it\n```\nthanks @gemini"
    assert mention_tokens(text) == ["gemini"]
    assert "@claude" not in strip_code(text)


def test_email_addresses_are_not_mentions() -> None:
    assert mention_tokens("mail me@example.com or @qwen.") == ["qwen"]


def test_all_wakes_only_online_agents_and_never_the_sender() -> None:
    agents = [agent("claude"), agent("codex"), agent("gemini", seen_ago=300)]
    names = [a.name for a in plan("@all standup", agents, sender="claude", kind="agent").targets]
    assert names == ["codex"]


def test_offline_agent_named_directly_is_still_targeted() -> None:
    assert [a.name for a in plan("@gemini when you are back", [agent("gemini", seen_ago=300)]).targets] == [
        "gemini"
    ]


def test_agent_cannot_trigger_itself() -> None:
    assert plan("note to self @claude", [agent("claude")], sender="claude", kind="agent").targets == []


def test_unknown_agent_like_mention_gets_a_notice() -> None:
    result = plan("@claude-3 hi", [agent("claude")])
    assert result.targets == []
    assert result.notices and "@claude-3" in result.notices[0] and "claude" in result.notices[0]


def test_loop_guard_pauses_after_max_hops_and_human_resets() -> None:
    agents = [agent("claude"), agent("codex")]
    first = plan("@codex go", agents, sender="claude", kind="agent", ch=channel(hops=1))
    assert first.hops == 2 and first.targets
    stopped = plan("@codex go", agents, sender="claude", kind="agent", ch=channel(hops=2))
    assert stopped.paused and not stopped.targets and "Loop guard" in stopped.notices[0]
    still = plan("@codex go", agents, sender="claude", kind="agent", ch=channel(hops=2, paused=True))
    assert not still.targets and not still.notices
    human = plan("@codex go", agents, ch=channel(hops=2, paused=True))
    assert human.targets and human.hops == 0 and not human.paused


def test_inline_code_rules_match_commonmark_and_stay_linear() -> None:
    assert mention_tokens("``code with ` @claude`` and @codex") == ["codex"]
    assert mention_tokens("a lone ` tick then @claude") == ["claude"]
    assert mention_tokens("`one` @gemini `two`") == ["gemini"]
    hostile = "`" * 8000 + "a" * 8000 + " @qwen"
    assert mention_tokens(hostile) == ["qwen"]  # quadratic parsing would take seconds here


def test_job_wake_prompt_names_the_job_on_one_line() -> None:
    """Issue 9: a mention in a job thread names the job, so the agent reads the thread."""
    prompt = wake_prompt(agent("claude"), "ben", "dev", (3, "Fix\nthe  build"))
    assert prompt == (
        '@ben mentioned you in job #3 "Fix the build" (#dev). Use chat_read(job_id=3) to read the '
        "thread, then answer with chat_send(job_id=3)."
    )
    assert 'chat_read(channel="dev")' in wake_prompt(agent("claude"), "ben", "dev")


def test_loop_guard_notice_names_the_job_thread() -> None:
    agents = [agent("claude"), agent("codex")]
    stopped = plan_routing(
        tokens=["codex"],
        sender="claude",
        sender_kind="agent",
        channel=channel(hops=2),  # a job passes its channel carrying the job's own hops
        agents=agents,
        now=time.time(),
        crash_timeout=30,
        max_hops=2,
        place="job #7",
    )
    assert stopped.paused and stopped.notices[0].startswith("Loop guard: 2 agent-to-agent hops in job #7 ")
