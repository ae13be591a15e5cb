"""The `outreach` command line: its own commands grouped, Django's under `outreach django`, and
`make run` pointing the development unsubscribe links at the address it serves on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from outreach.__main__ import GROUPS, main_help, our_commands

REPO = Path(__file__).resolve().parents[2]


def outreach(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_lists_every_command_of_ours_with_one_line_and_none_of_djangos() -> None:
    text = main_help()
    commands = our_commands()
    assert {"run", "doctor", "leads", "campaign", "status", "alerts", "telegram"} <= set(commands)
    for name, line in commands.items():
        assert f"  {name} " in text and line in text
        assert "\n" not in line and len(line) <= 80
    for django_command in ("flush", "startapp", "runserver", "makemigrations"):
        assert f"  {django_command} " not in text
    for group in GROUPS:
        assert f"\n{group}:\n" in f"\n{text}"
    assert "more:" not in text  # every command of ours has its group


def test_it_prints_the_grouped_help_and_keeps_djangos_commands_under_django() -> None:
    result = outreach("--help")
    assert result.returncode == 0, result.stderr
    assert "diagnostics:" in result.stdout and "  doctor" in result.stdout
    assert "flush" not in result.stdout
    result = outreach("django", "--help")
    assert result.returncode == 0, result.stderr
    assert "flush" in result.stdout and "migrate" in result.stdout


def test_make_run_sets_the_base_url_from_bind(tmp_path: Path) -> None:
    # A stand-in for the installed console script that prints what it was run with.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "outreach").write_text('#!/bin/sh\necho "$1 base=$OUTREACH_BASE_URL"\n')
    (fake / "outreach").chmod(0o755)
    (fake / ".installed").touch()
    env = {k: v for k, v in os.environ.items() if k != "OUTREACH_BASE_URL"}

    def make_run(**extra: str) -> str:
        result = subprocess.run(
            ["make", "-s", "run", f"BIN={fake}", "BIND=127.0.0.1:9123"],
            cwd=REPO,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "run base=http://127.0.0.1:9123" in make_run()
    # An explicit base URL (a tunnel, a proxy) wins.
    assert "run base=https://dev.example.com" in make_run(
        OUTREACH_BASE_URL="https://dev.example.com"
    )
