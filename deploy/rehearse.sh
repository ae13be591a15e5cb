#!/usr/bin/env bash
# rehearse.sh: run docs/deploy.md's commands in a scratch directory, as the current user
# (standing in for the service user), through deploy/outreach-as-service.sh as the guide does,
# without systemd or a reverse proxy. Exits non-zero at the first step that fails.
#
#   deploy/rehearse.sh                 # reuse this checkout's .venv
#   REHEARSE_INSTALL=1 deploy/rehearse.sh   # also step 2: a fresh venv with `pip install .`
#   REHEARSE_PG=postgresql://postgres@127.0.0.1:5432   # also PostgreSQL backup and restore
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
step() { printf '\n== %s\n' "$*"; }

if [ "${REHEARSE_INSTALL:-0}" = 1 ]; then
  step "2. install"
  python3 -m venv "$scratch/venv"
  "$scratch/venv/bin/pip" install -q "$repo"
  bin="$scratch/venv/bin"
else
  bin="$repo/.venv/bin"
fi
outreach="$bin/outreach"

step "4. environment"
cat > "$scratch/outreach.env" <<ENV
OUTREACH_ENV=production
SECRET_KEY=rehearsal-$(date +%s)-not-a-real-key
OUTREACH_UNSUBSCRIBE_KEY=rehearsal-$(date +%s)-unsubscribe-key
OUTREACH_BASE_URL=https://outreach.rehearsal.test
ALLOWED_HOSTS=127.0.0.1,outreach.rehearsal.test
CSRF_TRUSTED_ORIGINS=https://outreach.rehearsal.test
OUTREACH_WEBHOOK_SECRET=hooks:rehearsal-secret
OUTREACH_ADMIN_PASSWORD=rehearsal-password
DATABASE_URL=sqlite:///$scratch/lib/var/outreach.sqlite3
OUTREACH_VAR_DIR=$scratch/lib/var
ENV
# The example file's database is SQLite in the service's folder, as the guide says.
grep -q '^DATABASE_URL=sqlite:////var/lib/outreach/var/outreach.sqlite3$' "$repo/deploy/outreach.env.example"
mkdir -p "$scratch/lib" "$scratch/backups"
cp "$repo/examples/pool.toml" "$scratch/pool.toml"
export OUTREACH_HOME="$scratch/lib" OUTREACH_ENV_FILE="$scratch/outreach.env" OUTREACH_BIN="$outreach"
as_service="$repo/deploy/outreach-as-service.sh"

step "5. database, pool, admin, check"
$as_service migrate --noinput -v0
$as_service apply "$scratch/pool.toml" --dry-run | tail -n 1
$as_service apply "$scratch/pool.toml" | tail -n 1
$as_service ensure_admin
$as_service doctor
# Everything step 5 created belongs to the user that runs the service.
test -z "$(find "$scratch/lib" ! -user "$(id -un)")"
cd "$scratch/lib"
set -a; . "$scratch/outreach.env"; set +a

step "6. service (foreground stand-in for systemd)"
port=$("$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$outreach" run --bind "127.0.0.1:$port" > "$scratch/run.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz"; echo
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=
grep -q "outreach stopped" "$scratch/run.log"

step "8. backup and restore (SQLite)"
OUTREACH_BIN="$outreach" "$repo/deploy/backup.sh" "$scratch/backups" 14
backup=$(ls "$scratch/backups"/outreach-*.sqlite3)
cp "$backup" "$scratch/lib/var/outreach.sqlite3"
"$outreach" apply "$scratch/pool.toml" | grep -q "no changes"

if [ -n "${REHEARSE_PG:-}" ]; then
  step "3 and 8. PostgreSQL database, backup and restore"
  db="outreach_rehearsal_$$"
  # As the guide: a role that logs in with a password, owning its database, over TCP.
  password=$("$bin/python" -c "import secrets; print(secrets.token_urlsafe(24))")
  psql "$REHEARSE_PG/postgres" -qc "CREATE ROLE $db LOGIN PASSWORD '$password'"
  createdb --maintenance-db="$REHEARSE_PG/postgres" --owner "$db" "$db"
  hostport=${REHEARSE_PG#postgresql://}; hostport=${hostport#*@}
  export DATABASE_URL="postgresql://$db:$password@$hostport/$db"
  "$outreach" migrate --noinput -v0
  "$outreach" apply "$scratch/pool.toml" | tail -n 1
  OUTREACH_BIN="$outreach" "$repo/deploy/backup.sh" "$scratch/backups" 14
  dump=$(ls "$scratch/backups"/outreach-*.dump)
  pg_restore --clean --if-exists --no-owner --dbname "$DATABASE_URL" "$dump"
  "$outreach" apply "$scratch/pool.toml" | grep -q "no changes"
  psql "$REHEARSE_PG/postgres" -qc "DROP DATABASE $db" -c "DROP ROLE $db"
fi

step "rehearsal passed"
