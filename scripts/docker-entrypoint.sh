#!/bin/sh
# Entrypoint of the orgbilling container image (see Dockerfile and docker-compose.yml).
#
#   docker-entrypoint.sh COMMAND [ARGS...]   wait for the database, migrate if asked, exec COMMAND
#   docker-entrypoint.sh healthcheck         GET /healthz on this container; exit 0 only on 200
#
# Environment:
#   WAIT_FOR_DB=1|0          wait until DATABASE_URL accepts connections first (default 1)
#   DB_WAIT_TIMEOUT=SECONDS  then give up and exit non-zero (default 60)
#   RUN_MIGRATIONS=0|1       run `manage.py migrate --noinput` before COMMAND (default 0).
#                            Set it on one service only (web): concurrent migrates can race.
#   HEALTHCHECK_PORT         port the healthcheck probes (default 8000)
#
# COMMAND is exec'd, so it replaces this shell and receives the container's signals.
set -eu

app_dir=$(cd "$(dirname "$0")/.." && pwd)

log() {
  printf 'docker-entrypoint: %s\n' "$*" >&2
}

# Production settings redirect plain-http requests to https (SECURE_SSL_REDIRECT, honouring
# X-Forwarded-Proto through SECURE_PROXY_SSL_HEADER) and reject Host headers outside
# ALLOWED_HOSTS, so the probe claims https and uses the first allowed host name.
healthcheck() {
  exec python - <<'PY'
import os
import sys
import urllib.error
import urllib.request

hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
host = next((h.lstrip(".") for h in hosts if h != "*"), "localhost")
port = os.environ.get("HEALTHCHECK_PORT", "8000")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # report a redirect as the failure it is


request = urllib.request.Request(
    f"http://127.0.0.1:{port}/healthz",
    headers={"Host": host, "X-Forwarded-Proto": "https"},
)
try:
    with urllib.request.build_opener(NoRedirect).open(request, timeout=4) as response:
        status, body = response.status, response.read(500)
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read(500)
except OSError as exc:
    print(f"healthcheck: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"healthcheck: HTTP {status} {body.decode(errors='replace')}")
sys.exit(0 if status == 200 else 1)
PY
}

# Django's own connection (the settings' DATABASE_URL), with a short connect timeout so an
# unreachable host cannot stall one attempt past the deadline.
wait_for_db() {
  PYTHONPATH="$app_dir${PYTHONPATH:+:$PYTHONPATH}" python - <<'PY'
import os
import sys
import time

import django

django.setup()

from django.db import connection
from django.db.utils import OperationalError

timeout = float(os.environ.get("DB_WAIT_TIMEOUT", "60"))
connection.settings_dict.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
deadline = time.monotonic() + timeout
waiting = False
while True:
    try:
        connection.ensure_connection()
        break
    except OperationalError as exc:
        if time.monotonic() >= deadline:
            print(f"docker-entrypoint: database unreachable after {timeout:g}s: {exc}", file=sys.stderr)
            sys.exit(1)
        if not waiting:
            print(f"docker-entrypoint: waiting for the database ({exc})", file=sys.stderr)
            waiting = True
        time.sleep(1)
connection.close()
if waiting:
    print("docker-entrypoint: database is up", file=sys.stderr)
PY
}

if [ "${1:-}" = "healthcheck" ]; then
  healthcheck
fi

if [ "$#" -eq 0 ]; then
  log "no command given (the image's CMD runs the web server)"
  exit 64
fi

if [ "${WAIT_FOR_DB:-1}" = "1" ]; then
  wait_for_db
fi

if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
  log "applying migrations"
  python "$app_dir/manage.py" migrate --noinput
fi

exec "$@"
