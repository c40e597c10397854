#!/usr/bin/env bash
# Schemathesis against /openapi.json: every operation, every check (no server error, status
# codes, content types, headers and bodies conform to the document, invalid data refused, valid
# data accepted, auth not ignored, deleted resources gone...), on SQLite and on PostgreSQL, once
# as a normal user and once as an admin per database, each on its own server with a fresh
# database (an admin run may disable itself, rotate keys...).
#
#   bash reliability/schemathesis.sh                 # short mode (CI): 15 examples per operation
#   REL_MODE=long bash reliability/schemathesis.sh   # long mode: 500 per operation, then 5 min stateful
#   REL_ST_SEED=N bash reliability/schemathesis.sh   # replay a run's data generation (see its Seed line)
#   REL_ST_IDENTITIES=admin ...                      # only one identity (user, admin)
#   REL_ST_DATABASES=postgres ...                    # only one database (sqlite, postgres)
#
# SQLite: a file in the server's temporary folder. PostgreSQL: a database bulwark_rel_<random>
# created on BULWARK_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) for
# each server and dropped after it. When that PostgreSQL does not answer, its runs fail the part
# under CI (CI=true) or when BULWARK_TEST_DATABASE_URL is set, and are skipped with a message
# otherwise. Every run goes on after another one failed; the part fails at the end.
#
# Schemathesis comes from PyPI, pinned in reliability/requirements.txt, into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/bulwark-reliability/venv. Each run's full output, JUnit report, server
# log and (short mode) VCR cassette are kept in target/reliability/schemathesis/DATABASE/IDENTITY/,
# with `curl` lines that reproduce each failure.
set -euo pipefail
st_own_work=${REL_WORK:-}
source "$(dirname "$0")/lib.sh"
# On exit, last registered first: the server of the current run, then its PostgreSQL database
# (rel_pg_database), then the work folder when run alone (not by reliability/run).
[ -n "$st_own_work" ] || rel_cleanup_add "rm -rf '$REL_WORK'"
st_stop_server() {
  [ -n "${REL_PID:-}" ] || return 0
  rel_stop_server "$REL_PID"
  REL_PID=
}

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

# st_run DATABASE IDENTITY: a fresh database, a server of its own, an account, then each pass;
# prints the FIGURE line. A failed run is added to ST_FAILED (the next runs still go).
ST_FAILED=()
st_run() {
  local db=$1 identity=$2 name password role=() out pass label args database=()
  local operations=0 examples=0 failures=0 failed=() n status
  if [ "$db" = postgres ]; then
    rel_pg_database
    database=(BULWARK_DATABASE_URL="$REL_PGDB_URL")
    rel_log "schemathesis: $db, $identity: database $REL_PGDB_NAME"
  fi
  rel_cleanup_add st_stop_server # registered after the database: stopped before its drop
  rel_start_server "schemathesis-$db-$identity" "${ST_SERVER_ENV[@]}" "${database[@]}"
  case $identity in
    admin) name=st-admin password=$REL_PASS_ADMIN role=(admin) ;;
    *) name=st-user password=$REL_PASS_USER ;;
  esac
  rel_create_user "$name" "$password" "${role[@]}"
  out=$ST_OUT/$db/$identity
  rm -rf "$out"
  mkdir -p "$out"
  : >"$out/replaced-accounts"
  for pass in "${ST_PASSES[@]}"; do
    label=${pass%%:*}
    read -ra args <<<"${pass#*:}"
    rel_log "schemathesis: $db, $identity, $label pass, against $REL_URL ($REL_MODE)"
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
  st_stop_server
  cp "$REL_DIR/server.log" "$out/server.log"
  if [ "$db" = postgres ]; then
    rel_pg_drop_database "$REL_PGDB_NAME" || rel_log "schemathesis: could not drop $REL_PGDB_NAME (dropped again on exit)"
  fi

  rel_figure schemathesis "db=$db" "identity=$identity" "operations=$operations" \
    "examples=$examples" "failures=$failures" \
    "replaced_accounts=$(wc -l <"$out/replaced-accounts")"
  if ! (rel_check_log_clean "schemathesis-$db-$identity" "$out/server.log"); then failed+=(panic); fi
  if [ ${#failed[@]} -gt 0 ]; then
    for label in "${failed[@]}"; do
      [ "$label" = panic ] || sed -n '/FAILURES\|ERRORS/,$p' "$out/output-$label.txt" | head -n 200 >&2
    done
    rel_log "FAIL: schemathesis ($db, $identity): $failures failure(s), failed: ${failed[*]}; see $out/"
    ST_FAILED+=("$db/$identity")
  fi
}

# The databases to run on; PostgreSQL's is checked first (a failure under CI when it is down).
ST_DATABASES=()
ST_SKIPPED=
for db in ${REL_ST_DATABASES:-sqlite postgres}; do
  case $db in
    sqlite) ST_DATABASES+=("$db") ;;
    postgres)
      if rel_shared_postgres; then ST_DATABASES+=("$db"); else ST_SKIPPED=postgres; fi ;;
    *) rel_fail "schemathesis: unknown database $db (sqlite, postgres)" ;;
  esac
done

st_venv
for db in "${ST_DATABASES[@]}"; do
  for identity in ${REL_ST_IDENTITIES:-user admin}; do
    st_run "$db" "$identity"
  done
done
if [ -n "$ST_SKIPPED" ]; then
  rel_figure schemathesis "db=$ST_SKIPPED" skipped=unreachable
  rel_log "schemathesis: SKIPPED the $ST_SKIPPED runs: no PostgreSQL at $(rel_redact "$REL_PG_ADMIN_URL") (see above)"
fi
[ ${#ST_FAILED[@]} -eq 0 ] || rel_fail "schemathesis: failures in ${ST_FAILED[*]} (DATABASE/IDENTITY); see $ST_OUT/"

