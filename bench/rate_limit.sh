#!/usr/bin/env bash
# What rate limiting costs on the authenticated item read (S2 of ../shared/bench/README.md).
#
#   bench/rate_limit.sh            # needs wrk (apt-get install -y wrk) and Redis on 127.0.0.1:6379
#
# Builds the release binary, then for each configuration starts `bulwark serve` on embedded
# defaults in a temporary folder pinned to CPU 0 (wrk runs on CPU 1), creates a user and runs
# S2 with the shared bench script:
#   off     rate_limits.enabled = false                      (the baseline of this run)
#   memory  limits on, in-process store                      (default 1000000/second: never 429)
#   redis   limits on, Redis store (one Lua round trip per request)
# and prints requests/s, p50 and p99 of each, with the throughput lost against `off` and the
# latency Redis adds. Loopback only; every run is bounded by DURATION (default 8s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
[ -x "$SHARED/bench.sh" ] || { echo "the shared bench script is not at $SHARED/bench.sh (set SHARED)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --bin bulwark >/dev/null
BIN=$ROOT/target/release/bulwark
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=${PORT:-18080}
PASS='bench-Vivid-Harbor-71'
export DURATION=${DURATION:-8s} WARMUP=${WARMUP:-2s}

run() { # name, extra env...
  local name=$1; shift
  local dir; dir=$(mktemp -d)
  local -a env=(BULWARK_DATA_DIR="$dir" BULWARK_DATABASE_URL="sqlite://$dir/b.db"
    BULWARK_MASTER_SECRET="$(head -c 32 /dev/urandom | base64)" BULWARK_DOCS=false
    BULWARK_RATE_LIMITS__DEFAULT=1000000/second RUST_LOG=warn "$@")
  echo "$PASS" | env "${env[@]}" "$BIN" users create bench --password-stdin >/dev/null
  env "${env[@]}" taskset -c 0 "$BIN" serve --bind "127.0.0.1:$PORT" >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  SCENARIOS=S2 BENCH_USER=bench BENCH_PASS="$PASS" SERVER_PID=$pid \
    "$SHARED/bench.sh" "http://127.0.0.1:$PORT" "$dir/out" >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local line; line=$(grep '^S2 ' "$dir/out" || echo "S2 valid=0")
  echo "$name $line"
  rm -rf "$dir"
}

results=$(
  run off BULWARK_RATE_LIMITS__ENABLED=false
  run memory
  run redis BULWARK_REDIS_URL="$REDIS_URL"
)
summary=$(mktemp)
echo "$results" >"$summary"
python3 - "$summary" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 2:
        continue
    rows[parts[0]] = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
print("%-8s %10s %8s %8s %6s %6s" % ("config", "rps", "p50_ms", "p99_ms", "valid", "noisy"))
for name in ("off", "memory", "redis"):
    f = rows.get(name, {})
    print("%-8s %10s %8s %8s %6s %6s" % (name, f.get("rps", "-"), f.get("p50_ms", "-"),
                                         f.get("p99_ms", "-"), f.get("valid", "0"), f.get("noisy", "-")))
def num(name, key):
    try:
        return float(rows[name][key])
    except (KeyError, ValueError):
        return None
off, mem, red = num("off", "rps"), num("memory", "rps"), num("redis", "rps")
if off and mem:
    print("memory store: %.1f %% of S2 throughput lost against limiting off (target <= 5 %%)" % (100 * (1 - mem / off)))
if off and red:
    print("redis store: %.1f %% of S2 throughput lost against limiting off" % (100 * (1 - red / off)))
for k in ("p50_ms", "p99_ms"):
    a, b = num("off", k), num("redis", k)
    if a is not None and b is not None:
        print("redis store adds %+.2f ms at %s" % (b - a, k[:3]))
PY
rm -f "$summary"
