#!/usr/bin/env bash
# backup.sh DIR [KEEP_DAYS]: a dated online backup of the outreach database into DIR, keeping
# the last KEEP_DAYS days (default 14). SQLite: .sqlite3 copy; PostgreSQL: pg_dump custom format.
set -euo pipefail
dir=${1:?usage: backup.sh DIR [KEEP_DAYS]}
keep=${2:-14}
outreach=${OUTREACH_BIN:-/opt/outreach/.venv/bin/outreach}
mkdir -p "$dir"
case "${DATABASE_URL:-sqlite}" in
  postgres*) ext=dump ;;
  *) ext=sqlite3 ;;
esac
"$outreach" backup "$dir/outreach-$(date -u +%Y-%m-%dT%H%M%SZ).$ext"
find "$dir" -name "outreach-*.$ext" -mtime +"$keep" -delete
