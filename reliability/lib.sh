# Shared helpers of the reliability harness; sourced by reliability/run and its parts.
#
# Every part starts its own `bulwark serve` on a free loopback port in a temporary folder, so a
# run never touches the developer's data, the shared PostgreSQL databases or Redis keys of others.
# Figures are printed as `FIGURE <part> key=value ...` lines and collected in $REL_FIGURES.

REL_ROOT=${REL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REL_MODE=${REL_MODE:-short}            # short (CI) or long (figures for docs/reliability.md)
REL_WORK=${REL_WORK:-$(mktemp -d -t bulwark-rel.XXXXXX)}
REL_FIGURES=${REL_FIGURES:-$REL_WORK/figures}
REL_PASS_USER='rel-Quiet-Lantern-47'   # passwords of the throwaway accounts (not secrets: the
REL_PASS_ADMIN='rel-Amber-Viaduct-93'  # servers they exist on live for one run on loopback)
export REL_ROOT REL_MODE REL_WORK REL_FIGURES

rel_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rel_fail() { rel_log "FAIL: $*"; exit 1; }

# FIGURE lines: what the long mode prints and docs/reliability.md quotes.
rel_figure() { # part key=value...
  local line="FIGURE $*"
  echo "$line"
  echo "$line" >>"$REL_FIGURES"
}

rel_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The binary under test: BULWARK_BIN, else a debug build (short) or a release build (long).
rel_binary() {
  if [ -n "${BULWARK_BIN:-}" ]; then echo "$BULWARK_BIN"; return; fi
  local profile=debug flag=()
  if [ "$REL_MODE" = long ]; then profile=release flag=(--release); fi
  (cd "$REL_ROOT" && cargo build -q "${flag[@]}" --bin bulwark) >&2 || rel_fail "cargo build failed"
  local dir
  dir=$(cd "$REL_ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  echo "$dir/$profile/bulwark"
}

# rel_server_env DIR [KEY=VALUE...]: the environment of one server on embedded defaults.
rel_server_env() {
  local dir=$1; shift
  REL_ENV=(BULWARK_DATA_DIR="$dir" BULWARK_DATABASE_URL="sqlite://$dir/bulwark.db"
    BULWARK_MASTER_SECRET="$(head -c 32 /dev/urandom | base64)" RUST_LOG="${RUST_LOG:-warn}" "$@")
}

# rel_start_server NAME [KEY=VALUE...]: starts a server and sets REL_URL, REL_PID, REL_DIR.
# NAME names its folder under $REL_WORK; extra settings go to its environment.
rel_start_server() {
  local name=$1; shift
  REL_BIN=${REL_BIN:-$(rel_binary)}
  REL_DIR=$REL_WORK/$name
  mkdir -p "$REL_DIR"
  rel_server_env "$REL_DIR" "$@"
  printf '%s\n' "${REL_ENV[@]}" >"$REL_DIR/env"
  local port; port=$(rel_free_port)
  REL_URL="http://127.0.0.1:$port"
  env "${REL_ENV[@]}" "$REL_BIN" serve --bind "127.0.0.1:$port" >"$REL_DIR/server.log" 2>&1 &
  REL_PID=$!
  for _ in $(seq 1 200); do
    curl -sf "$REL_URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$REL_PID" 2>/dev/null || { cat "$REL_DIR/server.log" >&2; rel_fail "$name: server exited at start"; }
    sleep 0.1
  done
  rel_fail "$name: server did not answer /health"
}

# rel_bulwark ARGS...: the CLI against the current server's data (same environment).
rel_bulwark() { env "${REL_ENV[@]}" "$REL_BIN" "$@"; }

# rel_create_user NAME PASSWORD [ROLE...]
rel_create_user() {
  local name=$1 pass=$2; shift 2
  local roles=()
  for r in "$@"; do roles+=(--role "$r"); done
  echo "$pass" | rel_bulwark users create "$name" "${roles[@]}" --password-stdin >/dev/null
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
