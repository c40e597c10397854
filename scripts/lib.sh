# shellcheck shell=bash
# Helpers shared by bench/lib.sh and reliability/lib.sh (sourced, not run): throwaway
# `bulwark serve` processes on embedded defaults, each in a temporary folder of its own, on a
# free loopback port.

BW_PRE=()  # see bw_create_user

# bw_free_port: a TCP port that is free on 127.0.0.1 now.
bw_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# bw_target_dir ROOT: cargo's target folder for the workspace at ROOT.
bw_target_dir() {
  (cd "$1" && cargo metadata --format-version 1 --no-deps) |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# bw_server_env DIR [KEY=VALUE...]: sets BW_ENV, the environment of a server on embedded
# defaults with its data in DIR: a SQLite file, a fresh random master secret, in-process stores,
# RUST_LOG=warn unless set (with BW_DEFAULT_LOG=1: no RUST_LOG at all, the server's own default,
# and BW_PRE drops an inherited one); the extra settings come last (they win).
bw_server_env() {
  local dir=$1; shift
  local -a log=(RUST_LOG="${RUST_LOG:-warn}")
  if [ -n "${BW_DEFAULT_LOG:-}" ]; then log=(); BW_PRE+=(-u RUST_LOG); fi
  BW_ENV=(BULWARK_DATA_DIR="$dir" BULWARK_DATABASE_URL="sqlite://$dir/bulwark.db"
    BULWARK_MASTER_SECRET="$(head -c 32 /dev/urandom | base64)" "${log[@]}" "$@")
}

# bw_create_user DIR BIN NAME PASSWORD [ROLE...]: `bulwark users create` run in DIR with BW_ENV
# (and whatever the caller put before it in BW_PRE, e.g. `-u NAME` to drop a variable).
bw_create_user() {
  local dir=$1 bin=$2 name=$3 pass=$4; shift 4
  local -a roles=()
  for r in "$@"; do roles+=(--role "$r"); done
  (cd "$dir" && echo "$pass" |
    env "${BW_PRE[@]}" "${BW_ENV[@]}" "$bin" users create "$name" "${roles[@]}" --password-stdin)
}

# bw_wait_health URL PID LOG [SECONDS]: waits until URL/health answers (default 30 s). Returns 1,
# with the end of LOG on stderr, when PID exits first or the time is out.
bw_wait_health() {
  local url=$1 pid=$2 log=$3 tries=$((${4:-30} * 10))
  for _ in $(seq 1 "$tries"); do
    curl -sf "$url/health" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$log" >&2
      echo "the server exited at start ($log)" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "no answer from $url/health after ${4:-30} s ($log)" >&2
  return 1
}
