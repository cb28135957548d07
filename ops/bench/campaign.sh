#!/usr/bin/env bash
# Runs every `tocsin bench` command that docs/benchmarks.md quotes, one after the other
# (three times where the doc gives a median of 3), saving each output with the load
# average at its start. Usage: ops/bench/campaign.sh OUTPUT_DIR   (about 40 minutes)
# With PEER_URL set to a running server of the seed's design (docs/benchmarks.md,
# "Comparing with the seed's design"), `compare` runs three times first (a few minutes
# more): PEER_URL=http://127.0.0.1:3000 ops/bench/campaign.sh OUTPUT_DIR
# With FIREHOSE_PYTHON set to the python of a venv with the firehose design's tocsin
# (docs/benchmarks.md, "A fleet: what each process pays"), `fleet` runs three times
# against it too (about 4 minutes more).
set -u
out=${1:?usage: $0 OUTPUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/../.." || exit 1

run() {
  local name=$1
  shift
  {
    echo "# load: $(cat /proc/loadavg)"
    echo "# started: $(date -u +%H:%M:%S)"
    uv run tocsin bench "$@"
    echo "# exit: $?"
  } >"$out/$name.txt" 2>&1
  echo "$name: $(tail -n 1 "$out/$name.txt")"
}

if [ -n "${PEER_URL:-}" ]; then
  # tocsin with its defaults: no traces exported, nats-server fsyncing every write.
  for i in 1 2 3; do
    run "compare-$i" compare --against "$PEER_URL" --no-tracing
  done
  run compare-sync-default compare --against "$PEER_URL" --no-tracing --nats-sync default
else
  echo "compare: skipped (PEER_URL is not set)"
fi
for i in 1 2 3; do
  run "native-sampled-$i" native --nats-sync default --trace-ratio 0.01
  run "fanout-batch-$i" fanout --batch 10 --nats-sync default --trace-ratio 0.01
  run "storm-sampled-$i" storm --trace-ratio 0.01
  run "storm-full-$i" storm
  run "publish-sampled-$i" publish --nats-sync default --trace-ratio 0.01
  run "fanout-strict-$i" fanout
done
for i in 1 2 3; do
  run "fleet-$i" fleet --nats-sync default --trace-ratio 0.01
done
if [ -n "${FIREHOSE_PYTHON:-}" ]; then
  for i in 1 2 3; do
    run "fleet-firehose-$i" fleet --nats-sync default --trace-ratio 0.01 \
      --tocsin-python "$FIREHOSE_PYTHON"
  done
else
  echo "fleet against the firehose design: skipped (FIREHOSE_PYTHON is not set)"
fi
run native-untraced native --nats-sync default --no-tracing
run native-strict native
run storm-cold storm --replay-cache 0 --trace-ratio 0.01
for i in 1 2 3; do
  run "storm-restart-$i" storm --restart --trace-ratio 0.01
done
run storm-untraced storm --no-tracing
run publish-strict publish
run feed feed
run feed-untraced feed --no-tracing
for i in 1 2; do
  run "capacity-$i" capacity
done
run growth-c500 native --nats-sync default --trace-ratio 0.01 --connections 500 --users 250
run growth-c8000 native --nats-sync default --trace-ratio 0.01 --connections 8000 --users 4000
run growth-r500 native --nats-sync default --trace-ratio 0.01 --rate 500
run growth-r1000 native --nats-sync default --trace-ratio 0.01 --rate 1000
run growth-r4000 native --nats-sync default --trace-ratio 0.01 --rate 4000
