#!/usr/bin/env bash
# Start a local tocsin cluster on loopback: three nats-servers (ops/nats/node-{a,b,c}.conf,
# clients on 4222-4224) and two tocsin processes (8080 and 8081, the upstreams of
# ops/nginx/tocsin.conf) with --replicas 3. Stores, logs and PIDs go to the state directory
# ($TOCSIN_CLUSTER_DIR, default .tocsin-cluster); ops/cluster/down.sh stops everything.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${TOCSIN_CLUSTER_DIR:-$ROOT/.tocsin-cluster}"
NODES=(a b c)
MONITOR_PORTS=(8222 8223 8224)
TOCSIN_PORTS=(8080 8081)
NATS_URLS="nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
export UV_PYTHON_DOWNLOADS=never

mkdir -p "$STATE/pids" "$STATE/logs"
STATE="$(cd "$STATE" && pwd)"
if compgen -G "$STATE/pids/*.pid" >/dev/null; then
  echo "up.sh: $STATE/pids holds PID files; run ops/cluster/down.sh first" >&2
  exit 1
fi

# `uv run` brings the environment up to date once; the processes themselves are started
# directly so that the PIDs written down are theirs, not a wrapper's.
mapfile -t FOUND < <(cd "$ROOT" && uv run --quiet python -c \
  'import sys, tocsin.embedded as e; print(sys.executable); print(e.nats_server_binary())')
PYTHON="${FOUND[0]}"
NATS_SERVER="${FOUND[1]}"

wait_until() { # wait_until <what> <command...>: retry for 30 s
  local what="$1"
  shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "up.sh: $what not ready after 30 s; logs are in $STATE/logs;" \
    "ops/cluster/down.sh stops what did start" >&2
  exit 1
}

has_meta_leader() { curl -fsS "http://127.0.0.1:$1/jsz" | grep -q '"leader"'; }

for node in "${NODES[@]}"; do
  # Each node runs in the state directory: its config's store_dir is relative to it.
  (
    cd "$STATE"
    nohup "$NATS_SERVER" -c "$ROOT/ops/nats/node-$node.conf" \
      >"logs/nats-$node.log" 2>&1 </dev/null &
    echo $! >"pids/nats-$node.pid"
  )
done
for port in "${MONITOR_PORTS[@]}"; do
  wait_until "JetStream meta leader (seen from :$port)" has_meta_leader "$port"
done

# Both processes must sign and check tokens with one key; create it before either starts
# (it lives in the shared data directory, where `tocsin token --data-dir` finds it too).
"$PYTHON" -m tocsin token --publisher --data-dir "$STATE/tocsin" >/dev/null

for port in "${TOCSIN_PORTS[@]}"; do
  nohup "$PYTHON" -m tocsin serve --port "$port" --replicas 3 --nats-url "$NATS_URLS" \
    --data-dir "$STATE/tocsin" >"$STATE/logs/tocsin-$port.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/tocsin-$port.pid"
done
for port in "${TOCSIN_PORTS[@]}"; do
  wait_until "tocsin on :$port" curl -fsS "http://127.0.0.1:$port/readyz"
done

echo "tocsin cluster up: http://127.0.0.1:${TOCSIN_PORTS[0]} and http://127.0.0.1:${TOCSIN_PORTS[1]}"
echo "NATS: $NATS_URLS"
echo "a token: uv run tocsin token --user alice --data-dir $STATE/tocsin"
echo "stop with: ops/cluster/down.sh"
