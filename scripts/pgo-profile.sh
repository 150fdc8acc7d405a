#!/usr/bin/env bash
# pgo-profile.sh: rewrite cmd/multiraft/default.pgo, the CPU profile the Go
# toolchain uses to optimize the multiraft binary (profile-guided
# optimization: `go build` and `go run` of ./cmd/multiraft pick it up by
# itself). The profile comes from simulation runs of the scenarios a sweep
# spends its time in; refresh it after the simulator's hot paths change.
# Builds with and without it make the same runs (same trace hashes): PGO
# changes inlining and code layout, not behaviour.
#
# usage: scripts/pgo-profile.sh
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -pgo=off -o "$work/multiraft" ./cmd/multiraft
profiles=()
run() { # NAME SEEDS
	"$work/multiraft" sim --scenario "$1" --seeds "$2" --workers 1 --cpuprofile "$work/$1.prof" >/dev/null
	profiles+=("$work/$1.prof")
}
run static 1-10
run swarm 1-30
run split 1-5
run move 1-5
run move-partition 1-5
go tool pprof -proto "${profiles[@]}" >"$work/merged.pgo" 2>/dev/null
mv "$work/merged.pgo" cmd/multiraft/default.pgo
echo "wrote cmd/multiraft/default.pgo ($(wc -c <cmd/multiraft/default.pgo) bytes)"
