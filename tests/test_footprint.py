"""Issue 14's footprint: the install command serves without test tools; the test command brings them
itself, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_the_install_command_installs_only_what_serving_needs() -> None:
    install = shell_blocks(README)[0].strip()
    assert (
        "pip install -e . " in install and "[test]" not in install and install.endswith("backchannel serve")
    )


def test_the_test_command_brings_the_test_extras_and_ci_runs_exactly_it() -> None:
    command = shell_blocks(README)[1].strip()
    assert command == "scripts/test"
    script = (ROOT / "scripts" / "test").read_text()
    assert "python3 -m venv .venv" in script and "-e '.[test]'" in script and "pytest" in script
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_commands[-1] == command
    assert not any("pytest" in line or "pip install" in line for line in ci_commands[:-1])
