#!/usr/bin/env bash
# Project-local Redis servers for `make run` (Celery broker) and the tests' real-worker test.
#
#   scripts/redis.sh start DIR PORT    install redis-server if missing (root), start, print its URL
#   scripts/redis.sh stop DIR          stop the server started in DIR
#   scripts/redis.sh destroy DIR       stop and delete DIR
#   scripts/redis.sh install           only make sure redis-server is installed
#
# The server listens on 127.0.0.1 only, requires a password (generated into DIR/password on the
# first start, mode 0600, and part of the printed URL: redis://:PASSWORD@127.0.0.1:PORT/0), keeps
# nothing on disk (no RDB snapshots, no AOF) and runs daemonized with its pid, log and working
# directory in DIR. As root it runs as the `redis` OS user (created by Debian's package) when that
# user exists; DIR must then be reachable by that user (e.g. under /tmp or /var/tmp): no host
# directory's permissions are changed. Loopback-only dev and test servers, never production
# (see docs/decisions.md).
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

# The server user must be able to reach DIR; host permissions are left as they are.
check_reachable() {
  local user=$1 dir=$2
  if ! runuser -u "$user" -- test -x "$(dirname "$dir")" 2>/dev/null; then
    echo "redis.sh: the '$user' user cannot reach $dir; use a directory under /tmp or /var/tmp" >&2
    exit 1
  fi
}

# DIR is ours: not a symlink, owned by us or by the server user (a shared /tmp or /var/tmp).
check_owned() {
  local dir=$1 user=$2 owner
  if [ -L "$dir" ]; then echo "redis.sh: $dir is a symlink; refusing" >&2; exit 1; fi
  owner=$(stat -c %U "$dir")
  if [ "$owner" != "$(id -un)" ] && [ "$owner" != "${user:-$(id -un)}" ]; then
    echo "redis.sh: $dir belongs to $owner; refusing" >&2
    exit 1
  fi
}

redis_cli() {  # DIR args...: redis-cli against the server of DIR, authenticated
  local dir=$1
  shift
  REDISCLI_AUTH="$(cat "$dir/password")" redis-cli --no-auth-warning -h 127.0.0.1 -p "$(cat "$dir/port")" "$@"
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
    user=$(run_user)
    (umask 077 && mkdir -p "$dir")
    dir=$(cd "$dir" && pwd -P)
    check_owned "$dir" "$user"
    if [ -n "$user" ]; then
      check_reachable "$user" "$dir"
      chown "$user": "$dir"
    fi
    chmod 700 "$dir"
    if [ ! -s "$dir/password" ]; then
      (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$dir/password")
    fi
    if is_running "$dir"; then
      port=$(cat "$dir/port")
    else
      echo "$port" >"$dir/port"
      # The password goes in through stdin (a config file on "-"), not the command line.
      printf 'requirepass %s\n' "$(cat "$dir/password")" | as_owner redis-server - \
        --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
        --save '' --appendonly no >/dev/null \
        || { tail -20 "$dir/redis.log" >&2 2>/dev/null; exit 1; }
    fi
    for _ in $(seq 1 100); do
      if [ "$(redis_cli "$dir" ping 2>/dev/null)" = "PONG" ]; then
        echo "redis://:$(cat "$dir/password")@127.0.0.1:$port/0"
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
      redis_cli "$dir" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
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
