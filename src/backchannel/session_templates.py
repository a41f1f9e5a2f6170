"""Session templates: roles and phases of a structured workflow, and the one validator for them.

A template arrives from people (REST), from agents (a ```` ```session ```` draft) and from the
database, so ``validate`` takes any JSON value, never raises, and lists every problem at once, each a
short sentence naming the field: an agent fixing its draft sees everything wrong in one answer.
The four built-in templates live here, in code; custom ones are rows (store/session_templates.py).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

from backchannel.text import has_control

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
MAX_NAME = 60
MAX_DESCRIPTION = 300
MAX_ROLES = 6
MAX_PHASES = 6
MAX_PHASE_NAME = 40
MAX_PARTICIPANTS = 4
MAX_PROMPT = 200
TEMPLATE_KEYS = ("id", "name", "description", "roles", "phases", "builtin")
PHASE_KEYS = ("name", "participants", "prompt", "is_output")


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    participants: tuple[str, ...]  # roles, in the order they speak
    prompt: str
    is_output: bool

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "participants": list(self.participants),
            "prompt": self.prompt,
            "is_output": self.is_output,
        }


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    name: str
    description: str
    roles: tuple[str, ...]
    phases: tuple[Phase, ...]
    builtin: bool = False

    def public(self) -> dict[str, Any]:
        """The JSON shape of REST, events and drafts."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "roles": list(self.roles),
            "phases": [p.public() for p in self.phases],
            "builtin": self.builtin,
        }

    @property
    def output_phase(self) -> int:
        return next(i for i, p in enumerate(self.phases) if p.is_output)


def new_id() -> str:
    return f"custom-{secrets.token_hex(4)}"


def show(value: Any, limit: int = 30) -> str:
    """A value quoted for a problem sentence: short, and with control characters escaped."""
    text = value if isinstance(value, str) else _type_name(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    text = "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return f'"{text}"' if isinstance(value, str) else text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string" if isinstance(value, str) else type(value).__name__


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, text: str) -> None:
        self.items.append(f"{field}: {text}")

    def text(self, field: str, value: Any, *, low: int, high: int, required: bool = True) -> str | None:
        """A one-line text of ``low..high`` characters (surrounding spaces dropped), else None."""
        if value is None:
            if not required:
                return ""
            self.add(field, f"is required: a text of {low} to {high} characters")
            return None
        if not isinstance(value, str):
            self.add(field, f"must be a string, not {_type_name(value)}")
            return None
        value = value.strip()
        if len(value) < low:
            self.add(field, "is empty" if low == 1 else f"needs at least {low} characters")
            return None
        if len(value) > high:
            self.add(field, f"is {len(value)} characters; the limit is {high}")
            return None
        if has_control(value):
            self.add(field, "contains a control character (line breaks, tabs and escapes are not allowed)")
            return None
        return value

    def unknown_keys(self, field: str, obj: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in obj:
            if key not in allowed:
                where = f"{field}." if field else ""
                self.add(f"{where}{show(key)}", f"unknown key (allowed: {', '.join(allowed)})")


def validate(obj: Any) -> tuple[Template | None, list[str]]:
    """The template ``obj`` describes, or None and every problem found; never raises."""
    p = _Problems()
    if not isinstance(obj, dict):
        return None, [f"template: must be a JSON object, not {_type_name(obj)}"]
    raw = cast(dict[Any, Any], obj)
    if not all(isinstance(k, str) for k in raw):
        return None, ["template: every key must be a string"]
    data = cast(dict[str, Any], raw)
    p.unknown_keys("", data, TEMPLATE_KEYS)

    template_id: str | None = new_id()
    if data.get("id") is not None:
        value = data["id"]
        if not isinstance(value, str) or not ID_RE.fullmatch(value):
            template_id = None
            p.add(
                "id",
                f"{show(value)} must be 1-40 lower-case letters, digits or '-', not starting with '-'",
            )
        else:
            template_id = value
    if data.get("builtin", False) is not False:
        p.add("builtin", "only the server's own templates are built in; leave it out or false")
    name = p.text("name", data.get("name"), low=1, high=MAX_NAME)
    description = p.text("description", data.get("description"), low=0, high=MAX_DESCRIPTION, required=False)
    roles = _roles(p, data.get("roles"))
    phases = _phases(p, data.get("phases"), roles)

    if (
        p.items
        or template_id is None
        or name is None
        or description is None
        or roles is None
        or phases is None
    ):
        return None, p.items or ["template: invalid"]
    return Template(template_id, name, description, tuple(roles), tuple(phases)), []


def _roles(p: _Problems, value: Any) -> list[str] | None:
    """The well-formed roles listed (None when there is no list to check participants against);
    every bad entry is reported."""
    if value is None:
        p.add("roles", f"is required: a list of 1 to {MAX_ROLES} role names")
        return None
    if not isinstance(value, list):
        p.add("roles", f"must be a list of role names, not {_type_name(value)}")
        return None
    items = cast(list[Any], value)
    if not 1 <= len(items) <= MAX_ROLES:
        p.add("roles", f"has {len(items)} roles; give 1 to {MAX_ROLES}")
    roles: list[str] = []
    for i, role in enumerate(items):
        if not isinstance(role, str) or not ROLE_RE.fullmatch(role):
            p.add(
                f"roles[{i}]",
                f"{show(role)} must be 1-20 lower-case letters, digits or '_', starting with a letter",
            )
        elif role in roles:
            p.add(f"roles[{i}]", f"{show(role)} is listed twice")
        else:
            roles.append(role)
    return roles


def _phases(p: _Problems, value: Any, roles: list[str] | None) -> list[Phase] | None:
    if value is None:
        p.add("phases", f"is required: a list of 1 to {MAX_PHASES} phases")
        return None
    if not isinstance(value, list):
        p.add("phases", f"must be a list of phases, not {_type_name(value)}")
        return None
    items = cast(list[Any], value)
    if not 1 <= len(items) <= MAX_PHASES:
        p.add("phases", f"has {len(items)} phases; give 1 to {MAX_PHASES}")
    phases: list[Phase] = []
    outputs: list[int] = []
    ok = True
    for i, item in enumerate(items):
        field = f"phases[{i}]"
        if not isinstance(item, dict) or not all(isinstance(k, str) for k in cast(dict[Any, Any], item)):
            ok = False
            p.add(field, f"must be an object with {', '.join(PHASE_KEYS)}, not {_type_name(item)}")
            continue
        phase = cast(dict[str, Any], item)
        p.unknown_keys(field, phase, PHASE_KEYS)
        name = p.text(f"{field}.name", phase.get("name"), low=1, high=MAX_PHASE_NAME)
        participants = _participants(p, f"{field}.participants", phase.get("participants"), roles)
        prompt = p.text(f"{field}.prompt", phase.get("prompt"), low=1, high=MAX_PROMPT)
        is_output = phase.get("is_output", False)
        if not isinstance(is_output, bool):
            p.add(f"{field}.is_output", f"must be true or false, not {_type_name(is_output)}")
            is_output = False
        if is_output:
            outputs.append(i)
        if name is None or participants is None or prompt is None:
            ok = False
            continue
        phases.append(Phase(name, tuple(participants), prompt, is_output))
    if items and len(outputs) != 1:
        ok = False
        if not outputs:
            p.add("phases", 'exactly one phase must have "is_output": true; none has')
        else:
            which = ", ".join(f"phases[{i}]" for i in outputs)
            p.add("phases", f'exactly one phase must have "is_output": true; {which} have')
    return phases if ok and phases else None


def _participants(p: _Problems, field: str, value: Any, roles: list[str] | None) -> list[str] | None:
    if not isinstance(value, list):
        p.add(field, f"must be a list of 1 to {MAX_PARTICIPANTS} roles, not {_type_name(value)}")
        return None
    items = cast(list[Any], value)
    ok = 1 <= len(items) <= MAX_PARTICIPANTS
    if not ok:
        p.add(field, f"has {len(items)} participants; give 1 to {MAX_PARTICIPANTS}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            ok = False
            p.add(field, f"{show(item)} is not a role name")
        elif roles is not None and item not in roles:
            ok = False
            p.add(field, f"{show(item)} is not one of the roles")
        else:
            names.append(item)
    return names if ok else None


def _builtin(
    template_id: str, name: str, description: str, roles: str, phases: list[tuple[str, str, str]]
) -> Template:
    """A built-in template; the last phase is its output (true of all four)."""
    return Template(
        id=template_id,
        name=name,
        description=description,
        roles=tuple(roles.split()),
        phases=tuple(
            Phase(phase, tuple(who.split()), prompt, i == len(phases) - 1)
            for i, (phase, who, prompt) in enumerate(phases)
        ),
        builtin=True,
    )


BUILTIN: dict[str, Template] = {
    t.id: t
    for t in (
        _builtin(
            "code-review",
            "Code review",
            "A builder submits a change, a reviewer and a red team examine it, the builder answers, "
            "and a synthesiser sums up whether it is ready.",
            "builder reviewer red_team synthesiser",
            [
                (
                    "Submit",
                    "builder",
                    "Present the change: what it does, why, and which parts are risky. Point to the code "
                    "that matters.",
                ),
                (
                    "Review",
                    "reviewer red_team",
                    "Examine the change for correctness, clarity and tests. The red team hunts for the "
                    "input, race or failure that breaks it.",
                ),
                (
                    "Respond",
                    "builder",
                    "Answer every point raised: fix it or say why it stays. List what changed.",
                ),
                (
                    "Summary",
                    "synthesiser",
                    "Sum up the review: what was found, what was fixed, what is still open, and whether "
                    "the change is ready to merge.",
                ),
            ],
        ),
        _builtin(
            "debate",
            "Debate",
            "Two sides argue a question framed by a proposer, rebut each other, and a moderator gives "
            "the verdict.",
            "proposer for against moderator",
            [
                (
                    "Frame",
                    "proposer",
                    "State the question in one sentence, the context that matters, and what a good "
                    "answer has to weigh.",
                ),
                (
                    "Opening Arguments",
                    "for against",
                    "Make the strongest case for the side your role names, in a few points with evidence, "
                    "whatever you believe yourself.",
                ),
                (
                    "Rebuttals",
                    "against for",
                    "Take on the other side's strongest points directly. Concede what holds; show where "
                    "their case breaks.",
                ),
                (
                    "Verdict",
                    "moderator",
                    "Weigh both sides fairly and decide: which case held up, why, and what evidence "
                    "would change the answer.",
                ),
            ],
        ),
        _builtin(
            "design-critique",
            "Design critique",
            "A presenter lays out a design, a critic probes it, and a synthesiser turns both into a "
            "revised design.",
            "presenter critic synthesiser",
            [
                (
                    "Present",
                    "presenter",
                    "Lay out the design: the problem, the approach, and the alternatives you turned down "
                    "and why.",
                ),
                (
                    "Critique",
                    "critic",
                    "Probe the design: weak assumptions, missed cases, simpler options. Rank the issues by "
                    "how much they matter.",
                ),
                (
                    "Synthesis",
                    "synthesiser",
                    "Merge the design and its critique into a revised design: what to keep, what to change "
                    "and which questions stay open.",
                ),
            ],
        ),
        _builtin(
            "planning",
            "Planning",
            "A planner drafts a plan, a challenger stress-tests it, and a synthesiser writes the final plan.",
            "planner challenger synthesiser",
            [
                (
                    "Frame",
                    "planner",
                    "Frame the work: the goal, the constraints, and a first plan as a short list of steps.",
                ),
                (
                    "Challenge",
                    "challenger",
                    "Stress-test the plan: risky or missing steps, wrong order, hidden dependencies. "
                    "Propose a fix for each doubt.",
                ),
                (
                    "Plan",
                    "synthesiser",
                    "Write the final plan: numbered steps with owners where known, the risks to watch, and "
                    "the first step to take.",
                ),
            ],
        ),
    )
}
