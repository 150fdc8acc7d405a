#!/bin/bash
# Measures multiraft (1 region, 8 regions) and a 3-member etcd side by side on
# this machine with the same load generator (multiraft bench): 1 and 1000
# clients, 8-byte keys, 256-byte values, puts and linearizable gets.
#   scripts/bench.sh [DURATION]      (default 10s per run)
# Needs ../shared/peers/etcd-cluster.sh (or ETCD_SCRIPT) for the etcd runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
ETCD_SCRIPT=${ETCD_SCRIPT:-../shared/peers/etcd-cluster.sh}
work=$(mktemp -d /tmp/multiraft-bench.XXXXXX)
bin=$work/multiraft
go build -o "$bin" ./cmd/multiraft
load="--keys 100000 --key-size 8 --value-size 256 --duration $DUR"
pd=127.0.0.1:4379

run_set() { # target label extra-args...   (the put runs fill the keys the get runs read)
  local target=$1 label=$2; shift 2
  for mix in 0 100; do
    for clients in 1 1000; do
      echo "### $label clients=$clients read-percent=$mix"
      "$bin" bench --target "$target" "$@" --clients "$clients" --read-percent "$mix" $load
    done
  done
}

mr_cluster() { # label split-keys
  local dir=$work/$1
  "$bin" cluster --data "$dir" --pd-port 4379 --store-port 24160 --split-threshold 0 \
    --split-keys "$2" --no-balance --log-level warn >"$dir.out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do grep -q "try:" "$dir.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "try:" "$dir.out" || { cat "$dir.out"; exit 1; }
  run_set multiraft "multiraft $1" --pd "$pd"
  kill -TERM "$pid"; wait "$pid" || true
}

if [ -x "$ETCD_SCRIPT" ] || [ -f "$ETCD_SCRIPT" ]; then
  bash "$ETCD_SCRIPT" start >/dev/null
  run_set etcd "etcd 3-member" || true
  bash "$ETCD_SCRIPT" stop >/dev/null
fi
mr_cluster "1-region" ""
# 8 regions cut evenly over the 100000 keys 00000000..00099999
mr_cluster "8-regions" "00012500,00025000,00037500,00050000,00062500,00075000,00087500"
rm -rf "$work"
