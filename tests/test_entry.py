"""The executable's fast path (issue 14): ``serve`` starts without typer, rich or httpx; everything
else, ``--help`` included, still goes to the full CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backchannel.entry import parse_serve

CLI_ONLY = ("typer", "click", "rich", "httpx", "backchannel.cli", "backchannel.wrapper")


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "backchannel", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve"], {}),
        (
            ["serve", "--host", "::1", "--port=0", "--data-dir", "d", "--config=c.toml", "--allow-network"],
            {
                "host": "::1",
                "port": 0,
                "data_dir": Path("d"),
                "config": Path("c.toml"),
                "allow_network": True,
            },
        ),
    ],
)
def test_plain_serve_lines_take_the_fast_path(argv: list[str], expected: dict[str, object]) -> None:
    assert parse_serve(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["send", "hi"],
        ["serve", "--help"],
        ["serve", "-h"],
        ["serve", "--port", "http"],
        ["serve", "--port", "65536"],
        ["serve", "--port", "-1"],
        ["serve", "--port", "²"],
        ["serve", "--port"],
        ["serve", "--port", "1", "--port", "2"],
        ["serve", "--data-dir="],
        ["serve", "--allow-network=yes"],
        ["serve", "--an-option-added-later"],
    ],
)
def test_anything_else_goes_to_the_full_cli(argv: list[str]) -> None:
    assert parse_serve(argv) is None


def test_serve_never_imports_the_interactive_cli() -> None:
    code = (
        "import sys, backchannel.entry as e\n"
        f"e.serve = lambda options: print(sorted(m for m in sys.modules if m.startswith({CLI_ONLY!r})))\n"
        "sys.argv = ['backchannel', 'serve', '--port', '0']\n"
        "e.main()\n"
    )
    result = run(code=code)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_help_and_serve_help_still_come_from_the_full_cli() -> None:
    top = run("--help")
    assert top.returncode == 0 and "serve" in top.stdout and "send" in top.stdout, top.stderr
    serve = run("serve", "--help")
    assert serve.returncode == 0 and "--allow-network" in serve.stdout and "--data-dir" in serve.stdout


def test_a_bad_value_gets_the_full_clis_error() -> None:
    result = run("serve", "--port", "http")
    assert result.returncode == 2 and "--port" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_config_is_one_plain_error_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    warned = run("serve", "--config", str(config), "--data-dir", str(tmp_path), "--port", "99999")
    assert warned.returncode == 2  # out of range: typer's error, not a start
    config.write_text("server = 1\n")
    result = run("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "error: [server] in the config file must be a table" in result.stderr
    assert "Traceback" not in result.stderr
