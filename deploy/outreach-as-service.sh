#!/usr/bin/env bash
# outreach-as-service.sh COMMAND [ARGS...]: run an outreach command the way the service runs,
# so that every file it creates (the SQLite database, the generated keys) belongs to the
# service: run it as the service user, e.g.
#   sudo -u outreach /opt/outreach/deploy/outreach-as-service.sh migrate --noinput
# It reads the service's environment file and works in the service's folder, as
# deploy/outreach.service does. OUTREACH_HOME, OUTREACH_ENV_FILE and OUTREACH_BIN override the
# three paths.
set -euo pipefail
cd "${OUTREACH_HOME:-/var/lib/outreach}"
set -a
# shellcheck disable=SC1090
. "${OUTREACH_ENV_FILE:-/etc/outreach/outreach.env}"
set +a
exec "${OUTREACH_BIN:-/opt/outreach/.venv/bin/outreach}" "$@"
