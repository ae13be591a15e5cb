"""`make check`'s dependency audit: pip-audit over this environment's installed packages.

Exits 1 when a known vulnerability is found. When pip-audit cannot reach its vulnerability
database (no network, or an index that serves packages but not vulnerability data, so that
no package could be audited), says so on one line and exits 0: the audit is skipped, not
passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 300


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "--format", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"pip-audit: no answer in {TIMEOUT_SECONDS} s: dependency audit skipped")
        return 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: vulnerability database unreachable ({reason}): dependency audit skipped")
        return 0
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        print(
            f"pip-audit: vulnerability database unreachable (none of {len(dependencies)} "
            "packages could be looked up): dependency audit skipped"
        )
        return 0
    vulnerable = [d for d in audited if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    skipped = len(dependencies) - len(audited)
    print(
        f"pip-audit: {len(audited)} package(s) audited, {len(vulnerable)} vulnerable"
        + (f", {skipped} could not be looked up" if skipped else "")
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
