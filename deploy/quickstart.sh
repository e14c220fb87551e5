#!/usr/bin/env bash
# Starts a local 3-node bucketmesh on this machine and runs a real copy job on it.
#
#   ./deploy/quickstart.sh             build, create TLS material, start 3 nodes, then run the demo
#                                      job: sample files → backup over all 3 nodes, and verify it
#   ./deploy/quickstart.sh --no-job    the same without the demo job (also: start-only, or
#                                      QUICKSTART_JOB=0)
#   ./deploy/quickstart.sh job         run the demo job again on the running mesh
#   ./deploy/quickstart.sh status      show the status again
#   ./deploy/quickstart.sh stop        stop the nodes (SIGTERM: they drain and exit)
#   ./deploy/quickstart.sh clean       stop and delete .local-mesh/quickstart
#
# Everything lives in ./.local-mesh/quickstart: the cluster CA and node certificates (made with
# `meshctl tls`), each node's data dir and log, and the demo's data (data/src, the location
# `sample`, is copied to data/backup, the location `backup`). Nodes listen on 127.0.0.1:7410,
# :7420 and :7430 (metrics on the next port up). A ./.meshctl.toml is written so plain `meshctl`
# works here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="$ROOT/.local-mesh/quickstart"
DATA="$DIR/data"
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

start_mesh() {
  echo "== building meshd and meshctl (first build takes a few minutes)"
  cargo build --bins --locked -q

  stop >/dev/null
  mkdir -p "$DIR"
  if [[ ! -f "$DIR/tls/ca.pem" ]]; then
    echo "== creating the cluster CA and node certificates in $DIR/tls"
    meshctl tls ca create --dir "$DIR/tls" >/dev/null
    for i in 1 2 3; do meshctl tls cert create --dir "$DIR/tls" --node "n$i" --ip 127.0.0.1 --dns localhost >/dev/null; done
  fi

  local join="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
  echo "== starting 3 nodes (logs: $DIR/n1.log …)"
  for i in 1 2 3; do
    local port=${PORTS[$((i-1))]}
    local args=(--data-dir "$DIR/n$i" --listen "127.0.0.1:$port" --zone "local-$i"
          --tls-ca "$DIR/tls/ca.pem" --tls-cert "$DIR/tls/n$i.pem" --tls-key "$DIR/tls/n$i-key.pem")
    # A node that already has a data dir rejoins its mesh; new ones form it together.
    [[ -d "$DIR/n$i/db" ]] || args+=(--bootstrap-expect 3 --join "$join")
    nohup "$BIN/meshd" "${args[@]}" >>"$DIR/n$i.log" 2>&1 &
    echo $! >"$DIR/n$i.pid"
  done

  echo -n "== waiting for the mesh to elect a leader"
  local token_file=""
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
}

# The demo's source tree: a few hundred files of mixed sizes in a few folders, and one 48 MiB
# file that the job splits into part-range tasks. Deterministic (seeded), made once; a tree left
# half-made by an interrupted run is made again.
make_sample_data() {
  if [[ -f "$DATA/src.done" && -d "$DATA/src" ]]; then
    echo "== sample data: $DATA/src (already there)"
    return
  fi
  echo "== making sample data in $DATA/src"
  rm -rf "$DATA/src" "$DATA/src.done"
  python3 - "$DATA/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20240229)
words = ("mesh raft node leader voter learner bucket object copy verify part task job "
         "region zone replica snapshot log term index quorum").split()
def put(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
def text(n):
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "\n"
        out.append(line); size += len(line)
    return "".join(out).encode()[:n]
for i in range(120):                       # small text files, 200 B .. 16 KiB
    put(f"docs/{['guides', 'notes', 'specs'][i % 3]}/doc-{i:03d}.txt", text(rng.randint(200, 16 << 10)))
put("docs/empty.txt", b"")                 # an empty object
for i in range(100):                       # binary files, 64 KiB .. 1.5 MiB
    put(f"photos/{2023 + i % 2}/img-{i:03d}.jpg", rng.randbytes(rng.randint(64 << 10, 3 << 19)))
for i in range(80):                        # logs, 1 .. 64 KiB
    put(f"logs/2024-0{1 + i % 9}/node-{i % 3 + 1}-{i:03d}.log", text(rng.randint(1 << 10, 64 << 10)))
put("video/big.bin", rng.randbytes(48 << 20))   # split across nodes (job.split_object_bytes 32MiB)
PY
  touch "$DATA/src.done"
}

# The demo job: `meshctl cp sample: backup: --wait`, its summary, the nodes it ran on (from
# `meshctl job show`), then an independent check of every file in the destination.
demo_job() {
  make_sample_data
  mkdir -p "$DATA/backup"
  local files bytes
  read -r files bytes < <(find "$DATA/src" -type f ! -name '*%meta' -printf '%s\n' | awk '{n++; b+=$1} END {print n+0, b+0}')
  echo "   $files files, $(( (bytes + (1 << 19)) >> 20 )) MiB (one of them 48 MiB)"

  echo "== adding the locations sample ($DATA/src) and backup ($DATA/backup)"
  add_location sample "$DATA/src"
  add_location backup "$DATA/backup"

  echo "== job settings: split objects from 32MiB into 8MiB part tasks, 100 objects per copy task"
  meshctl setting set job.split_object_bytes 32MiB >/dev/null
  meshctl setting set job.part_task_bytes 8MiB >/dev/null
  meshctl setting set job.copy_task_objects 100 >/dev/null

  wait_for_nodes

  echo "== meshctl cp sample: backup: --wait"
  local out="$DIR/last-job.txt"
  # stdout (the job id, then the summary) is kept in $out as well; the progress display goes to
  # stderr, so it is still a live bar on a terminal.
  if ! meshctl cp sample: backup: --wait | tee "$out"; then
    echo "!! the copy job did not complete; see above, \`meshctl job logs\` and $DIR/n*.log" >&2
    exit 1
  fi
  local id
  id=$(head -n1 "$out")
  LAST_JOB=$id
  if [[ ! "$id" =~ ^j-[0-9a-f]+$ ]]; then
    echo "!! could not read the job id from meshctl's output ($out)" >&2; exit 1
  fi

  echo "== meshctl job show $id (highlights)"
  meshctl job show "$id" >"$DIR/last-job.json"
  meshctl node list -o json >"$DIR/nodes.json"
  python3 - "$DIR/last-job.json" "$DIR/nodes.json" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
nodes = {n["id"]: n for n in json.load(open(sys.argv[2])).get("nodes", [])}
c = job.get("counters", {})
print(f"   state:      {job.get('state')}")
print(f"   tasks:      {job.get('tasks_total', 0)} (list, copy and part-range tasks)")
print(f"   objects:    {c.get('objects_done', 0)} copied, {c.get('objects_skipped', 0)} skipped, "
      f"{c.get('objects_failed', 0)} failed of {c.get('objects_total', 0)}")
used = job.get("nodes_used", [])
print(f"   nodes used: {len(used)} of {len(nodes)}")
for nid in used:
    n = nodes.get(nid, {})
    print(f"     {nid}  {n.get('addr', '?')}  zone {n.get('zone') or '-'}")
PY

  echo "== verifying: sha256 of every file in $DATA/src against the same path in $DATA/backup"
  python3 - "$DATA/src" "$DATA/backup" <<'PY'
import hashlib, os, sys
src, dst = sys.argv[1], sys.argv[2]
# What the filesystem store and the reports keep beside the objects: not objects themselves.
def ignored(rel):
    parts = rel.split(os.sep)
    return parts[-1].endswith("%meta") or parts[0] in ("%tmp", "%uploads", ".bucketmesh")
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
def files(root):
    for d, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(d, name), root)
            if not ignored(rel):
                yield rel
bad, size = [], 0
want = sorted(files(src))
for rel in want:
    s, t = os.path.join(src, rel), os.path.join(dst, rel)
    if not os.path.isfile(t):
        bad.append(f"missing   {rel}")
    elif sha256(s) != sha256(t):
        bad.append(f"different {rel} ({os.path.getsize(s)} bytes in src, {os.path.getsize(t)} in backup)")
    else:
        size += os.path.getsize(s)
extra = sorted(set(files(dst)) - set(want))
if not want:
    print("!! verification failed: no source files", file=sys.stderr); sys.exit(1)
if bad:
    print(f"!! verification FAILED: {len(bad)} of {len(want)} files missing or different:", file=sys.stderr)
    for line in bad[:20]:
        print(f"   {line}", file=sys.stderr)
    if len(bad) > 20:
        print(f"   ... and {len(bad) - 20} more", file=sys.stderr)
    sys.exit(1)
print(f"verified: {len(want)} files, all identical ({size / (1 << 20):.1f} MiB)"
      + (f"; backup also has {len(extra)} other files" if extra else ""))
PY
}

add_location() {
  local name=$1 path=$2 have=""
  mkdir -p "$path"
  have=$(meshctl location show "$name" -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["location"].get("fs_path", ""))' 2>/dev/null || true)
  if [[ "$have" == "$path" ]]; then
    echo "   $name: already there"
  else
    # --replace: a location of that name left from an older run (another path) is replaced.
    meshctl location add "$name" --fs "$path" --replace | sed 's/^/   /'
  fi
}

# A job spreads over the nodes that are up when it is planned: after a restart, wait (a little)
# until the leader has heard from all three nodes, so the demo shows the job on all of them.
wait_for_nodes() {
  local active=0
  for _ in $(seq 1 60); do
    active=$(meshctl node list -o json 2>/dev/null | python3 -c 'import json,sys; print(sum(n.get("state") == "active" and 0 <= n.get("last_contact_ms", -1) < 3000 for n in json.load(sys.stdin).get("nodes", [])))' 2>/dev/null || echo 0)
    [[ "$active" -ge 3 ]] && return
    sleep 0.5
  done
  echo "   (only $active of 3 nodes are active; the job runs on those)"
}

LAST_JOB=""
try_next() {
  echo
  echo "The mesh is running. Try (meshctl reads ./.meshctl.toml here):"
  echo "  $BIN/meshctl node list"
  if [[ -n "$LAST_JOB" ]]; then
    echo "  $BIN/meshctl job list"
    echo "  $BIN/meshctl job logs $LAST_JOB                 # the job's events: planning, tasks, nodes"
    echo "  $BIN/meshctl job report $LAST_JOB | head -n 3   # one JSON line per object"
    echo "  $BIN/meshctl sync sample: backup: --wait"
  else
    echo "  ./deploy/quickstart.sh job      # the demo copy job: sample files → backup, verified"
  fi
  echo "  kill -9 \$(cat $DIR/n1.pid); $BIN/meshctl --addr 127.0.0.1:${PORTS[1]} cluster status   # a new leader within seconds"
  echo "  ./deploy/quickstart.sh stop"
}

job=${QUICKSTART_JOB:-1}
cmd=start
for arg in "$@"; do
  case "$arg" in
    --no-job) job=0 ;;
    start|stop|clean|status|job) cmd=$arg ;;
    start-only) cmd=start; job=0 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [start|start-only|job|status|stop|clean] [--no-job]" >&2; exit 2 ;;
  esac
done

case "$cmd" in
  stop) stop; exit 0 ;;
  clean) stop; rm -rf "$DIR" "$ROOT/.meshctl.toml"; echo "removed $DIR"; exit 0 ;;
  status) meshctl cluster status; exit $? ;;
  job)
    if ! meshctl cluster status >/dev/null 2>&1; then
      echo "the quickstart mesh is not running; start it with ./deploy/quickstart.sh" >&2; exit 1
    fi
    demo_job; try_next ;;
  start)
    start_mesh
    [[ "$job" == 0 ]] || demo_job
    try_next
    ;;
esac
