#!/usr/bin/env bash
# Fault injection (issue #8): the dependencies of a running Bulwark fail under load, and it must
# keep its promises.
#
#   pg-stop         PostgreSQL stops (fast shutdown; in long mode every other cycle is an
#                   immediate one, i.e. a crash) while clients create items: requests answer 503
#                   within the pool's acquire timeout, /ready answers 503, nothing panics; once
#                   PostgreSQL is back everything recovers without restarting Bulwark.
#   redis-stop      Redis (rate limits, revocations, events) stops while clients create items,
#                   log in and call a tightly limited route: logins fail closed (503), other
#                   limits fail open, all within a short time budget; limiting resumes once Redis
#                   is back.
#   kill9-sqlite    Bulwark is killed with SIGKILL while clients create items at full speed, then
#   kill9-postgres  restarted: every item whose 201 a client received exists, intact.
#
# Every scenario starts its own servers (PostgreSQL and Redis on free ports, in temporary
# folders), never the shared ones, and removes them on exit. Every acknowledged item (201) of
# every scenario is read back and compared at the end: lost and corrupted must be 0.
#
#   bash reliability/faults.sh                      # short mode (CI): each fault once, ~1-2 min
#   REL_MODE=long bash reliability/faults.sh        # 5 cycles each, longer load; figures
#   FAULTS="pg-stop kill9-sqlite" bash reliability/faults.sh   # some scenarios only
#
# Tunables (environment): REL_FAULT_CYCLES, REL_FAULT_THREADS, REL_FAULT_BEFORE / _DURING /
# _AFTER (seconds of load before, during and after each fault), REL_PG_ACQUIRE (the server's
# database_acquire_timeout in seconds, default 2), REL_PG_BIN (PostgreSQL's bin folder).
set -euo pipefail
own_work=${REL_WORK:+no}
source "$(dirname "$0")/lib.sh"
[ "$own_work" = no ] || rel_cleanup_add "rm -rf '$REL_WORK'"
: >>"$REL_FIGURES"

CLIENT="python3 $REL_ROOT/reliability/faults_client.py"
if [ "$REL_MODE" = long ]; then
  CYCLES=${REL_FAULT_CYCLES:-5} BEFORE=${REL_FAULT_BEFORE:-10} DURING=${REL_FAULT_DURING:-15}
  AFTER=${REL_FAULT_AFTER:-10}
else
  CYCLES=${REL_FAULT_CYCLES:-1} BEFORE=${REL_FAULT_BEFORE:-3} DURING=${REL_FAULT_DURING:-4}
  AFTER=${REL_FAULT_AFTER:-3}
fi
THREADS=${REL_FAULT_THREADS:-6}
ACQUIRE=${REL_PG_ACQUIRE:-2}
FAULTS=${FAULTS:-pg-stop redis-stop kill9-sqlite kill9-postgres}
LOAD_USER='fault-loader'

# Settings of every server here: full-speed clients are not what the default per-user limit
# (600/minute) is for, tokens outlive a long run, and cheap hashing keeps login load about the
# failure, not Argon2.
COMMON=(BULWARK_ACCESS_TOKEN_TTL=2h BULWARK_RATE_LIMITS__DEFAULT=1000000/minute
  BULWARK_RATE_LIMITS__LOGIN_PER_IP=1000000/minute BULWARK_RATE_LIMITS__LOGIN_PER_USERNAME=1000000/minute
  BULWARK_PASSWORD_HASHING__MEMORY_KIB=1024 BULWARK_PASSWORD_HASHING__ITERATIONS=1)

now() { date +%s.%N; }
ms_since() { python3 -c "import sys,time; print(round((time.time()-float(sys.argv[1]))*1000))" "$1"; }

# kill_server: SIGKILL, no chance to finish anything (also the exit cleanup of every scenario).
kill_server() { kill -9 "$REL_PID" 2>/dev/null || true; wait "$REL_PID" 2>/dev/null || true; }

# start_load DIR MIX: the load client in the background (CLIENT_PID); stop_load DIR stops it.
start_load() {
  local dir=$1 mix=$2
  mkdir -p "$dir"
  rm -f "$dir/stop"
  REL_TOKEN=$TOKEN REL_LOGIN_PASSWORD=$REL_PASS_USER $CLIENT run --url "$REL_URL" --mix "$mix" \
    --login-user "$LOAD_USER" --stop-file "$dir/stop" --out "$dir" >"$dir/client.out" 2>"$dir/client.err" &
  CLIENT_PID=$!
  rel_cleanup_add "kill $CLIENT_PID"
}
stop_load() {
  touch "$1/stop"
  wait "$CLIENT_PID" || { cat "$1/client.err" >&2; rel_fail "the load client failed"; }
  if grep -q . "$1/client.err"; then head -5 "$1/client.err" >&2; rel_fail "unexpected answers (see above)"; fi
}

# wait_ready: seconds until GET /ready answers 200 (fails after 60 s).
wait_ready() {
  local start; start=$(now)
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$REL_URL/ready")" = 200 ] && { ms_since "$start"; return; }
    sleep 0.1
  done
  rel_fail "/ready did not answer 200 within 60 s of the restart"
}

# setup_user: the load user and its token (TOKEN).
setup_user() {
  rel_create_user "$LOAD_USER" "$REL_PASS_USER"
  TOKEN=$(rel_token "$LOAD_USER" "$REL_PASS_USER")
  [ -n "$TOKEN" ] || rel_fail "no token for the load user"
}

# verify DIR: every acknowledged item exists intact; sets VERIFY (key=value figures).
verify() {
  VERIFY=$(REL_TOKEN=$TOKEN $CLIENT verify --url "$REL_URL" --acked "$1/acked.jsonl") ||
    { echo "$VERIFY" >&2; rel_fail "acknowledged items lost or corrupted"; }
  rel_log "verified: $VERIFY"
}

figure() { # NAME REPORT [key=value...]: the FIGURE line of a scenario, from its report and
  local name=$1 report=$2; shift 2 # verify lines
  # shellcheck disable=SC2046
  rel_figure faults "fault=$name" "cycles=$CYCLES" $(tr ' ' '\n' <<<"$report" | grep -v '^total=') \
    "$@" $(tr ' ' '\n' <<<"$VERIFY" | grep -v '^duplicate_ids=')
}

# The server must have run through every fault (same process), and never panicked.
check_same_server() { # NAME PID
  kill -0 "$2" 2>/dev/null || { tail -20 "$REL_DIR/server.log" >&2; rel_fail "$1: Bulwark exited during the fault"; }
  rel_check_log_clean "$1" "$REL_DIR/server.log"
}

# outage_cycles DIR DOWN UP [BACK]: CYCLES times, `DOWN CYCLE` takes a store down, DURING
# seconds later `UP CYCLE` brings it back, then `BACK CYCLE` (if given) waits for what should
# follow; the down and up times go to DIR/events for the client's report.
outage_cycles() {
  local dir=$1 down=$2 up=$3 back=${4:-} cycle
  for cycle in $(seq 1 "$CYCLES"); do
    echo "down $(now)" >>"$dir/events"
    "$down" "$cycle"
    sleep "$DURING"
    "$up" "$cycle"
    echo "up $(now)" >>"$dir/events"
    if [ -n "$back" ]; then "$back" "$cycle"; fi
    sleep "$AFTER"
  done
}

# PostgreSQL stops: a fast shutdown, or in long mode every other cycle an immediate one.
pg_down() { # CYCLE
  local mode=fast
  if [ "$REL_MODE" = long ] && [ $(($1 % 2)) = 0 ]; then mode=immediate; fi
  rel_log "pg-stop cycle $1/$CYCLES: PostgreSQL down ($mode) for ${DURING}s"
  rel_postgres_down "$mode"
}

pg_back() { # CYCLE: how long /ready took to answer 200 again, into PG_RECOVERED
  PG_RECOVERED+=("$(wait_ready)")
  rel_log "pg-stop cycle $1: /ready 200 again ${PG_RECOVERED[-1]} ms after PostgreSQL was back"
}

# Redis stops: SIGTERM, or in long mode every other cycle SIGKILL.
redis_down() { # CYCLE
  local signal=TERM
  if [ "$REL_MODE" = long ] && [ $(($1 % 2)) = 0 ]; then signal=KILL; fi
  rel_log "redis-stop cycle $1/$CYCLES: Redis down (SIG$signal) for ${DURING}s"
  kill -s "$signal" "$REL_REDIS_PID"
  wait "$REL_REDIS_PID" 2>/dev/null || true
}

scenario_pg_stop() {
  rel_start_postgres pg-stop
  rel_start_server pg-stop "${COMMON[@]}" BULWARK_DATABASE_URL="$REL_PG_URL" \
    BULWARK_DATABASE_ACQUIRE_TIMEOUT="${ACQUIRE}s"
  rel_cleanup_add kill_server
  setup_user
  local dir=$REL_WORK/pg-stop/load pid=$REL_PID
  PG_RECOVERED=()
  start_load "$dir" "create*$THREADS,ready"
  sleep "$BEFORE"
  outage_cycles "$dir" pg_down rel_postgres_up pg_back
  stop_load "$dir"
  check_same_server pg-stop "$pid"
  local report
  report=$($CLIENT report --scenario pg-stop --requests "$dir/requests.tsv" --events "$dir/events" \
    --max-503-ms $((ACQUIRE * 1000 + 1500)) --max-latency-ms $((ACQUIRE * 1000 + 2500))) ||
    { echo "$report" >&2; rel_fail "pg-stop: the server broke its promises during the outage"; }
  rel_log "pg-stop: $report"
  verify "$dir"
  local ready_max; ready_max=$(printf '%s\n' "${PG_RECOVERED[@]}" | sort -n | tail -1)
  figure pg-stop "$report" "ready_after_restart_ms=$ready_max" "acquire_timeout_s=$ACQUIRE"
  rel_stop_server
}

scenario_redis_stop() {
  rel_start_redis redis-stop
  # GET /users/me gets a tight limit: over it, answers are 429 while Redis counts, and 200 while
  # it is down (fail open).
  # One instance on SQLite with Redis stores: `bulwark check` calls SQLite shared through Redis
  # critical (it cannot be shared between instances), which serve refuses without the flag.
  REL_SERVE_FLAGS=(--allow-insecure)
  rel_start_server redis-stop "${COMMON[@]}" BULWARK_REDIS_URL="$REL_REDIS_URL" \
    'BULWARK_RATE_LIMITS__ROUTES={"GET /users/me"="20/second"}'
  REL_SERVE_FLAGS=()
  rel_cleanup_add kill_server
  setup_user
  local dir=$REL_WORK/redis-stop/load pid=$REL_PID
  start_load "$dir" "create*$((THREADS - 2)),login*2,limited,ready"
  sleep "$BEFORE"
  outage_cycles "$dir" redis_down rel_redis_up
  stop_load "$dir"
  check_same_server redis-stop "$pid"
  local report
  report=$($CLIENT report --scenario redis-stop --requests "$dir/requests.tsv" --events "$dir/events" \
    --max-503-ms 1000 --max-latency-ms 2000) ||
    { echo "$report" >&2; rel_fail "redis-stop: the server broke its promises during the outage"; }
  rel_log "redis-stop: $report"
  verify "$dir"
  figure redis-stop "$report"
  rel_stop_server
  rel_redis_down
}

# scenario_kill9 NAME [KEY=VALUE...]: load, SIGKILL, restart on the same data, CYCLES times.
scenario_kill9() {
  local name=$1; shift
  rel_start_server "$name" "${COMMON[@]}" "$@"
  rel_cleanup_add kill_server
  setup_user
  local dir=$REL_WORK/$name/load
  start_load "$dir" "create*$((THREADS + 2))"
  for cycle in $(seq 1 "$CYCLES"); do
    sleep "$BEFORE"
    rel_log "$name cycle $cycle/$CYCLES: kill -9 under load"
    echo "down $(now)" >>"$dir/events"
    kill_server
    rel_restart_server
    echo "up $(now)" >>"$dir/events"
  done
  sleep "$AFTER"
  stop_load "$dir"
  rel_check_log_clean "$name" "$REL_DIR/server.log"
  local report
  report=$($CLIENT report --scenario kill9 --requests "$dir/requests.tsv" --events "$dir/events" \
    --max-503-ms 0 --max-latency-ms 10000) ||
    { echo "$report" >&2; rel_fail "$name: answers other than 201 outside the kill windows, or no recovery"; }
  rel_log "$name: $report"
  verify "$dir"
  figure "$name" "$report"
  rel_stop_server
}

started=$(date +%s)
for fault in $FAULTS; do
  case $fault in
    pg-stop) scenario_pg_stop ;;
    redis-stop) scenario_redis_stop ;;
    kill9-sqlite) scenario_kill9 kill9-sqlite ;;
    kill9-postgres)
      rel_start_postgres kill9-postgres
      scenario_kill9 kill9-postgres BULWARK_DATABASE_URL="$REL_PG_URL"
      ;;
    *) rel_fail "unknown fault $fault (pg-stop redis-stop kill9-sqlite kill9-postgres)" ;;
  esac
done
rel_log "faults: all passed in $(($(date +%s) - started)) s ($REL_MODE mode)"
