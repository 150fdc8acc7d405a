#!/bin/bash
# Single-client puts, side by side: the 3-member etcd peer and one or more
# multiraft binaries (1 region, 3 stores), interleaved for ROUNDS rounds so
# that the load of a shared machine falls on all of them alike.
#   scripts/bench-put1.sh ROUNDS BINARY...     e.g. scripts/bench-put1.sh 2 /tmp/mr-old /tmp/mr-new
# Needs ../shared/peers/etcd-cluster.sh (or ETCD_SCRIPT).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?rounds}; shift
ETCD_SCRIPT=${ETCD_SCRIPT:-../shared/peers/etcd-cluster.sh}
load="--keys 100000 --key-size 8 --value-size 256 --duration 8s --clients 1 --read-percent 0"
mr() { # binary
  local dir
  dir=$(mktemp -d /tmp/multiraft-put1.XXXXXX)
  "$1" cluster --data "$dir/d" --pd-port 4379 --store-port 24160 --split-threshold 0 --no-balance \
    --log-level warn >"$dir/out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do grep -q "try:" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  grep -q "try:" "$dir/out" || { cat "$dir/out"; exit 1; }
  echo "### multiraft $1"
  "$1" bench --target multiraft --pd 127.0.0.1:4379 $load
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
}
for _ in $(seq 1 "$rounds"); do
  bash "$ETCD_SCRIPT" start >/dev/null
  echo "### etcd 3-member"
  "$1" bench --target etcd $load || true
  bash "$ETCD_SCRIPT" stop >/dev/null
  for bin in "$@"; do mr "$bin"; done
done
