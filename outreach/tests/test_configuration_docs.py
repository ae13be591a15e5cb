"""Every environment variable outreach reads is documented and in the deployment env file."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READ = re.compile(r'env\.get_(?:str|int|bool|list|choice)\(\s*"([A-Z0-9_]+)"')
# Read by the test settings only.
TEST_ONLY = {"OUTREACH_TEST_DATABASE_NAME"}


def variables_read() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "outreach").rglob("*.py"):
        if "tests" not in path.parts:
            names |= set(READ.findall(path.read_text()))
    return names - TEST_ONLY


def test_it_finds_the_variables_it_checks() -> None:
    names = variables_read()
    assert {"DATABASE_URL", "SECRET_KEY", "OUTREACH_ALERT_URLS"} <= names


def test_every_variable_is_in_the_deployment_env_file() -> None:
    listed = set(
        re.findall(
            r"^#?\s*([A-Z0-9_]+)=", (REPO / "deploy" / "outreach.env.example").read_text(), re.M
        )
    )
    assert variables_read() - listed == set()


def test_every_variable_is_documented() -> None:
    documented = (REPO / "docs" / "configuration.md").read_text()
    missing = {name for name in variables_read() if f"`{name}`" not in documented}
    assert missing == set()
