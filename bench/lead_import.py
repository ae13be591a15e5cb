"""Lead import benchmark: generate N rows of CSV, import them into a fresh database.

    .venv/bin/python bench/lead_import.py [--rows 100000] [--json]

Prints rows/s for a first import (all new, enrolled in a campaign) and a re-import (all
unchanged), and the peak memory of the first import: the process's peak RSS growth, and with
``--trace`` the peak Python heap (tracemalloc, which slows the import about threefold). Uses a
temporary SQLite database unless BENCH_DATABASE_URL names another one (it is migrated and
must be disposable).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = "Anna Ben Carla David Emma Felix Grace Hugo Ines Jonas Kira Liam Maya Noah Olga".split()
LAST = "Smith Müller Garcia Rossi Dubois Novak Jensen Silva Kim Patel Brown Wilson".split()
TZ = ["America/New_York", "Europe/London", "Europe/Berlin", "Asia/Singapore", "", ""]


def generate(path: Path, rows: int) -> None:
    """Realistic rows: ~2% duplicates, ~1% role accounts, ~1% invalid, a custom column."""
    rng = random.Random(42)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "First Name", "Last Name", "Company", "Title", "TZ", "Industry"])
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            roll = rng.random()
            if roll < 0.02 and i > 10:
                email = f" {first}.{last}{i - 7}@Company{(i - 7) % 5000}.com ".upper()
            elif roll < 0.03:
                email = f"info@company{i % 5000}.com"
            elif roll < 0.04:
                email = f"{first}.{last}{i}@@broken"
            else:
                email = f"{first}.{last}{i}@company{i % 5000}.com".lower()
            writer.writerow(
                [email, first, last, f"Company {i % 5000}", "CEO", rng.choice(TZ), "SaaS"]
            )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="outreach-bench-"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trace", action="store_true", help="measure the heap (slower)")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}"
    )
    os.environ.setdefault("OUTREACH_VAR_DIR", str(tmp))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    os.environ.setdefault("OUTREACH_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from outreach.campaigns.leads import import_leads
    from outreach.campaigns.models import Campaign, Lead

    call_command("migrate", verbosity=0)
    Lead.objects.all().delete()
    campaign = Campaign.objects.create(
        slug=f"bench-{int(time.time())}", name="bench", postal_address="1 Bench Street"
    )
    csv_path = tmp / "leads.csv"
    generate(csv_path, args.rows)

    rss_before = rss_mb()
    if args.trace:
        tracemalloc.start()
    started = time.perf_counter()
    first = import_leads(csv_path, campaign)
    first_s = time.perf_counter() - started
    heap_peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024 if args.trace else None
    tracemalloc.stop()
    rss_growth = rss_mb() - rss_before

    started = time.perf_counter()
    again = import_leads(csv_path, campaign)
    again_s = time.perf_counter() - started

    result = {
        "rows": args.rows,
        "file_mb": round(csv_path.stat().st_size / 1024 / 1024, 1),
        "database": django.db.connection.vendor,
        "imported": first.imported,
        "enrolled": first.enroll.enrolled,
        "first_import_s": round(first_s, 2),
        "first_import_rows_per_s": round(args.rows / first_s),
        "reimport_s": round(again_s, 2),
        "reimport_rows_per_s": round(args.rows / again_s),
        "reimport_changed": again.imported + again.updated,
        "peak_heap_mb_tracemalloc": round(heap_peak, 1) if heap_peak is not None else None,
        "peak_rss_growth_mb": round(rss_growth, 1),
        "reimport_to_first_speed_ratio": round(first_s / again_s, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'measure':32} {'value':>12}")
    for key, value in result.items():
        print(f"{key:32} {value!s:>12}")
    if args.trace:
        print("(the first import ran under tracemalloc, which slows it about threefold)")


if __name__ == "__main__":
    main()
