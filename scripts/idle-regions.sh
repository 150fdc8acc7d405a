#!/bin/bash
# Measures what idle regions cost a real store: PD and 3 stores (separate
# processes on 127.0.0.1, real disks under a temp dir) with N regions of 3
# replicas and no clients. It waits until every store holds N regions and
# reports them all quiet (multiraft_store_quiet_regions), then samples each
# process's CPU time (/proc/PID/stat) over WINDOW seconds.
#   scripts/idle-regions.sh [N] [WINDOW]     (defaults: 10000 regions, 60 s)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
WINDOW=${2:-60}
work=$(mktemp -d /tmp/multiraft-idle.XXXXXX)
bin=$work/multiraft
go build -o "$bin" ./cmd/multiraft
keys=$(awk -v n="$N" 'BEGIN { for (i = 1; i < n; i++) printf "%sk%06d", (i > 1 ? "," : ""), i }')
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" pd --addr 127.0.0.1:4479 --http 127.0.0.1:4480 --data "$work/pd" --stores 1,2,3 --replicas 3 \
  --no-balance --split-keys "$keys" --log-level warn 2>"$work/pd.log" &
pids+=($!)
for i in 1 2 3; do
  "$bin" store --id "$i" --addr "127.0.0.1:2456$i" --http "127.0.0.1:2466$i" --pd 127.0.0.1:4479 \
    --data "$work/store$i" --split-threshold 0 --log-level warn 2>"$work/store$i.log" &
  pids+=($!)
done

metric() { # port name
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print int($2) }'
}
start=$(date +%s)
while :; do
  quiet=0
  for i in 1 2 3; do quiet=$((quiet + $(metric "2466$i" multiraft_store_quiet_regions || echo 0))); done
  regions=0
  for i in 1 2 3; do regions=$((regions + $(metric "2466$i" multiraft_store_regions || echo 0))); done
  echo "$(($(date +%s) - start))s: $regions of $((3 * N)) replicas up, $quiet quiet" >&2
  [ "$quiet" -ge $((3 * N)) ] && break
  if [ $(($(date +%s) - start)) -gt 1800 ]; then echo "not all quiet after 30 minutes" >&2; exit 1; fi
  sleep 10
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
declare -A before
for p in "${pids[@]}"; do before[$p]=$(cpu "$p"); done
sleep "$WINDOW"
echo "CPU over ${WINDOW}s with $N idle regions (3 replicas each), % of one core:"
names=(pd store1 store2 store3)
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  echo "  ${names[$i]}: $(awk -v a="${before[$p]}" -v b="$(cpu "$p")" -v t="$ticks" -v w="$WINDOW" \
    'BEGIN { printf "%.2f%%", (b - a) / t / w * 100 }')"
done
