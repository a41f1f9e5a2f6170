"""Session template validation: every rule, every problem listed at once, and never a crash.

Pure functions over JSON values (what people, agents and the database hand in); the SQL is checked
on a real SQLite file. The REST routes are in test_session_drafts.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backchannel.errors import Conflict, InvalidInput, NotFound
from backchannel.session_templates import BUILTIN, MAX_PROMPT, Template, validate
from backchannel.store import Store
from backchannel.store import session_templates as sql

T = TypeVar("T")


def good(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Pair review",
        "description": "Two agents review one change.",
        "roles": ["author", "reviewer"],
        "phases": [
            {"name": "Show", "participants": ["author"], "prompt": "Show the change."},
            {
                "name": "Review",
                "participants": ["reviewer", "author"],
                "prompt": "Judge it.",
                "is_output": True,
            },
        ],
    }
    return {**base, **overrides}


def phase(**overrides: Any) -> dict[str, Any]:
    return {"name": "P", "participants": ["author"], "prompt": "Go.", "is_output": True, **overrides}


def problems(obj: Any) -> list[str]:
    template, found = validate(obj)
    assert template is None and found, "expected problems"
    return found


def test_a_good_template_is_normalized_and_gets_a_custom_id() -> None:
    template, found = validate(good(name="  Pair review  "))
    assert found == [] and template is not None
    assert template.id.startswith("custom-") and len(template.id) == len("custom-") + 8
    assert (template.name, template.roles, template.builtin) == ("Pair review", ("author", "reviewer"), False)
    assert [p.is_output for p in template.phases] == [False, True]  # is_output defaults to false
    assert template.output_phase == 1
    assert template.public() == {
        "id": template.id,
        "name": "Pair review",
        "description": "Two agents review one change.",
        "roles": ["author", "reviewer"],
        "phases": [
            {"name": "Show", "participants": ["author"], "prompt": "Show the change.", "is_output": False},
            {
                "name": "Review",
                "participants": ["reviewer", "author"],
                "prompt": "Judge it.",
                "is_output": True,
            },
        ],
        "builtin": False,
    }
    # An id of its own is kept; description may be left out; builtin: false is accepted.
    kept, _ = validate(good(id="pair-review-2", description=None, builtin=False))
    assert kept is not None and (kept.id, kept.description) == ("pair-review-2", "")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([], "template: must be a JSON object, not a list"),
        ("x", "template: must be a JSON object, not a string"),
        (None, "template: must be a JSON object, not null"),
        (good(colour="red"), '"colour": unknown key'),
        (good(id="Bad_Id"), 'id: "Bad_Id" must be 1-40 lower-case letters'),
        (good(id="-x"), "id: "),
        (good(id="a" * 41), "id: "),
        (good(id=7), "id: a number must be"),
        (good(builtin=True), "builtin: only the server's own templates are built in"),
        ({**good(), "name": None}, "name: is required"),
        (good(name=""), "name: is empty"),
        (good(name="   "), "name: is empty"),
        (good(name="n" * 61), "name: is 61 characters; the limit is 60"),
        (good(name=5), "name: must be a string, not a number"),
        (good(name="a\nb"), "name: contains a control character"),
        (good(name="evil\u202etxt"), "name: contains a control character"),
        (good(description="d" * 301), "description: is 301 characters; the limit is 300"),
        ({k: v for k, v in good().items() if k != "roles"}, "roles: is required"),
        (good(roles="author"), "roles: must be a list of role names, not a string"),
        (good(roles=[]), "roles: has 0 roles; give 1 to 6"),
        (good(roles=["author", "reviewer", "a", "b", "c", "d", "e"]), "roles: has 7 roles; give 1 to 6"),
        (good(roles=["author", "reviewer", "author"]), 'roles[2]: "author" is listed twice'),
        (good(roles=["author", "reviewer", "Boss"]), 'roles[2]: "Boss" must be 1-20 lower-case letters'),
        (good(roles=["author", "reviewer", "r" * 21]), "roles[2]: "),
        (good(roles=["author", "reviewer", "1st"]), 'roles[2]: "1st" must be'),
        ({k: v for k, v in good().items() if k != "phases"}, "phases: is required"),
        (good(phases={}), "phases: must be a list of phases, not an object"),
        (good(phases=[]), "phases: has 0 phases; give 1 to 6"),
        (good(phases=[phase(is_output=i == 0) for i in range(7)]), "phases: has 7 phases; give 1 to 6"),
        (good(phases=["x"]), "phases[0]: must be an object"),
        (good(phases=[phase(extra=1)]), 'phases[0]."extra": unknown key'),
        (good(phases=[phase(name="")]), "phases[0].name: is empty"),
        (good(phases=[phase(name="n" * 41)]), "phases[0].name: is 41 characters; the limit is 40"),
        (good(phases=[phase(participants="author")]), "phases[0].participants: must be a list"),
        (good(phases=[phase(participants=[])]), "phases[0].participants: has 0 participants; give 1 to 4"),
        (good(phases=[phase(participants=["author"] * 5)]), "phases[0].participants: has 5 participants"),
        (
            good(phases=[phase(participants=["judge"])]),
            'phases[0].participants: "judge" is not one of the roles',
        ),
        (good(phases=[phase(participants=[3])]), "phases[0].participants: a number is not a role name"),
        (good(phases=[phase(prompt="")]), "phases[0].prompt: is empty"),
        (good(phases=[phase(prompt="p" * (MAX_PROMPT + 1))]), "phases[0].prompt: is 201 characters"),
        (good(phases=[phase(prompt="line\nbreak")]), "phases[0].prompt: contains a control character"),
        (good(phases=[phase(is_output="yes")]), "phases[0].is_output: must be true or false"),
        (
            good(phases=[phase(is_output=False)]),
            'phases: exactly one phase must have "is_output": true; none has',
        ),
        (
            good(phases=[phase(), phase()]),
            'phases: exactly one phase must have "is_output": true; phases[0], phases[1] have',
        ),
    ],
)
def test_each_rule_names_its_field(obj: Any, expected: str) -> None:
    found = problems(obj)
    assert any(expected in p for p in found), found


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        {
            "id": "No Good",
            "name": "",
            "description": "d" * 400,
            "roles": ["a", "a", "B"],
            "phases": [
                {"name": "", "participants": ["judge"], "prompt": "", "is_output": 1, "x": 0},
                {"name": "ok", "participants": [], "prompt": "p" * 300},
            ],
            "extra": True,
        }
    )
    fields = [p.split(":", 1)[0] for p in found]
    assert fields == [
        '"extra"',
        "id",
        "name",
        "description",
        "roles[1]",
        "roles[2]",
        'phases[0]."x"',
        "phases[0].name",
        "phases[0].participants",
        "phases[0].prompt",
        "phases[0].is_output",
        "phases[1].participants",
        "phases[1].prompt",
        "phases",
    ], found
    # Each problem is one short sentence.
    assert all(len(p) < 160 and "\n" not in p for p in found)


def test_problem_texts_never_carry_control_characters_or_long_values() -> None:
    found = problems(good(roles=["author", "reviewer", "\x1b[31m" + "x" * 500]))
    assert all("\x1b" not in p and len(p) < 160 for p in found), found


def test_the_four_built_ins_follow_the_reference_structure_and_the_rules() -> None:
    assert list(BUILTIN) == ["code-review", "debate", "design-critique", "planning"]
    shape = {
        t.id: (t.roles, [(p.name, p.participants) for p in t.phases], t.output_phase)
        for t in BUILTIN.values()
    }
    assert shape["code-review"] == (
        ("builder", "reviewer", "red_team", "synthesiser"),
        [
            ("Submit", ("builder",)),
            ("Review", ("reviewer", "red_team")),
            ("Respond", ("builder",)),
            ("Summary", ("synthesiser",)),
        ],
        3,
    )
    assert shape["debate"] == (
        ("proposer", "for", "against", "moderator"),
        [
            ("Frame", ("proposer",)),
            ("Opening Arguments", ("for", "against")),
            ("Rebuttals", ("against", "for")),
            ("Verdict", ("moderator",)),
        ],
        3,
    )
    assert shape["design-critique"] == (
        ("presenter", "critic", "synthesiser"),
        [("Present", ("presenter",)), ("Critique", ("critic",)), ("Synthesis", ("synthesiser",))],
        2,
    )
    assert shape["planning"] == (
        ("planner", "challenger", "synthesiser"),
        [("Frame", ("planner",)), ("Challenge", ("challenger",)), ("Plan", ("synthesiser",))],
        2,
    )
    for template in BUILTIN.values():
        body = template.public()
        assert body.pop("builtin") is True
        again, found = validate(body)  # a built-in passes the same rules as any template
        assert found == [] and again == dataclasses.replace(template, builtin=False)


# -- never raises --------------------------------------------------------------------------------
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
role_like: st.SearchStrategy[Any] = st.sampled_from(["author", "reviewer", "judge", "", "A", 3, None])
phase_like: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=45), json_values),
        "participants": st.one_of(st.lists(role_like, max_size=6), json_values),
        "prompt": st.one_of(st.text(max_size=210), json_values),
        "is_output": st.one_of(st.booleans(), json_values),
        "extra": json_values,
    },
)
template_like: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=45), json_values),
        "name": st.one_of(st.text(max_size=70), json_values),
        "description": st.one_of(st.text(max_size=310), json_values),
        "roles": st.one_of(st.lists(role_like, max_size=8), json_values),
        "phases": st.one_of(st.lists(phase_like, max_size=8), json_values),
        "builtin": json_values,
    },
)


@settings(max_examples=40, deadline=None)  # many cheap shapes; more cost seconds
@given(st.one_of(json_values, template_like))
def test_validate_never_raises_and_answers_one_way(obj: Any) -> None:
    json.dumps(obj)  # the inputs are JSON values
    template, found = validate(obj)
    assert (template is None) == bool(found)
    assert all(isinstance(p, str) and p for p in found)
    if template is not None:  # what passed validates again to the same template
        again, more = validate(template.public() | {"builtin": False})
        assert more == [] and again == template


# -- SQL -------------------------------------------------------------------------------------------
def test_store_saves_lists_gets_and_deletes_custom_templates(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")

    def run(fn: Callable[[sqlite3.Connection], T]) -> T:
        return asyncio.run(_write(store, fn))

    try:
        first, _ = validate(good(id="first"))
        second, _ = validate(good(id="second", name="Second"))
        assert first is not None and second is not None
        assert run(lambda c: sql.save(c, first, "ada")) == first
        run(lambda c: sql.save(c, second, None))
        ids = [t.id for t in run(sql.list_all)]
        assert ids == ["code-review", "debate", "design-critique", "planning", "first", "second"]
        assert run(lambda c: sql.get(c, "debate")) is BUILTIN["debate"]
        assert run(lambda c: sql.get(c, "second")) == second
        assert run(lambda c: sql.get(c, "nope")) is None
        with pytest.raises(Conflict, match="already exists"):
            run(lambda c: sql.save(c, first, "ada"))
        with pytest.raises(Conflict, match="built-in"):
            run(lambda c: sql.save(c, Template("debate", "D", "", ("a",), first.phases), "ada"))
        with pytest.raises(InvalidInput, match="built-in template and cannot be deleted"):
            run(lambda c: sql.delete(c, "planning"))
        run(lambda c: sql.delete(c, "first"))
        with pytest.raises(NotFound):
            run(lambda c: sql.delete(c, "first"))
        assert [t.id for t in run(sql.list_all)][4:] == ["second"]
        # A row edited by hand into something invalid is skipped, never handed to the engine.
        run(lambda c: c.execute("UPDATE session_templates SET body = '{\"name\": 1}'"))
        assert run(lambda c: sql.get(c, "second")) is None
        assert len(run(sql.list_all)) == 4
    finally:
        store.close()


async def _write(store: Store, fn: Callable[[sqlite3.Connection], T]) -> T:
    return await store.db.write(fn)
