"""REST routes of the room rules for people (the web UI and local scripts): thin over ``Rules``.

People only: an agent token is refused by the same guard as every people route; agents list and
propose rules with ``chat_rules``. Limits and statuses are checked by the service, so REST and
MCP give the same errors.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from backchannel.server.api import Me, MessageId, Reader, RowId, Writer
from backchannel.server.deps import services

router = APIRouter(tags=["rules"])
# Bounds far above the limits: the service answers with the limit's clear message.
LongText = Annotated[str, Field(max_length=10_000)]
Word = Annotated[str, Field(max_length=64)]


class RuleIn(BaseModel):
    text: LongText
    reason: LongText = ""
    status: Word | None = None  # draft (default) or active
    channel: Word = ""  # "" = the whole room; else only wake-ups in that channel carry it


class RulePatch(BaseModel):
    text: LongText | None = None
    reason: LongText | None = None
    status: Word | None = None
    channel: Word | None = None


class ReorderIn(BaseModel):
    ordered_ids: list[MessageId] = Field(max_length=1_000)


class DecideIn(BaseModel):
    decision: Word


@router.get("/api/rules", dependencies=Reader)
async def list_rules(request: Request) -> list[dict[str, Any]]:
    """Every rule: active, draft, proposed, archived; each group in its order."""
    return [r.public() for r in await services(request).rules.list()]


@router.post("/api/rules", status_code=201, dependencies=Writer)
async def create_rule(request: Request, body: RuleIn, me: Me) -> dict[str, Any]:
    """A person's rule, as a draft or straight to active (409 when 10 are active)."""
    rule = await services(request).rules.create(
        text=body.text, reason=body.reason, status=body.status, channel=body.channel, by=me
    )
    return rule.public()


@router.post("/api/rules/reorder", dependencies=Writer)
async def reorder_rules(request: Request, body: ReorderIn) -> list[dict[str, Any]]:
    """The listed rules (all of one status) first, in that order; returns every rule."""
    return [r.public() for r in await services(request).rules.reorder(body.ordered_ids)]


@router.post("/api/rules/remind", dependencies=Writer)
async def remind(request: Request) -> dict[str, int]:
    """Every agent gets the active rules again on its next wake-up."""
    return {"version": await services(request).rules.remind()}


@router.patch("/api/rules/{rule_id}", dependencies=Writer)
async def update_rule(request: Request, rule_id: RowId, body: RulePatch, me: Me) -> dict[str, Any]:
    rule = await services(request).rules.update(
        rule_id, text=body.text, reason=body.reason, status=body.status, channel=body.channel, by=me
    )
    return rule.public()


@router.delete("/api/rules/{rule_id}", status_code=204, dependencies=Writer)
async def delete_rule(request: Request, rule_id: RowId, me: Me) -> Response:
    await services(request).rules.delete(rule_id, me)
    return Response(status_code=204)


@router.post("/api/rules/{rule_id}/decide", dependencies=Writer)
async def decide_rule(request: Request, rule_id: RowId, body: DecideIn, me: Me) -> dict[str, Any]:
    """Settle an agent's proposal once (409 after): the rule, or for ``dismiss`` the card."""
    return await services(request).rules.decide(rule_id, body.decision, me)
