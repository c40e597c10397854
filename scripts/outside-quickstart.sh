#!/usr/bin/env bash
# Builds the README's quickstart as a new user would: a fresh cargo project outside this
# workspace with the dependencies of the README's "Use the library" section (the library by
# path) and its code block as src/main.rs (checked equal to examples/quickstart.rs). Then runs the library's example test against that
# binary (QUICKSTART_BIN), so the README quickstart is checked as a new user follows it.
#
#   scripts/outside-quickstart.sh            # from anywhere; exit status 0 when it passes
#
# The project pins the workspace's Cargo.lock (same crate versions, no download when the
# workspace was built); OUTSIDE_TARGET_DIR [target/outside-quickstart] keeps its build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${OUTSIDE_TARGET_DIR:-$root/target/outside-quickstart}
project=$(mktemp -d "${TMPDIR:-/tmp}/my-api.XXXXXX")
trap 'rm -rf "$project"' EXIT

mkdir -p "$project/src"
# The README's "Use the library" section, literally: its dependencies (the path made this
# checkout's) and its quickstart, which must also be examples/quickstart.rs without its docs.
python3 - "$root" "$project" <<'PY'
import pathlib, re, sys
root, project = map(pathlib.Path, sys.argv[1:])
readme = (root / "README.md").read_text()
section = readme.split("## Use the library", 1)[1].split("\n## ", 1)[0]
toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
rust = re.search(r"```rust\n(.*?)```", section, re.S).group(1)
example = (root / "crates/bulwark/examples/quickstart.rs").read_text()
code = "\n".join(l for l in example.splitlines() if not l.startswith("//!")).strip("\n") + "\n"
if rust != code:
    sys.exit("outside-quickstart: README's quickstart differs from examples/quickstart.rs")
toml = toml.replace("path/to/this/repository", str(root))
(project / "Cargo.toml").write_text(
    '[package]\nname = "my-api"\nversion = "0.1.0"\nedition = "2024"\npublish = false\n\n' + toml)
(project / "src/main.rs").write_text(rust)
PY
cp "$root/Cargo.lock" "$project/Cargo.lock"

echo "outside-quickstart: building $project as an outside crate" >&2
(cd "$project" && CARGO_TARGET_DIR="$target" cargo build --quiet --offline 2>/dev/null) ||
  (cd "$project" && CARGO_TARGET_DIR="$target" cargo build --quiet)

echo "outside-quickstart: testing it over HTTP" >&2
cd "$root"
cargo build --quiet -p bulwark-axum --examples
QUICKSTART_BIN="$target/debug/my-api" cargo test --quiet -p bulwark-axum --test examples
