#!/usr/bin/env bash
# Project-local PostgreSQL clusters for `make run`, `make test` and `make bench`.
#
#   scripts/pg.sh start DATADIR PORT [server options...]   initdb if needed, start, create db
#   scripts/pg.sh stop DATADIR                             stop (fast), keep the data
#   scripts/pg.sh resume DATADIR                           start a stopped cluster again with the
#                                                          options of its last `start` (fault tests)
#   scripts/pg.sh destroy DATADIR                          stop and delete the folder
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user
# (created with the Debian package); as anyone else it runs as that user. It listens on
# 127.0.0.1 only, with trust authentication for the `orgbilling` role: loopback-only dev and
# test clusters, never production (see docs/decisions.md).
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|resume|destroy DATADIR [PORT]}
datadir=${2:?DATADIR required}

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  for v in 17 16 15 14; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then echo "/usr/lib/postgresql/$v/bin"; return; fi
  done
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  return 1
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pg.sh: no PostgreSQL server binaries found; installing Debian's postgresql" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir)
  else
    echo "pg.sh: PostgreSQL server binaries not found (set PG_BINDIR)" >&2; exit 1
  fi
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The server user must be able to reach DATADIR: give every ancestor o+x when root.
make_reachable() {
  local dir
  dir=$(dirname "$1")
  while [ "$dir" != "/" ]; do
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then chmod o+x "$dir"; fi
    dir=$(dirname "$dir")
  done
}

case "$cmd" in
  start)
    port=${3:?PORT required}
    shift 3
    datadir=$(mkdir -p "$datadir" && cd "$datadir" && pwd)
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$datadir"
      make_reachable "$datadir"
    fi
    chmod 700 "$datadir"
    if [ ! -f "$datadir/pgdata/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$datadir/pgdata" -U orgbilling -A trust -E UTF8 \
        --locale=C.UTF-8 >"$datadir/initdb.log" 2>&1 || { cat "$datadir/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$datadir/pgdata" status >/dev/null 2>&1; then
      opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$datadir"
      for o in "$@"; do opts="$opts $o"; done
      printf '%s\n' "$opts" >"$datadir/server.opts"  # for `resume`
      as_owner "$bindir/pg_ctl" -D "$datadir/pgdata" -l "$datadir/server.log" -o "$opts" -w -t 60 start >/dev/null \
        || { tail -20 "$datadir/server.log" >&2; exit 1; }
    fi
    # A cluster that was already running keeps the port it was started with: report that one.
    running_port=$(sed -n 4p "$datadir/pgdata/postmaster.pid" 2>/dev/null || true)
    if [ -n "$running_port" ] && [ "$running_port" != "$port" ]; then
      echo "pg.sh: the cluster in $datadir is already running on port $running_port (not $port); using it" >&2
      port=$running_port
    fi
    if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10; then
      echo "pg.sh: PostgreSQL in $datadir does not answer on 127.0.0.1:$port" >&2
      tail -20 "$datadir/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U orgbilling -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='orgbilling'" | grep -q 1; then
      "$bindir/createdb" -h 127.0.0.1 -p "$port" -U orgbilling orgbilling
    fi
    echo "postgres://orgbilling@127.0.0.1:$port/orgbilling"
    ;;
  stop)
    if [ -f "$datadir/pgdata/PG_VERSION" ]; then
      as_owner "$bindir/pg_ctl" -D "$datadir/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  resume)
    # The same server options as the last `start` (port, max_connections, fsync...).
    if [ ! -f "$datadir/server.opts" ]; then
      echo "pg.sh: $datadir was never started by pg.sh start" >&2; exit 1
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$datadir/pgdata" status >/dev/null 2>&1; then
      as_owner "$bindir/pg_ctl" -D "$datadir/pgdata" -l "$datadir/server.log" -o "$(cat "$datadir/server.opts")" \
        -w -t 60 start >/dev/null || { tail -20 "$datadir/server.log" >&2; exit 1; }
    fi
    ;;
  destroy)
    "$0" stop "$datadir"
    rm -rf "$datadir"
    ;;
  *)
    echo "usage: pg.sh start|stop|resume|destroy DATADIR [PORT]" >&2; exit 2 ;;
esac
