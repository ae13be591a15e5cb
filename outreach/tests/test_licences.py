"""outreach ships under Apache-2.0, and no runtime dependency may bind its users to the GPL.

Read from the installed packages' own metadata (License-Expression, License and the licence
classifiers), following ``outreach``'s requirements (without extras) down the whole tree.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
# GPL and AGPL in any spelling (SPDX ids, classifiers, free text), but not the LGPL, whose
# terms do not reach a program that merely imports the library.
_COPYLEFT = re.compile(
    r"(?<![L\w-])A?GPL|GNU (?:Affero )?General Public License|Affero", re.IGNORECASE
)


def is_copyleft(licence: str) -> bool:
    """Whether a licence text (expression, name or classifier) is the GPL or the AGPL."""
    return bool(_COPYLEFT.search(licence))


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata.json  # one key per field, lists for the repeated ones
    parts = [str(meta.get("license_expression", "")), str(meta.get("license", "")).split("\n")[0]]
    parts += [c for c in meta.get("classifier", []) if c.startswith("License ::")]
    return " | ".join(p for p in parts if p)


def runtime_dependencies(name: str = "outreach") -> dict[str, metadata.Distribution]:
    """Every installed distribution ``name`` needs at run time, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [name]
    while pending:
        dist = metadata.distribution(pending.pop())
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra (dev tools) or another platform
            key = canonicalize_name(requirement.name)
            if key in found:
                continue
            try:
                found[key] = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                continue  # not needed on this Python (its marker said so)
            pending.append(requirement.name)
    return found


@pytest.mark.parametrize(
    ("licence", "copyleft"),
    [
        ("GPL-3.0-or-later", True),
        ("AGPL-3.0-only", True),
        ("License :: OSI Approved :: GNU General Public License v3 (GPLv3)", True),
        ("License :: OSI Approved :: GNU Affero General Public License v3", True),
        ("GNU GPL v3", True),
        ("LGPL-2.1-or-later", False),
        ("License :: OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)", False),
        ("MIT OR Apache-2.0", False),
        ("BSD-3-Clause", False),
    ],
)
def test_it_tells_the_gpl_and_agpl_from_other_licences(licence: str, copyleft: bool) -> None:
    assert is_copyleft(licence) is copyleft


def test_no_runtime_dependency_is_gpl_or_agpl() -> None:
    dependencies = runtime_dependencies()
    assert {"django", "jinja2", "django-axes"} <= set(dependencies)
    bound = {
        name: licence_of(dist)
        for name, dist in dependencies.items()
        if is_copyleft(licence_of(dist))
    }
    assert bound == {}


def test_outreach_itself_is_apache_2() -> None:
    assert metadata.metadata("outreach").json.get("license_expression") == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text()
    assert "Version 2.0" in (REPO / "LICENSE").read_text()
