"""``outreach backup FILE``: a consistent copy of the database while the engine runs.

SQLite: the online backup API (readers and writers keep going; the copy is one consistent
snapshot). PostgreSQL: ``pg_dump --format=custom`` (restore with ``pg_restore``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = "Write a consistent backup of the database to FILE (online; safe while running)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        target: Path = options["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        db = connection.settings_dict
        if connection.vendor == "sqlite":
            self._sqlite(Path(str(db["NAME"])), target)
        elif connection.vendor == "postgresql":
            self._postgres(db, target)
        else:  # pragma: no cover - settings refuse other engines
            raise CommandError(f"no backup for {connection.vendor}")
        self.stdout.write(f"backup written to {target} ({target.stat().st_size} bytes)")

    @staticmethod
    def _sqlite(source: Path, target: Path) -> None:
        if not source.exists():
            raise CommandError(f"{source}: no such database")
        tmp = target.with_suffix(target.suffix + ".partial")
        src = sqlite3.connect(source)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        tmp.replace(target)  # never leave a half-written file under the final name

    @staticmethod
    def _postgres(db: dict[str, Any], target: Path) -> None:
        env = {**os.environ}
        if db.get("PASSWORD"):
            env["PGPASSWORD"] = str(db["PASSWORD"])
        command = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}"]
        for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
            if db.get(key):
                command.append(f"{flag}={db[key]}")
        command.append(str(db["NAME"]))
        try:
            subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise CommandError("pg_dump not found: install the PostgreSQL client") from None
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"pg_dump failed: {exc.stderr.strip()}") from None
