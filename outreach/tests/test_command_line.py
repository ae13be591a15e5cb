"""The `outreach` command line: its own commands grouped, Django's under `outreach django`, and
`make run` pointing the development unsubscribe links at the address it serves on."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from django.core.management.base import CommandError

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


def guide_commands() -> list[tuple[str, list[str]]]:
    """Every `outreach ...` command line in the shell blocks of docs/*.md."""
    found = []
    for path in sorted((REPO / "docs").glob("*.md")):
        in_shell = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                in_shell = line.strip() == "```sh" and not in_shell
                continue
            if not in_shell or line.split()[:1] not in (["outreach"], ["$as_service"]):
                continue
            # "[--step N]": a synopsis's optional part, not a literal argument.
            text = re.sub(r"\[[^\]]*\]", "", line.split(" #", 1)[0].replace("\\", ""))
            # "start|pause": alternatives of a synopsis; each is checked by its first.
            words = [w.split("|", 1)[0] for w in shlex.split(text)]
            for prefix in (["outreach"], ["$as_service"]):
                if words[: len(prefix)] == prefix and len(words) > 1:
                    found.append((path.name, words[len(prefix) :]))
    return found


def test_every_command_the_guides_cite_exists_with_its_options() -> None:
    commands = our_commands()
    cited = guide_commands()
    assert ("telegram.md", ["alerts", "--test"]) in cited
    assert ("guide-dns-fleet.md", ["dns", "apply", "--yes"]) in cited
    django_ones = {"migrate", "check"}
    for guide, words in cited:
        name, args = words[0], words[1:]
        if name in django_ones:
            continue
        assert name in commands, f"{guide}: no command outreach {name}"
        parser = load_command_class(get_commands()[name], name).create_parser("outreach", name)
        try:
            parser.parse_args(args)
        except (SystemExit, CommandError):
            pytest.fail(f"{guide}: outreach {' '.join(words)} does not parse")
