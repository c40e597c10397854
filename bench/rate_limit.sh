#!/usr/bin/env bash
# What rate limiting costs on the authenticated item read (S2 of ../shared/bench/README.md).
#
#   bench/rate_limit.sh            # needs wrk (apt-get install -y wrk) and Redis on 127.0.0.1:6379
#
# Builds the production-profile binary, then for each configuration starts `bulwark serve` on embedded
# defaults in a temporary folder pinned to CPU 0 (wrk runs on CPU 1), creates a user and runs
# S2 with the shared bench script:
#   off     rate_limits.enabled = false                      (the baseline of this run)
#   memory  limits on, in-process store                      (default 1000000/second: never 429)
#   redis   limits on, Redis store (one Lua round trip per request)
# and prints requests/s, p50 and p99 of each, with the throughput lost against `off` and the
# latency Redis adds. Loopback only; every run is bounded by DURATION (default 8s).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_find_shared
bench_check_tools
bench_build
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export DURATION=${DURATION:-8s} WARMUP=${WARMUP:-2s}

run() { # name, extra env...
  local name=$1; shift
  local dir; dir=$(mktemp -d)
  bench_start_bulwark "$dir" 0 BULWARK_DOCS=false BULWARK_RATE_LIMITS__DEFAULT=1000000/second "$@"
  bench_scenarios "$BENCH_URL" "$dir/out" "$BENCH_PID" SCENARIOS=S2
  bench_stop "$BENCH_PID"
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
