# Shared helpers of the reliability harness; sourced by reliability/run and its parts.
#
# Every part starts its own `bulwark serve` on a free loopback port in a temporary folder, so a
# run never touches the developer's data, the shared PostgreSQL databases or Redis keys of others
# (a part that runs on the shared PostgreSQL creates a database of its own there and drops it).
# Figures are printed as `FIGURE <part> key=value ...` lines and collected in $REL_FIGURES.

REL_ROOT=${REL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REL_MODE=${REL_MODE:-short}            # short (CI) or long (figures for docs/reliability.md)
REL_WORK=${REL_WORK:-$(mktemp -d -t bulwark-rel.XXXXXX)}
REL_FIGURES=${REL_FIGURES:-$REL_WORK/figures}
REL_PASS_USER='rel-Quiet-Lantern-47'   # passwords of the throwaway accounts (not secrets: the
REL_PASS_ADMIN='rel-Amber-Viaduct-93'  # servers they exist on live for one run on loopback)
export REL_ROOT REL_MODE REL_WORK REL_FIGURES

# shellcheck source=scripts/lib.sh
source "$REL_ROOT/scripts/lib.sh"

rel_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rel_fail() { rel_log "FAIL: $*"; exit 1; }

# FIGURE lines: what the long mode prints and docs/reliability.md quotes.
rel_figure() { # part key=value...
  local line="FIGURE $*"
  echo "$line"
  echo "$line" >>"$REL_FIGURES"
}

rel_free_port() { bw_free_port; }

# The binary under test: BULWARK_BIN, else a debug build (short) or a release build (long).
rel_binary() {
  if [ -n "${BULWARK_BIN:-}" ]; then echo "$BULWARK_BIN"; return; fi
  local profile=debug flag=()
  if [ "$REL_MODE" = long ]; then profile=release flag=(--release); fi
  (cd "$REL_ROOT" && cargo build -q "${flag[@]}" --bin bulwark) >&2 || rel_fail "cargo build failed"
  echo "$(bw_target_dir "$REL_ROOT")/$profile/bulwark"
}

# rel_server_env DIR [KEY=VALUE...]: the environment of one server on embedded defaults.
rel_server_env() {
  bw_server_env "$@"
  REL_ENV=("${BW_ENV[@]}")
}

# rel_start_server NAME [KEY=VALUE...]: starts a server and sets REL_URL, REL_PID, REL_DIR.
# NAME names its folder under $REL_WORK; extra settings go to its environment; REL_SERVE_FLAGS
# (an array, e.g. (--allow-insecure)) are added to `serve`, also on a restart.
rel_start_server() {
  local name=$1; shift
  REL_BIN=${REL_BIN:-$(rel_binary)}
  REL_DIR=$REL_WORK/$name
  mkdir -p "$REL_DIR"
  rel_server_env "$REL_DIR" "$@"
  printf '%s\n' "${REL_ENV[@]}" >"$REL_DIR/env"
  local port; port=$(rel_free_port)
  REL_URL="http://127.0.0.1:$port"
  env "${REL_ENV[@]}" "$REL_BIN" serve --bind "127.0.0.1:$port" "${REL_SERVE_FLAGS[@]}" \
    >"$REL_DIR/server.log" 2>&1 &
  REL_PID=$!
  bw_wait_health "$REL_URL" "$REL_PID" "$REL_DIR/server.log" 20 || rel_fail "$name: server did not start"
}

# rel_bulwark ARGS...: the CLI against the current server's data (same environment).
rel_bulwark() { env "${REL_ENV[@]}" "$REL_BIN" "$@"; }

# rel_create_user NAME PASSWORD [ROLE...]
rel_create_user() {
  BW_ENV=("${REL_ENV[@]}")
  bw_create_user "$REL_DIR" "$REL_BIN" "$@" >/dev/null
}

# rel_token NAME PASSWORD: an access token from POST /token.
rel_token() {
  curl -sf -X POST "$REL_URL/token" --data-urlencode "username=$1" --data-urlencode "password=$2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

rel_stop_server() { # [PID]: SIGTERM, then wait (graceful shutdown).
  local pid=${1:-$REL_PID}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The server must never have panicked or logged a 5xx it should not have.
rel_check_log_clean() { # NAME LOGFILE
  if grep -q "panicked" "$2"; then grep -n "panicked" "$2" | head >&2; rel_fail "$1: the server panicked"; fi
}

# --- Cleanup on exit -------------------------------------------------------------------------
# rel_cleanup_add COMMAND: run COMMAND (a string, evaluated then) when the part exits, even on
# failure or Ctrl-C; last added, first run. The first call installs the traps.
REL_CLEANUP=()
REL_SERVE_FLAGS=() # extra `serve` flags of the next rel_start_server (see there)
rel_cleanup_add() {
  if [ ${#REL_CLEANUP[@]} -eq 0 ]; then
    trap rel_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
  fi
  REL_CLEANUP+=("$1")
}
rel_cleanup() {
  local i
  for ((i = ${#REL_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${REL_CLEANUP[$i]}" >/dev/null 2>&1 || true; done
  REL_CLEANUP=()
}

# rel_restart_server: starts the current server again (after rel_stop_server or a kill -9) with
# the same environment (database, master secret), folder and port, and waits for /health.
rel_restart_server() {
  local port=${REL_URL##*:}
  env "${REL_ENV[@]}" "$REL_BIN" serve --bind "127.0.0.1:$port" "${REL_SERVE_FLAGS[@]}" \
    >>"$REL_DIR/server.log" 2>&1 &
  REL_PID=$!
  bw_wait_health "$REL_URL" "$REL_PID" "$REL_DIR/server.log" 30 || rel_fail "server did not start again"
}

# --- A PostgreSQL of the part's own (never the shared one on 5432) ---------------------------
# rel_start_postgres NAME: initializes a cluster in a new folder under the system temp folder
# (the `postgres` user must reach it, which it cannot under $REL_WORK), starts it on a free
# loopback port with its unix socket in that folder, and sets REL_PG_URL, REL_PG_DIR,
# REL_PG_PORT. Trust authentication, loopback only; fsync stays on. Removed on exit.
# initdb refuses to run as root: as root, the server runs as the `postgres` user.
rel_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
rel_pg_bin() {
  if [ -n "${REL_PG_BIN:-}" ]; then echo "$REL_PG_BIN"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] || dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  echo "$dir"
}
rel_start_postgres() {
  local name=$1 bin
  bin=$(rel_pg_bin)
  [ -x "$bin/initdb" ] || rel_fail "PostgreSQL binaries not found (set REL_PG_BIN to their folder)"
  REL_PG_DIR=$(mktemp -d -t "bulwark-rel-pg-$name.XXXXXX")
  rel_cleanup_add "rel_as_pg '$bin/pg_ctl' -D '$REL_PG_DIR/data' -m immediate -w stop; rm -rf '$REL_PG_DIR'"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$REL_PG_DIR"; fi
  rel_as_pg "$bin/initdb" -D "$REL_PG_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 \
    >"$REL_PG_DIR/initdb.log" 2>&1 || { cat "$REL_PG_DIR/initdb.log" >&2; rel_fail "$name: initdb failed"; }
  REL_PG_PORT=$(rel_free_port)
  REL_PG_URL="postgres://postgres@127.0.0.1:$REL_PG_PORT/postgres"
  rel_postgres_up
}
rel_postgres_up() { # starts the cluster of rel_start_postgres again (same folder and port)
  rel_as_pg "$(rel_pg_bin)/pg_ctl" -D "$REL_PG_DIR/data" -l "$REL_PG_DIR/postgres.log" -w -t 60 \
    -o "-p $REL_PG_PORT -k $REL_PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
    { tail -20 "$REL_PG_DIR/postgres.log" >&2; rel_fail "PostgreSQL did not start"; }
}
rel_postgres_down() { # [fast|immediate]: fast closes sessions cleanly; immediate is a crash
  rel_as_pg "$(rel_pg_bin)/pg_ctl" -D "$REL_PG_DIR/data" -m "${1:-fast}" -w -t 60 stop >/dev/null ||
    rel_fail "PostgreSQL did not stop"
}

# --- A fresh database on the shared PostgreSQL ------------------------------------------------
# The PostgreSQL of the tests: BULWARK_TEST_DATABASE_URL (what .ci/run exports), else the local
# one on 5432 with trust authentication. A part that only needs "a PostgreSQL" (not one it can
# stop: see rel_start_postgres) creates a database of its own there, bulwark_rel_<random>, and
# drops it when done or on exit; no other database is read or written.
REL_PG_ADMIN_URL=${BULWARK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# rel_psql URL ARGS...: psql without ~/.psqlrc, unaligned and quiet, 5 s to connect, stops at
# the first error.
rel_psql() {
  local url=$1; shift
  PGCONNECT_TIMEOUT=5 psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# rel_redact URL: the URL with its password, if any, replaced by ***.
rel_redact() { sed 's#^\([a-z]*://[^:@/]*\):[^@/]*@#\1:***@#' <<<"$1"; }

# rel_shared_postgres: returns 0 when REL_PG_ADMIN_URL answers. When it does not, PostgreSQL is
# required (a failure) under CI (CI=true) or when BULWARK_TEST_DATABASE_URL is set, as .ci/run
# does; otherwise it logs why and returns 1, and the caller skips its PostgreSQL runs.
rel_shared_postgres() {
  local why
  if ! command -v psql >/dev/null 2>&1; then
    why="psql not found (apt-get install -y postgresql-client)"
  elif why=$(rel_psql "$REL_PG_ADMIN_URL" -c 'SELECT 1' 2>&1 >/dev/null); then
    return 0
  fi
  why="PostgreSQL not reachable at $(rel_redact "$REL_PG_ADMIN_URL"): $(tr -s '\n\t' '  ' <<<"$why" | sed 's/ *$//')"
  if [ "${CI:-}" = true ] || [ -n "${BULWARK_TEST_DATABASE_URL:-}" ]; then
    rel_fail "$why (required: CI=true or BULWARK_TEST_DATABASE_URL is set)"
  fi
  rel_log "SKIPPED: $why; set BULWARK_TEST_DATABASE_URL to a PostgreSQL where databases may be created"
  return 1
}

# rel_pg_database: creates an empty database bulwark_rel_<random> on REL_PG_ADMIN_URL and sets
# REL_PGDB_NAME and REL_PGDB_URL (the same server, that database). Its drop is registered with
# rel_cleanup_add (so a server registered after it is stopped first); rel_pg_drop_database drops
# it sooner.
rel_pg_database() {
  REL_PGDB_NAME=bulwark_rel_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
  rel_cleanup_add "rel_pg_drop_database $REL_PGDB_NAME"
  rel_psql "$REL_PG_ADMIN_URL" -c "CREATE DATABASE \"$REL_PGDB_NAME\"" >/dev/null ||
    rel_fail "could not create database $REL_PGDB_NAME on $(rel_redact "$REL_PG_ADMIN_URL")"
  REL_PGDB_URL=$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$REL_PG_ADMIN_URL" "$REL_PGDB_NAME")
}
rel_pg_drop_database() { # NAME: drops it, closing any session left on it (PostgreSQL >= 13)
  rel_psql "$REL_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 ||
    rel_psql "$REL_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null
}

# --- A Redis of the part's own (never the shared one on 6379) --------------------------------
# rel_start_redis NAME: starts redis-server on a free loopback port, no persistence, in a
# folder under $REL_WORK; sets REL_REDIS_URL, REL_REDIS_PORT, REL_REDIS_PID. Stopped on exit.
rel_start_redis() {
  local name=$1
  command -v redis-server >/dev/null || rel_fail "redis-server not found"
  REL_REDIS_DIR=$REL_WORK/$name
  mkdir -p "$REL_REDIS_DIR"
  REL_REDIS_PORT=$(rel_free_port)
  REL_REDIS_URL="redis://127.0.0.1:$REL_REDIS_PORT"
  rel_cleanup_add 'rel_redis_down'
  rel_redis_up
}
rel_redis_up() { # starts the Redis of rel_start_redis again (same port, empty)
  redis-server --port "$REL_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$REL_REDIS_DIR" --logfile "$REL_REDIS_DIR/redis.log" &
  REL_REDIS_PID=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$REL_REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  tail -20 "$REL_REDIS_DIR/redis.log" >&2
  rel_fail "redis-server did not start"
}
rel_redis_down() { # stops it (SIGTERM, no save)
  [ -n "${REL_REDIS_PID:-}" ] || return 0
  kill "$REL_REDIS_PID" 2>/dev/null || true
  wait "$REL_REDIS_PID" 2>/dev/null || true
  REL_REDIS_PID=
}
