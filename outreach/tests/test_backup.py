"""`outreach backup` writes a consistent copy that restores to the same data."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection


def outreach(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def test_it_backs_up_a_live_sqlite_database_and_the_copy_restores(tmp_path: Path) -> None:
    database = tmp_path / "live.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "OUTREACH_VAR_DIR": str(tmp_path)}
    pool = Path(__file__).resolve().parents[2] / "examples" / "pool.toml"
    assert outreach("migrate", "-v0", env=env, cwd=tmp_path).returncode == 0
    assert outreach("apply", str(pool), env=env, cwd=tmp_path).returncode == 0
    # A writer holds the database open in WAL mode while the backup runs.
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("UPDATE pool_mailbox SET display_name = 'changed' WHERE id = 1")
    writer.commit()
    result = outreach("backup", str(tmp_path / "backups" / "copy.sqlite3"), env=env, cwd=tmp_path)
    writer.close()
    assert result.returncode == 0, result.stderr
    copy = sqlite3.connect(tmp_path / "backups" / "copy.sqlite3")
    assert copy.execute("SELECT count(*) FROM pool_mailbox").fetchone() == (30,)
    assert copy.execute("SELECT display_name FROM pool_mailbox WHERE id = 1").fetchone() == (
        "changed",
    )
    # The restored copy is a working outreach database holding the live change.
    restored = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'backups' / 'copy.sqlite3'}"}
    status = outreach("apply", str(pool), env=restored, cwd=tmp_path)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0] == (
        "update mailbox anna@northwind-mail.com: display_name: changed → Anna Berg"
    )


@pytest.mark.django_db(transaction=True)
def test_it_dumps_postgresql_with_pg_dump(tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL run only")
    from django.core.management import call_command

    from outreach.testing import make_pool

    make_pool(1, 2)
    target = tmp_path / "outreach.dump"
    call_command("backup", str(target))
    listing = subprocess.run(["pg_restore", "--list", str(target)], capture_output=True, text=True)
    assert listing.returncode == 0
    assert "TABLE DATA public pool_mailbox" in listing.stdout
