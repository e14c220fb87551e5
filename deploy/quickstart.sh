#!/usr/bin/env bash
# Starts a local 3-node bucketmesh on this machine and shows its status.
#
#   ./deploy/quickstart.sh          build, create TLS material, start 3 nodes, show `cluster status`
#   ./deploy/quickstart.sh status   show the status again
#   ./deploy/quickstart.sh stop     stop the nodes (SIGTERM: they drain and exit)
#   ./deploy/quickstart.sh clean    stop and delete .local-mesh/quickstart
#
# Everything lives in ./.local-mesh/quickstart: the cluster CA and node certificates (made with
# `meshctl tls`), each node's data dir and log. Nodes listen on 127.0.0.1:7410, :7420 and :7430
# (metrics on the next port up). A ./.meshctl.toml is written so plain `meshctl` works here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="$ROOT/.local-mesh/quickstart"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bucketmesh/target}"
BIN="$CARGO_TARGET_DIR/debug"
PORTS=(7410 7420 7430)

meshctl() { "$BIN/meshctl" "$@"; }

stop() {
  local any=0
  for i in 1 2 3; do
    if [[ -f "$DIR/n$i.pid" ]] && kill -0 "$(cat "$DIR/n$i.pid")" 2>/dev/null; then
      kill -TERM "$(cat "$DIR/n$i.pid")"; any=1
    fi
  done
  if [[ $any == 1 ]]; then
    for _ in $(seq 1 100); do
      local alive=0
      for i in 1 2 3; do [[ -f "$DIR/n$i.pid" ]] && kill -0 "$(cat "$DIR/n$i.pid")" 2>/dev/null && alive=1; done
      [[ $alive == 0 ]] && break
      sleep 0.1
    done
    echo "stopped the quickstart mesh"
  fi
  rm -f "$DIR"/n*.pid
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  clean) stop; rm -rf "$DIR" "$ROOT/.meshctl.toml"; echo "removed $DIR"; exit 0 ;;
  status) meshctl cluster status; exit $? ;;
  start) ;;
  *) echo "usage: $0 [start|status|stop|clean]" >&2; exit 2 ;;
esac

echo "== building meshd and meshctl (first build takes a few minutes)"
cargo build --bins --locked -q

stop >/dev/null
mkdir -p "$DIR"
if [[ ! -f "$DIR/tls/ca.pem" ]]; then
  echo "== creating the cluster CA and node certificates in $DIR/tls"
  meshctl tls ca create --dir "$DIR/tls" >/dev/null
  for i in 1 2 3; do meshctl tls cert create --dir "$DIR/tls" --node "n$i" --ip 127.0.0.1 --dns localhost >/dev/null; done
fi

JOIN="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
echo "== starting 3 nodes (logs: $DIR/n1.log …)"
for i in 1 2 3; do
  port=${PORTS[$((i-1))]}
  args=(--data-dir "$DIR/n$i" --listen "127.0.0.1:$port" --zone "local-$i"
        --tls-ca "$DIR/tls/ca.pem" --tls-cert "$DIR/tls/n$i.pem" --tls-key "$DIR/tls/n$i-key.pem")
  # A node that already has a data dir rejoins its mesh; new ones form it together.
  [[ -d "$DIR/n$i/db" ]] || args+=(--bootstrap-expect 3 --join "$JOIN")
  nohup "$BIN/meshd" "${args[@]}" >>"$DIR/n$i.log" 2>&1 &
  echo $! >"$DIR/n$i.pid"
done

echo -n "== waiting for the mesh to elect a leader"
for _ in $(seq 1 120); do
  token_file=$(ls "$DIR"/n*/root-token 2>/dev/null | head -n1 || true)
  if [[ -n "$token_file" ]] && meshctl --addr "127.0.0.1:${PORTS[0]}" --cacert "$DIR/tls/ca.pem" --token "$(cat "$token_file")" cluster status -o json 2>/dev/null | grep -q '"leader_id": *[1-9]'; then
    break
  fi
  echo -n "."; sleep 0.5
done
echo
token_file=$(ls "$DIR"/n*/root-token 2>/dev/null | head -n1 || true)
if [[ -z "$token_file" ]]; then
  echo "the mesh did not form; see the logs:" >&2; tail -n 20 "$DIR"/n*.log >&2; exit 1
fi
cat >"$ROOT/.meshctl.toml" <<TOML
# Written by deploy/quickstart.sh: plain \`meshctl\` in this directory talks to the quickstart mesh.
addr = "127.0.0.1:${PORTS[0]}"
cacert = "$DIR/tls/ca.pem"
token_file = "$token_file"
TOML
chmod 600 "$ROOT/.meshctl.toml"

meshctl cluster status
cat <<MSG

The mesh is running. Try:
  $BIN/meshctl node list
  $BIN/meshctl setting list
  kill -9 \$(cat $DIR/n1.pid); $BIN/meshctl --addr 127.0.0.1:${PORTS[1]} cluster status   # a new leader within seconds
  ./deploy/quickstart.sh stop
MSG
