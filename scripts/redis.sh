#!/usr/bin/env bash
# Project-local Redis servers for `make run` (Celery broker) and the tests' real-worker test.
#
#   scripts/redis.sh start DIR PORT    install redis-server if missing (root), start, print its URL
#   scripts/redis.sh stop DIR          stop the server started in DIR
#   scripts/redis.sh destroy DIR       stop and delete DIR
#   scripts/redis.sh install           only make sure redis-server is installed
#
# The server listens on 127.0.0.1 only, keeps nothing on disk (no RDB snapshots, no AOF) and
# runs daemonized with its pid, log and working directory in DIR. As root it runs as the
# `redis` OS user (created by Debian's package) when that user exists. Loopback-only dev and
# test servers, never production (see docs/decisions.md).
set -euo pipefail

cmd=${1:?usage: redis.sh start|stop|destroy DIR [PORT] | install}

install_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis.sh: redis-server not found; installing Debian's redis-server" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  else
    echo "redis.sh: redis-server not found: install it (apt-get install redis-server) or set CELERY_BROKER_URL" >&2
    exit 1
  fi
}

run_user() {
  if [ "$(id -u)" = 0 ] && id -u redis >/dev/null 2>&1; then echo redis; fi
}

as_owner() {
  local user
  user=$(run_user)
  if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# The server user must be able to reach DIR: give every ancestor o+x when root.
make_reachable() {
  local user=$1 dir
  dir=$(dirname "$2")
  while [ "$dir" != "/" ]; do
    if ! runuser -u "$user" -- test -x "$dir" 2>/dev/null; then chmod o+x "$dir"; fi
    dir=$(dirname "$dir")
  done
}

is_running() {  # DIR
  [ -f "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null
}

case "$cmd" in
  install)
    install_redis
    ;;
  start)
    dir=${2:?DIR required}
    port=${3:?PORT required}
    install_redis
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    user=$(run_user)
    if [ -n "$user" ]; then
      chown "$user": "$dir"
      make_reachable "$user" "$dir"
    fi
    chmod 700 "$dir"
    if is_running "$dir"; then
      port=$(cat "$dir/port")
    else
      echo "$port" >"$dir/port"
      as_owner redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
        --save '' --appendonly no \
        || { tail -20 "$dir/redis.log" >&2 2>/dev/null; exit 1; }
    fi
    for _ in $(seq 1 100); do
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then
        echo "redis://127.0.0.1:$port/0"
        exit 0
      fi
      sleep 0.1
    done
    echo "redis.sh: Redis did not answer on 127.0.0.1:$port" >&2
    tail -20 "$dir/redis.log" >&2 2>/dev/null || true
    exit 1
    ;;
  stop)
    dir=${2:?DIR required}
    if is_running "$dir"; then
      pid=$(cat "$dir/redis.pid")
      redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    ;;
  destroy)
    dir=${2:?DIR required}
    "$0" stop "$dir"
    rm -rf "$dir"
    ;;
  *)
    echo "usage: redis.sh start|stop|destroy DIR [PORT] | install" >&2; exit 2 ;;
esac
