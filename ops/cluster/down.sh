#!/usr/bin/env bash
# Stop what ops/cluster/up.sh started, by the PIDs it wrote down: the tocsin processes
# first (they tell open streams to come back, then leave NATS), then the nats-servers.
# The stores stay; `down.sh --purge` also deletes the state directory.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${TOCSIN_CLUSTER_DIR:-$ROOT/.tocsin-cluster}"
PURGE=0
if [[ "${1:-}" == "--purge" ]]; then PURGE=1; fi

# Signal only a process that is still the one we started: a PID can be reused.
ours() { # ours <pid> <word its command line contains>
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

stop() { # stop <pid file> <word its command line contains>
  local file="$1" pid
  pid="$(cat "$file")"
  if ours "$pid" "$2"; then
    kill -TERM "$pid"
    # tocsin's graceful timeout is 10 s; give both kinds of process a little more.
    for _ in $(seq 150); do
      ours "$pid" "$2" || break
      sleep 0.1
    done
    if ours "$pid" "$2"; then
      echo "down.sh: $pid ($(basename "$file" .pid)) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid"
    fi
  fi
  rm -f "$file"
}

if [[ -d "$STATE/pids" ]]; then
  for file in "$STATE"/pids/tocsin-*.pid; do
    if [[ -e "$file" ]]; then stop "$file" "tocsin serve"; fi
  done
  for file in "$STATE"/pids/nats-*.pid; do
    if [[ -e "$file" ]]; then stop "$file" "nats-server"; fi
  done
fi
if ((PURGE)); then
  rm -rf "$STATE"
fi
echo "tocsin cluster down"
