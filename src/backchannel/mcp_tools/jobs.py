"""The job board for agents: chat_jobs lists jobs and lets an agent move, take or close one.

People may change anything about a job; an agent only moves it between todo and active, takes it
for itself, or closes it. The service records in the job's thread which agent did what.
"""

from __future__ import annotations

from typing import Any

from backchannel.errors import InvalidInput, NotFound
from backchannel.jobs import JobBoard, normalize_status
from backchannel.mcp_tools._base import append_text, caller, ok, ok_json
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset
from backchannel.models import Agent, Job
from backchannel.registry import Registry

LIST_MAX = 100  # jobs in one list answer: a long board must not flood the agent's context


async def find_job(jobs: JobBoard, job_id: int, otherwise: str = "") -> Job:
    """Job ``job_id``, or an error that names it and says what to do instead (``otherwise``)."""
    try:
        if job_id > 0:
            return await jobs.get(job_id)
    except NotFound:
        pass
    instead = f", or {otherwise}" if otherwise else ""
    raise InvalidInput(
        f"job_id={job_id}: there is no job {job_id}. Call chat_jobs() to list the jobs{instead}."
    )


def brief(job: Job) -> dict[str, Any]:
    """What an agent needs to pick a job: no sort keys, uids or timestamps."""
    return {
        "id": job.id,
        "title": job.title,
        "body": job.body,
        "status": job.status,
        "channel": job.channel,
        "assignee": job.assignee,
        "created_by": job.created_by,
        "messages": job.message_count,
    }


def header(job: Job) -> str:
    """What every thread read starts with: the job itself, so an agent woken for it has the brief."""
    holder = f"assigned to {job.assignee}" if job.assignee else "unassigned"
    body = f"Brief: {job.body}" if job.body else "No brief."
    return f'Job #{job.id} "{job.title}" (#{job.channel}): {job.status}, {holder}.\n{body}'


def _check_agent_change(agent: Agent, job: Job, take: bool) -> None:
    """An agent takes a job only for itself (reopening a closed job: the service refuses it)."""
    if take and job.assignee not in ("", agent.name):
        raise InvalidInput(
            f"job #{job.id} is assigned to {job.assignee}; ask them or a person to hand it over"
        )


def register(tools: Toolset, registry: Registry, jobs: JobBoard) -> None:
    @tools.tool()
    async def chat_jobs(
        ctx: ToolContext, action: str = "list", status: str = "", job_id: int = 0, assignee: str = ""
    ) -> ToolResult:
        """The jobs board. action="list": every job, or those of one `status` (todo, active, closed).
        action="update" on job `job_id`: `status` todo or active to move it, closed to close it;
        assignee="me" to take it. Other changes are for people. Talk in a job: chat_read/chat_send(job_id).
        """
        agent = await caller(ctx, registry)
        if action == "list":
            wanted = normalize_status(status) if status else None
            board = await jobs.list(status=wanted)
            if not board:
                return ok(f"No {wanted} jobs." if wanted else "No jobs yet.", {"jobs": []})
            result = ok_json([brief(j) for j in board[:LIST_MAX]], "jobs")
            if len(board) > LIST_MAX:  # the board's order: to do first, closed last
                more = f"({len(board) - LIST_MAX} more jobs not shown: pass status to list one group.)"
                append_text(result, more)
            return result
        if action != "update":
            raise InvalidInput("action must be 'list' or 'update'")
        if job_id <= 0:
            raise InvalidInput("update needs job_id: the id of a job from chat_jobs()")
        job = await find_job(jobs, job_id)
        new_status = normalize_status(status) if status else None
        who = assignee.strip().lstrip("@").lower()
        if who and who not in ("me", agent.name):
            raise InvalidInput(
                f'assignee={assignee!r}: an agent can only take a job itself (assignee="me");'
                " a person assigns jobs to others"
            )
        if new_status is None and not who:
            raise InvalidInput('update needs status (todo, active, closed) and/or assignee="me"')
        _check_agent_change(agent, job, bool(who))
        job = await jobs.update(job.id, by=agent, status=new_status, assignee=agent.name if who else None)
        holder = f", assigned to {job.assignee}" if job.assignee else ""
        return ok(f"Job #{job.id} is {job.status}{holder}.", {"job": brief(job)})
