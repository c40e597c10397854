#!/usr/bin/env bash
# Fuzzing (issue #8): the cargo-fuzz / libFuzzer targets of fuzz/ over Bulwark's parsing surfaces
# (JWT, CSRF tokens, rate-limit strings, forwarding headers, the HTML sanitizer, body extraction).
# Each target asserts properties, not only "no crash": see the header of fuzz/fuzz_targets/*.rs.
#
#   bash reliability/fuzz.sh                      # short (CI): FUZZ_SECONDS=10 per target
#   REL_MODE=long bash reliability/fuzz.sh        # long: FUZZ_SECONDS=600 per target
#   FUZZ_TARGETS="jwt csrf" FUZZ_SECONDS=60 bash reliability/fuzz.sh
#
# Settings (environment): FUZZ_SECONDS (per target), FUZZ_TARGETS (default: every target),
# FUZZ_JOBS (targets fuzzed at once, default 1: the machine has 2 cores), FUZZ_CORPUS_DIR (keep
# and grow corpora there across runs; default: a temporary copy of fuzz/seeds/<target>, deleted
# at exit), FUZZ_TARGET_DIR (default fuzz/target).
#
# Each run starts from the small hand-made seeds of fuzz/seeds/<target>/ (committed); what the
# fuzzer adds is never written back. A crash stops nothing else, fails the part, and keeps its
# input in fuzz/artifacts/<target>/ (ignored by git); reproduce it with
#   fuzz/target/<host>/release/<target> fuzz/artifacts/<target>/crash-...
# and turn it into a regression test of the normal `cargo test` suite (docs/reliability.md).
#
# Build flags: `-O -a -s none` = release optimizations, debug assertions and overflow checks on,
# no sanitizer. Why no ASan (cargo-fuzz's default):
# - every target and the code under test is safe Rust (`unsafe_code = "forbid"`), where
#   AddressSanitizer has little to find; overflow checks and debug assertions matter more: the
#   CSRF timestamp overflow fixed with this part is invisible without them (`-O` alone turns them
#   off, hence `-a`). ASan would also instrument aws-lc's C code, which is fuzzed upstream;
# - ASan needs a nightly toolchain (-Zsanitizer); without a sanitizer every flag cargo-fuzz passes
#   is stable, so the machine's one toolchain builds the targets (no other can be fetched on a
#   new machine). FUZZ_TOOLCHAIN=+nightly picks another;
# - build time: measured on this 2-core machine (shared, load 6-9), the cold `-s none` build took
#   14 min and a warm one (only bulwark changed) about 2 min; the cold ASan build (a separate,
#   instrumented copy of every dependency, aws-lc included) had not finished after 35 min at
#   nice 10 and was abandoned. With a warm build, short mode takes about 75 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FUZZ_DIR=$REL_ROOT/fuzz
if [ "$REL_MODE" = long ]; then default_seconds=600; else default_seconds=10; fi
FUZZ_SECONDS=${FUZZ_SECONDS:-$default_seconds}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}
BUILD_FLAGS=(-O -a -s none)

# No nightly needed: with `-s none`, cargo-fuzz passes only stable flags (-Cpasses=sancov-module,
# -Cllvm-args=-sanitizer-coverage-*, -Cdebug-assertions, --cfg fuzzing).
CARGO=(cargo)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then CARGO+=("$FUZZ_TOOLCHAIN"); fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  rel_log "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked >&2 || rel_fail "fuzz: cargo install cargo-fuzz failed"
fi

cd "$FUZZ_DIR"
all_targets=$("${CARGO[@]}" fuzz list)
FUZZ_TARGETS=${FUZZ_TARGETS:-$all_targets}

rel_log "fuzz: building every target (${BUILD_FLAGS[*]})"
build_start=$(date +%s)
"${CARGO[@]}" fuzz build "${BUILD_FLAGS[@]}" --target-dir "$FUZZ_TARGET_DIR" >&2 ||
  rel_fail "fuzz: cargo fuzz build failed"
build_seconds=$(($(date +%s) - build_start))
host=$(rustc -vV | sed -n 's/^host: //p') # cargo-fuzz builds for the host triple
bin_dir=$FUZZ_TARGET_DIR/$host/release

work=$(mktemp -d "$REL_WORK/fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fuzz_one TARGET: runs it and writes "execs corpus crashes" to $work/TARGET.result.
fuzz_one() {
  local target=$1 corpus log artifacts
  corpus=${FUZZ_CORPUS_DIR:-$work/corpus}/$target
  mkdir -p "$corpus"
  local seed
  for seed in "$FUZZ_DIR/seeds/$target"/*; do
    [ -e "$corpus/${seed##*/}" ] || cp "$seed" "$corpus/"
  done
  artifacts=$FUZZ_DIR/artifacts/$target
  mkdir -p "$artifacts"
  log=$work/$target.log
  local status=0
  "$bin_dir/$target" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
  local execs files crashes=0
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$status" -ne 0 ]; then crashes=1; fi
  echo "${execs:-0} $files $crashes" >"$work/$target.result"
}

rel_log "fuzz: ${FUZZ_SECONDS} s per target, $FUZZ_JOBS at a time"
running=0
for target in $FUZZ_TARGETS; do
  [ -x "$bin_dir/$target" ] || rel_fail "fuzz: no target $target (have: ${all_targets//$'\n'/ })"
  fuzz_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$FUZZ_JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

total_execs=0 total_corpus=0 total_seconds=0 failed=()
for target in $FUZZ_TARGETS; do
  read -r execs files crashes <"$work/$target.result"
  rel_figure fuzz "target=$target" "seconds=$FUZZ_SECONDS" "execs=$execs" "corpus=$files" \
    "crashes=$crashes"
  total_execs=$((total_execs + execs))
  total_corpus=$((total_corpus + files))
  total_seconds=$((total_seconds + FUZZ_SECONDS))
  if [ "$crashes" -ne 0 ]; then
    failed+=("$target")
    artifact=$(sed -n 's/.*Test unit written to //p' "$work/$target.log" | tail -1)
    rel_log "fuzz: $target CRASHED; input kept in ${artifact:-$FUZZ_DIR/artifacts/$target/}"
    grep -m1 -A4 -E "panicked at|ERROR: libFuzzer" "$work/$target.log" >&2 ||
      tail -20 "$work/$target.log" >&2
    rel_log "fuzz: reproduce with: $bin_dir/$target ${artifact:-<artifact>}"
  fi
done
rel_figure fuzz target=all "seconds=$total_seconds" "execs=$total_execs" "corpus=$total_corpus" \
  "crashes=${#failed[@]}" "build_seconds=$build_seconds"
[ ${#failed[@]} -eq 0 ] || rel_fail "fuzz: crashes in ${failed[*]}"
rel_log "fuzz: no crash in ${FUZZ_TARGETS//$'\n'/ }"
