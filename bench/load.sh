#!/usr/bin/env bash
# The load benchmark (issue #9): Bulwark on the shared scenarios S1-S7, against a ceiling measured
# in the same run, with the issue's targets checked.
#
#   bench/load.sh                         # S1-S7 on SQLite, server on CPU 0, wrk on CPU 1
#   REPEAT=3 bench/load.sh                # median of 3 runs of everything
#   SERVER_CPUS=0,1 bench/load.sh         # 2 server cores: wrk then shares CPU 1 with the server
#   DATABASE=postgres bench/load.sh       # PostgreSQL instead of SQLite; "sqlite postgres": both
#   PEER=1 bench/load.sh                  # also the FastAPI peer of the shared folder
#
# Needs wrk (apt-get install -y wrk), curl, taskset, python3 and 2 CPUs; psql and PostgreSQL on
# 127.0.0.1:5432 for DATABASE=postgres; python3 with venv and network access once for PEER=1.
#
# Builds the production-profile binary and the ceiling (crates/bulwark/examples/ceiling.rs: a bare axum
# `GET /health` answering {"status":"ok"} on a multi-thread tokio runtime). Each repetition then
#   1. starts the ceiling pinned to SERVER_CPUS and runs S1 against it;
#   2. for each DATABASE: starts `bulwark serve` on embedded defaults (a temporary folder, memory
#      stores; PostgreSQL: a fresh database, dropped afterwards) pinned to SERVER_CPUS, creates a
#      user, and runs S1-S7 with the shared bench.sh (wrk pinned to WRK_CPU). With PAIRED=1 (the
#      default) the ceiling, still running but idle meanwhile, runs S1 again just before each of
#      S1-S5, and each of those is compared with the ceiling run next to it: a shared machine's
#      speed drifts by 10-20 % within a minute, which a single ceiling run per repetition
#      carries into every ratio;
#   3. with PEER=1, the same for the FastAPI peer (uvicorn, 1 worker, pinned the same way).
# Every server is new for each repetition and stopped after it. Loopback only.
#
# It prints one table per server (Markdown): requests/s, p50, p99, the status-code check, server
# CPU per request, peak RSS (the server's VmHWM after the scenario, so it only grows within a
# run; a first row gives it just after start-up), the shared script's noisy flag (runs where
# other processes took > 10 % of the server's core, with the most they took), the ratio to the
# ceiling and the issue's targets with met/missed:
#   S2 >= 20 %, S3 >= 5 %, S4 >= 40 %, S5 >= 80 % of the ceiling's S1 requests/s;
#   S7 p99 <= 2x S2 p99 (S2 is S7's idle case); peak RSS over all runs <= 30 MB.
# A run with a wrong status code or socket errors (valid=0) is flagged and left out of the
# medians. Exit status: 0, or 1 when a run was flagged (or, with STRICT=1, a target missed).
#
# Knobs (defaults in brackets):
#   SERVER_CPUS [0]       CPUs of the server and of the ceiling (taskset list: 0 or 0,1)
#   WRK_CPU [1]           CPU of wrk. With SERVER_CPUS=0,1 the load generator shares CPU 1 with
#                         the server, so the 2-core figures understate the server (and the
#                         noisy flag then only watches CPU 0).
#   DURATION [8s] WARMUP [2s] CONNS [32] S6_CONNS [4]   passed to the shared bench.sh
#   REPEAT [1]            repetitions; the table shows the median of the valid runs
#   PAIRED [1]            1: a ceiling run just before each of S1-S5, each scenario's ratio the
#                         median over repetitions of its rate over that run's; 0: one ceiling
#                         run per repetition, ratios of the medians
#   SCENARIOS ["S1 S2 S3 S4 S5 S6 S7"]   a subset to run
#   DATABASE [sqlite]     sqlite, postgres, or both ("sqlite postgres")
#   PG_URL [postgres://postgres@127.0.0.1:5432]   server where DATABASE=postgres creates and
#                         drops its bulwark_bench_* databases
#   RATE_LIMITS [high]    high: limiting on (its cost is part of the figures) with every quota,
#                         logins included, at 1000000/second so nothing is refused;
#                         off: rate_limits.enabled = false
#   REFERENCE [1]         1: with S5, also S5 against the ceiling binary in its `with-401`
#                         mode (a bare route answering the same 401 with the same headers),
#                         printed apart as a reference: what the answer's size alone costs the
#                         server that writes it and wrk that reads it. 0: not run
#   PEER [0]              1: also the FastAPI peer (shared/bench/fastapi); skipped with a
#                         message when Python or its packages are not available
#   PEER_VENV [~/.cache/bulwark-bench/fastapi-<hash of requirements.txt>]   its virtualenv
#   OUT                   keep every raw file (bench.sh lines, wrk output, server logs) in this
#                         folder; without it they go to a temporary folder removed at exit
#   LOG [warn]            warn: the server logs warnings only (RUST_LOG=warn), the tuned figures;
#                         default: exactly what `bulwark serve` does with no settings (RUST_LOG
#                         unset: one access line per request at info, to the server's log file)
#   STRICT [0]            1: exit 1 when a target is missed
#   SERVER_ENV            extra settings of Bulwark, space-separated KEY=VALUE (e.g.
#                         "BULWARK_PASSWORD_HASHING__MEMORY_KIB=7168 BULWARK_PASSWORD_HASHING__ITERATIONS=5")
#   SHARED, BULWARK_BIN, CEILING_BIN   see bench/lib.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SERVER_CPUS=${SERVER_CPUS:-0}
WRK_CPU=${WRK_CPU:-1}
REPEAT=${REPEAT:-1}
PAIRED=${PAIRED:-1}
DATABASE=${DATABASE:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
RATE_LIMITS=${RATE_LIMITS:-high}
PEER=${PEER:-0}
REFERENCE=${REFERENCE:-1}
STRICT=${STRICT:-0}
LOG=${LOG:-warn}
case $LOG in
  warn) export RUST_LOG=warn BW_DEFAULT_LOG= ;;
  default) export BW_DEFAULT_LOG=1 ;;
  *) bench_die "LOG: warn or default (got '$LOG')" ;;
esac
read -r -a EXTRA_ENV <<<"${SERVER_ENV:-}"
SCENARIOS=${SCENARIOS:-"S1 S2 S3 S4 S5 S6 S7"}
export DURATION=${DURATION:-8s} WARMUP=${WARMUP:-2s} CONNS=${CONNS:-32} S6_CONNS=${S6_CONNS:-4}

[[ $SERVER_CPUS =~ ^[0-9]+(,[0-9]+)*$ ]] || bench_die "SERVER_CPUS must be a CPU list such as 0 or 0,1 (got '$SERVER_CPUS')"
[[ $WRK_CPU =~ ^[0-9]+$ ]] || bench_die "WRK_CPU must be one CPU number (got '$WRK_CPU')"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "REPEAT must be a positive number (got '$REPEAT')"
[[ $PAIRED =~ ^[01]$ ]] || bench_die "PAIRED must be 0 or 1 (got '$PAIRED')"
[[ $DURATION =~ ^[1-9][0-9]*s$ ]] || bench_die "DURATION must be whole seconds such as 8s (got '$DURATION')"
for db in $DATABASE; do
  case $db in sqlite|postgres) ;; *) bench_die "DATABASE: sqlite, postgres or both (got '$db')" ;; esac
done
case $RATE_LIMITS in
  high) LIMIT_ENV=(BULWARK_RATE_LIMITS__DEFAULT=1000000/second
    BULWARK_RATE_LIMITS__LOGIN_PER_IP=1000000/second
    BULWARK_RATE_LIMITS__LOGIN_PER_USERNAME=1000000/second) ;;
  off) LIMIT_ENV=(BULWARK_RATE_LIMITS__ENABLED=false) ;;
  *) bench_die "RATE_LIMITS: high or off (got '$RATE_LIMITS')" ;;
esac
for s in $SCENARIOS; do
  case $s in S[1-7]) ;; *) bench_die "SCENARIOS: S1 to S7 (got '$s')" ;; esac
done

bench_find_shared
bench_check_tools
for cpu in ${SERVER_CPUS//,/ } $WRK_CPU; do
  taskset -c "$cpu" true 2>/dev/null || bench_die "CPU $cpu is not available to this process (see SERVER_CPUS, WRK_CPU)"
done
# bench.sh's noisy flag watches one CPU: the server's first.
SERVER_CPU=${SERVER_CPUS%%,*}

if [[ " $DATABASE " == *" postgres "* ]]; then
  bench_need psql "apt-get install -y postgresql-client (DATABASE=postgres needs it)"
  psql "$PG_URL/postgres" -qAtc 'select 1' >/dev/null 2>&1 ||
    bench_die "PostgreSQL does not answer at $PG_URL (set PG_URL, or leave DATABASE=sqlite)"
fi

# ------------------------------------------------------------------ the FastAPI peer's venv
peer_setup() {
  local req=$BENCH_SHARED/fastapi/requirements.txt
  if [ ! -f "$req" ] || [ ! -f "$BENCH_SHARED/fastapi/app.py" ]; then
    bench_log "PEER skipped: no fastapi/ in $BENCH_SHARED"; return 1
  fi
  python3 -c 'import venv, ensurepip' 2>/dev/null ||
    { bench_log "PEER skipped: python3 has no venv/ensurepip (apt-get install -y python3-venv)"; return 1; }
  local hash; hash=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:12])' "$req")
  PEER_VENV=${PEER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark-bench/fastapi-$hash}
  [ -f "$PEER_VENV/.installed" ] && return 0
  bench_log "PEER: installing the FastAPI peer's packages into $PEER_VENV"
  rm -rf "$PEER_VENV"
  mkdir -p "$(dirname "$PEER_VENV")"
  if { python3 -m venv "$PEER_VENV" &&
       "$PEER_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"; } >"$WORK/peer-install.log" 2>&1; then
    touch "$PEER_VENV/.installed"
  else
    tail -5 "$WORK/peer-install.log" >&2
    rm -rf "$PEER_VENV"
    bench_log "PEER skipped: could not install $req (log above)"
    return 1
  fi
}

# ------------------------------------------------------------------ work folder and clean-up
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; WORK=$(cd "$OUT" && pwd); KEEP=1; else WORK=$(mktemp -d -t bulwark-load.XXXXXX); KEEP=0; fi
PIDS=()
PG_DBS=()
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for db in "${PG_DBS[@]}"; do
    psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS=$WORK/results
: >"$RESULTS"

if [ "$PEER" = 1 ] && ! peer_setup; then PEER=0; fi
bench_build
bench_build_ceiling

# record_idle NAME REP PID: the memory of a server just started, before any load.
record_idle() {
  echo "$1 $2 IDLE $(bench_memory "$3") valid=1" >>"$RESULTS"
}

# record NAME REP OUTFILE [FIELD]: the scenario lines of one run, prefixed with the server and
# repetition (and FIELD appended, e.g. before=sqlite:S2).
record() {
  if grep -q '^S[1-7] ' "$3" 2>/dev/null; then
    grep '^S[1-7] ' "$3" | sed "s/^/$1 $2 /; s/\$/${4:+ $4}/" >>"$RESULTS"
  else
    echo "$1 $2 S0 valid=0 reason=no_output" >>"$RESULTS"
    bench_log "$1: the shared bench script printed nothing: $(grep -h 'FATAL' "$3" 2>/dev/null; tail -3 "$3.stderr" 2>/dev/null)"
  fi
  grep -h '^# FATAL' "$3" 2>/dev/null | sed "s/^/$1 $2 /" >&2 || true
}

run_ceiling() { # REP: starts the ceiling (CEILING_URL, CEILING_PID) and runs S1 against it
  local dir=$WORK/ceiling-$1 port; mkdir -p "$dir"
  port=$(bench_free_port)
  taskset -c "$SERVER_CPUS" "$CEILING_BIN" "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
  CEILING_PID=$!; PIDS+=("$CEILING_PID")
  CEILING_URL=http://127.0.0.1:$port
  bench_wait_health "$CEILING_URL" "$CEILING_PID" "$dir/server.log"
  record_idle ceiling "$1" "$CEILING_PID"
  bench_log "run $1/$REPEAT: ceiling (bare axum), S1"
  bench_scenarios "$CEILING_URL" "$dir/out" "$CEILING_PID" SCENARIOS=S1 SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU"
  record ceiling "$1" "$dir/out"
}

# run_reference REP: the ceiling binary again, in its `with-401` mode, for S5 alone: the same
# 401 and headers as Bulwark's, written by a bare route (REFERENCE=1).
run_reference() {
  local dir=$WORK/reference-$1 port pid; mkdir -p "$dir"
  port=$(bench_free_port)
  taskset -c "$SERVER_CPUS" "$CEILING_BIN" "127.0.0.1:$port" with-401 >"$dir/server.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  bench_wait_health "http://127.0.0.1:$port" "$pid" "$dir/server.log"
  bench_log "run $1/$REPEAT: reference (bare axum answering S5's 401), S5"
  bench_scenarios "http://127.0.0.1:$port" "$dir/out" "$pid" SCENARIOS=S5 SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU"
  record reference "$1" "$dir/out"
  bench_stop "$pid"
}

# ceiling_before REP DB SCENARIO: the ceiling's S1 again, just before DB's SCENARIO (PAIRED=1).
ceiling_before() {
  local out=$WORK/ceiling-$1/out-before-$2-$3
  bench_scenarios "$CEILING_URL" "$out" "$CEILING_PID" SCENARIOS=S1 SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU"
  record ceiling "$1" "$out" "before=$2:$3"
}

run_bulwark() { # DB REP
  local db=$1 rep=$2 dir=$WORK/$1-$2; mkdir -p "$dir"
  local -a dbenv=()
  if [ "$db" = postgres ]; then
    local name="bulwark_bench_$$_$rep"
    PG_DBS+=("$name")
    PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
    psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $name" >/dev/null || bench_die "cannot create database $name at $PG_URL"
    dbenv=(BULWARK_DATABASE_URL="$PG_URL/$name")
  fi
  bench_start_bulwark "$dir" "$SERVER_CPUS" "${LIMIT_ENV[@]}" "${dbenv[@]}" "${EXTRA_ENV[@]}"
  PIDS+=("$BENCH_PID")
  record_idle "$db" "$rep" "$BENCH_PID"
  bench_log "run $rep/$REPEAT: bulwark on $db, $SCENARIOS"
  if [ "$PAIRED" = 1 ]; then
    local s
    for s in $SCENARIOS; do
      case $s in S[1-5]) ceiling_before "$rep" "$db" "$s" ;; esac
      bench_scenarios "$BENCH_URL" "$dir/out-$s" "$BENCH_PID" SCENARIOS="$s" SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU"
      record "$db" "$rep" "$dir/out-$s"
    done
  else
    bench_scenarios "$BENCH_URL" "$dir/out" "$BENCH_PID" SCENARIOS="$SCENARIOS" SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU"
    record "$db" "$rep" "$dir/out"
  fi
  bench_stop "$BENCH_PID"
  if grep -q panicked "$dir/server.log"; then bench_log "bulwark on $db panicked: see $dir/server.log"; fi
  if [ "$db" = postgres ]; then
    psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null || true
  fi
}

run_peer() { # REP
  local dir=$WORK/fastapi-$1 port; mkdir -p "$dir"
  port=$(bench_free_port)
  RATE_LIMIT_LOGIN=off SQLITE_WAL=1 ANCHOR_DB="$dir/anchor.db" taskset -c "$SERVER_CPUS" \
    "$PEER_VENV/bin/uvicorn" --app-dir "$BENCH_SHARED/fastapi" app:app --host 127.0.0.1 --port "$port" \
    --workers 1 --log-level warning >"$dir/server.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  bench_wait_health "http://127.0.0.1:$port" "$pid" "$dir/server.log"
  record_idle fastapi "$1" "$pid"
  bench_log "run $1/$REPEAT: FastAPI peer, $SCENARIOS"
  bench_scenarios "http://127.0.0.1:$port" "$dir/out" "$pid" SCENARIOS="$SCENARIOS" \
    SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU" BENCH_USER=user1 BENCH_PASS=password1
  bench_stop "$pid"
  record fastapi "$1" "$dir/out"
}

started=$(date +%s)
for rep in $(seq 1 "$REPEAT"); do
  run_ceiling "$rep"
  if [ "$REFERENCE" = 1 ] && [[ " $SCENARIOS " == *" S5 "* ]]; then run_reference "$rep"; fi
  for db in $DATABASE; do run_bulwark "$db" "$rep"; done
  bench_stop "$CEILING_PID"
  if [ "$PEER" = 1 ]; then run_peer "$rep"; fi
done

status=0
python3 "$BENCH_ROOT/bench/load_table.py" "$RESULTS" \
  --databases "$DATABASE" --peer "$PEER" --repeat "$REPEAT" --server-cpus "$SERVER_CPUS" \
  --wrk-cpu "$WRK_CPU" --conns "$CONNS" --s6-conns "$S6_CONNS" --duration "$DURATION" \
  --warmup "$WARMUP" --rate-limits "$RATE_LIMITS" --strict "$STRICT" --paired "$PAIRED" --log "$LOG" \
  --elapsed "$(( $(date +%s) - started ))" || status=$?
if [ "$KEEP" = 1 ]; then echo "raw files: $WORK (bench.sh lines: $RESULTS)"; fi
exit "$status"
