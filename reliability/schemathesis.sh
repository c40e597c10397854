#!/usr/bin/env bash
# Schemathesis against /openapi.json: every operation, every check (no server error, status
# codes, content types, headers and bodies conform to the document, invalid data refused, valid
# data accepted, auth not ignored, deleted resources gone...), once as a normal user and once as
# an admin, each on its own server (an admin run may disable itself, rotate keys...).
#
#   bash reliability/schemathesis.sh                 # short mode (CI): 15 examples per operation
#   REL_MODE=long bash reliability/schemathesis.sh   # long mode: 500 per operation, then 5 min stateful
#   REL_ST_SEED=N bash reliability/schemathesis.sh   # replay a run's data generation (see its Seed line)
#   REL_ST_IDENTITIES=admin ...                      # only one identity (user, admin)
#
# Schemathesis comes from PyPI, pinned in reliability/requirements.txt, into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/bulwark-reliability/venv. Each identity's full output, JUnit report
# and (short mode) VCR cassette are kept in target/reliability/schemathesis/IDENTITY/, with
# `curl` lines that reproduce each failure.
set -euo pipefail
st_own_work=${REL_WORK:-}
source "$(dirname "$0")/lib.sh"
ST_PIDS=()
st_cleanup() {
  for pid in "${ST_PIDS[@]}"; do rel_stop_server "$pid"; done
  [ -n "$st_own_work" ] || rm -rf "$REL_WORK" # run alone, not by reliability/run
}
trap st_cleanup EXIT

ST_DIR=$REL_ROOT/reliability
ST_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/bulwark-reliability/venv
ST_OUT=$REL_ROOT/target/reliability/schemathesis

# The virtualenv, (re)created when requirements.txt changed since it was made.
st_venv() {
  local want
  want=$(sha256sum "$ST_DIR/requirements.txt" | cut -d' ' -f1)
  mkdir -p "$(dirname "$ST_VENV")"
  (
    flock 9 # parallel runs share the virtualenv
    if [ -x "$ST_VENV/bin/schemathesis" ] && [ "$(cat "$ST_VENV/.requirements" 2>/dev/null)" = "$want" ]; then
      exit 0
    fi
    rel_log "schemathesis: creating $ST_VENV"
    rm -rf "$ST_VENV"
    python3 -m venv "$ST_VENV"
    "$ST_VENV/bin/pip" install -q --disable-pip-version-check -r "$ST_DIR/requirements.txt"
    echo "$want" >"$ST_VENV/.requirements"
  ) 9>"$ST_VENV.lock" || rel_fail "schemathesis: could not install $ST_DIR/requirements.txt"
}

# Passes per identity, each `name:arguments`. Short: every phase (examples, coverage, fuzzing,
# stateful) with 15 examples per operation, and a VCR cassette of every request and response.
# Long: 500 examples per operation, then the stateful phase alone, repeated for 5 minutes (it
# otherwise stops after a few dozen scenarios whatever the number of examples).
case $REL_MODE in
  long) ST_PASSES=("main:--max-examples 500 --phases examples,coverage,fuzzing"
    "stateful:--max-examples 500 --phases stateful --max-time 300") ;;
  *) ST_PASSES=("main:--max-examples 15 --report-vcr-path cassette.yaml") ;;
esac
ST_SEED=()
[ -z "${REL_ST_SEED:-}" ] || ST_SEED=(--seed "$REL_ST_SEED")

# Rate limits stay on (their headers and code paths are exercised) but far above what a run sends.
ST_SERVER_ENV=(
  BULWARK_RATE_LIMITS__DEFAULT=1000000/minute
  BULWARK_RATE_LIMITS__LOGIN_PER_IP=1000000/minute
  BULWARK_RATE_LIMITS__LOGIN_PER_USERNAME=1000000/minute
  BULWARK_ALLOW_SIGNUP=true
)

# st_failures JUNIT: failures and errors in a JUnit report ("unknown" when there is none).
st_failures() {
  python3 - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("unknown")
else:
    print(sum(len(c.findall("failure")) + len(c.findall("error")) for c in root.iter("testcase")))
EOF
}

# st_run IDENTITY: a server of its own, an account, then each pass; prints the FIGURE line.
st_run() {
  local identity=$1 name password role=() out pass label args
  local operations=0 examples=0 failures=0 failed=() n status
  rel_start_server "schemathesis-$identity" "${ST_SERVER_ENV[@]}"
  ST_PIDS+=("$REL_PID")
  case $identity in
    admin) name=st-admin password=$REL_PASS_ADMIN role=(admin) ;;
    *) name=st-user password=$REL_PASS_USER ;;
  esac
  rel_create_user "$name" "$password" "${role[@]}"
  out=$ST_OUT/$identity
  rm -rf "$out"
  mkdir -p "$out"
  : >"$out/replaced-accounts"
  for pass in "${ST_PASSES[@]}"; do
    label=${pass%%:*}
    read -ra args <<<"${pass#*:}"
    rel_log "schemathesis: $identity, $label pass, against $REL_URL ($REL_MODE)"
    status=0
    (
      cd "$out" # schemathesis keeps its cache (and `st replay` data) in the working directory
      env REL_ST_URL="$REL_URL" REL_ST_USERNAME="$name" REL_ST_PASSWORD="$password" \
        REL_ST_ROLE="${role[*]}" REL_ST_BIN="$REL_BIN" REL_ST_ENV_FILE="$REL_DIR/env" \
        REL_ST_EVENTS="$out/replaced-accounts" SCHEMATHESIS_HOOKS="$ST_DIR/schemathesis_hooks.py" \
        "$ST_VENV/bin/schemathesis" --config-file "$ST_DIR/schemathesis.toml" --no-color \
        run "$REL_URL/openapi.json" --workers 2 "${args[@]}" "${ST_SEED[@]}" \
        --report-dir "$out" --report-junit-path "$out/junit-$label.xml"
    ) >"$out/output-$label.txt" 2>&1 || status=$?
    n=$(sed -n 's/^ *Tested: *\([0-9]*\).*/\1/p' "$out/output-$label.txt" | tail -n1)
    [ "${n:-0}" -le "$operations" ] || operations=$n
    n=$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$out/output-$label.txt" | tail -n1)
    examples=$((examples + ${n:-0}))
    n=$(st_failures "$out/junit-$label.xml")
    if [ "$n" = unknown ]; then failures=unknown; elif [ "$failures" != unknown ]; then failures=$((failures + n)); fi
    if [ "$status" -ne 0 ] || [ "$n" != 0 ]; then failed+=("$label"); fi
  done
  rel_stop_server "$REL_PID"
  cp "$REL_DIR/server.log" "$out/server.log"

  rel_figure schemathesis "identity=$identity" "operations=$operations" "examples=$examples" \
    "failures=$failures" "replaced_accounts=$(wc -l <"$out/replaced-accounts")"
  rel_check_log_clean "schemathesis-$identity" "$out/server.log"
  if [ ${#failed[@]} -gt 0 ]; then
    for label in "${failed[@]}"; do
      sed -n '/FAILURES\|ERRORS/,$p' "$out/output-$label.txt" | head -n 200 >&2
    done
    rel_fail "schemathesis ($identity): $failures failure(s) in the ${failed[*]} pass(es); see $out/output-*.txt"
  fi
}

st_venv
for identity in ${REL_ST_IDENTITIES:-user admin}; do
  st_run "$identity"
done
