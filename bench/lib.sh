# shellcheck shell=bash
# Shared helpers of the load benchmarks (bench/*.sh); sourced, not run.
#
# The scenarios themselves are the shared `bench.sh` (S1-S7, wrk pinned to one CPU, one
# `KEY=value` line per scenario); these helpers find it, build the release binaries, and start
# throwaway servers on loopback in temporary folders.
#
# Environment: SHARED (folder of the shared bench.sh), BULWARK_BIN (use this binary instead of
# building one), CEILING_BIN (same for the ceiling example).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$BENCH_ROOT/scripts/lib.sh"
# Throwaway account of every benchmarked server (not a secret: it lives for one run on loopback).
BENCH_USER=bench
BENCH_PASS='bench-Vivid-Harbor-71'

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { echo "${0##*/}: $*" >&2; exit 1; }

# bench_need TOOL HINT: stop with a clear message when TOOL is not installed.
bench_need() {
  command -v "$1" >/dev/null 2>&1 || bench_die "$1 is missing: $2"
}

# The shared scenarios: $SHARED, else shared/bench beside the main checkout (this checkout may be
# a git worktree living elsewhere). Sets BENCH_SHARED.
bench_find_shared() {
  local common candidates=()
  if [ -n "${SHARED:-}" ]; then
    [ -x "$SHARED/bench.sh" ] || bench_die "SHARED=$SHARED has no executable bench.sh"
    BENCH_SHARED=$(cd "$SHARED" && pwd); return 0
  fi
  candidates+=("$BENCH_ROOT/../shared/bench")
  if common=$(git -C "$BENCH_ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
    candidates+=("$(dirname "$common")/../shared/bench")
  fi
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/bench.sh" ]; then BENCH_SHARED=$(cd "$dir" && pwd); return 0; fi
  done
  bench_die "the shared bench script (bench.sh) is not in ${candidates[*]}: set SHARED=/path/to/shared/bench"
}

# The tools every load run needs (wrk, curl, taskset, python3, two CPUs).
bench_check_tools() {
  bench_need wrk "apt-get install -y wrk"
  bench_need curl "apt-get install -y curl"
  bench_need taskset "apt-get install -y util-linux"
  bench_need python3 "apt-get install -y python3"
  local cpus; cpus=$(nproc --all 2>/dev/null || echo 1)
  [ "$cpus" -ge 2 ] || bench_die "needs 2 CPUs (server on one, wrk on the other); this machine has $cpus"
}

bench_target_dir() { bw_target_dir "$BENCH_ROOT"; }

# bench_build: build of the server with the `production` profile (release with whole-program
# optimization, as deployed); sets BULWARK_BIN unless it is set already.
bench_build() {
  [ -z "${BULWARK_BIN:-}" ] || return 0
  bench_need cargo "install Rust (https://rustup.rs)"
  bench_log "production build of bulwark (15-20 minutes the first time on 2 cores)"
  (cd "$BENCH_ROOT" && cargo build -q --profile production -p bulwark-server --bin bulwark) ||
    bench_die "cargo build failed"
  BULWARK_BIN=$(bench_target_dir)/production/bulwark
}

# bench_build_ceiling: build of crates/bulwark/examples/ceiling.rs with the same profile; sets
# CEILING_BIN unless it is set already.
bench_build_ceiling() {
  [ -z "${CEILING_BIN:-}" ] || return 0
  bench_need cargo "install Rust (https://rustup.rs)"
  (cd "$BENCH_ROOT" && cargo build -q --profile production -p bulwark-axum --example ceiling) ||
    bench_die "cargo build of the ceiling example failed"
  CEILING_BIN=$(bench_target_dir)/production/examples/ceiling
}

bench_free_port() { bw_free_port; }

# bench_wait_health URL PID LOG: until URL/health answers; fails when PID exits first.
bench_wait_health() { bw_wait_health "$1" "$2" "$3" 30 || bench_die "the server did not start"; }

# bench_start_bulwark DIR CPUS [KEY=VALUE...]: `bulwark serve` on embedded defaults (SQLite in
# DIR, in-process stores) pinned to CPUS, with the benchmark account created first. It runs in
# DIR, without the caller's BULWARK_* variables, so no bulwark.toml or setting of the developer's
# leaks in; extra settings go to its environment. Sets BENCH_PID and BENCH_URL.
bench_start_bulwark() {
  local dir=$1 cpus=$2; shift 2
  local name
  BW_PRE=()
  for name in $(compgen -e | grep '^BULWARK_' || true); do BW_PRE+=(-u "$name"); done
  bw_server_env "$dir" "$@"
  bw_create_user "$dir" "$BULWARK_BIN" "$BENCH_USER" "$BENCH_PASS" >"$dir/users-create.log" 2>&1 ||
    { cat "$dir/users-create.log" >&2; bench_die "users create failed"; }
  local port; port=$(bench_free_port)
  BENCH_URL=http://127.0.0.1:$port
  (cd "$dir" && exec env "${BW_PRE[@]}" "${BW_ENV[@]}" taskset -c "$cpus" "$BULWARK_BIN" serve --bind "127.0.0.1:$port") \
    >"$dir/server.log" 2>&1 &
  BENCH_PID=$!
  bench_wait_health "$BENCH_URL" "$BENCH_PID" "$dir/server.log"
}

# bench_memory PID: "vmhwm_kb=... vmrss_kb=..." of a running process.
bench_memory() {
  awk '/^VmHWM:/ {h=$2} /^VmRSS:/ {r=$2} END {printf "vmhwm_kb=%s vmrss_kb=%s\n", h, r}' "/proc/$1/status" 2>/dev/null ||
    echo "vmhwm_kb=0 vmrss_kb=0"
}

# bench_stop PID: SIGTERM, then wait for it.
bench_stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# bench_scenarios URL OUTFILE PID [KEY=VALUE...]: the shared scenarios against URL as the
# benchmark account; the extra KEY=VALUE (SCENARIOS, SERVER_CPU, ...) go to bench.sh. Its
# lines land in OUTFILE (raw wrk output in OUTFILE.raw); a failing run is not fatal here.
bench_scenarios() {
  local url=$1 out=$2 pid=$3; shift 3
  local -a pidenv=()
  [ -n "$pid" ] && pidenv=(SERVER_PID="$pid")
  env BENCH_USER="$BENCH_USER" BENCH_PASS="$BENCH_PASS" "${pidenv[@]}" "$@" \
    "$BENCH_SHARED/bench.sh" "$url" "$out" >/dev/null 2>"$out.stderr" || true
}
