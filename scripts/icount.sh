#!/bin/bash
# icount.sh: instructions one simulation run executes, counted by callgrind:
# a measure of the simulator's speed that does not vary with the machine's
# load, unlike CPU seconds on a shared VM (docs/benchmarks.md, "Third round").
#
# usage: scripts/icount.sh SCENARIO SEED BINARY...
#   e.g. go build -o /tmp/mr ./cmd/multiraft && scripts/icount.sh static 2 /tmp/mr
#
# Needs valgrind (Debian: apt-get install valgrind). GODEBUG: callgrind
# aborts on Go's preemption signals (asyncpreemptoff), and a stop-the-world
# collector makes the count repeatable (a concurrent mark phase, and so its
# write barriers, lasts as long as the machine is slow). One run of static
# takes about 30 s under callgrind.
set -euo pipefail
if [ $# -lt 3 ]; then
	echo "usage: $0 SCENARIO SEED BINARY..." >&2
	exit 2
fi
command -v valgrind >/dev/null || { echo "icount: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
sc=$1 seed=$2
shift 2
for b in "$@"; do
	out=$(GODEBUG=asyncpreemptoff=1,gcstoptheworld=1 GOMAXPROCS=1 valgrind --tool=callgrind \
		--callgrind-out-file=/dev/null "$b" sim --scenario "$sc" --seed "$seed" --workers 1 2>&1) || true
	n=$(echo "$out" | awk '/Collected/{print $4}')
	if [ -z "$n" ]; then
		echo "icount: callgrind failed for $b:" >&2
		echo "$out" | grep -v '^==' | tail -5 >&2
		exit 1
	fi
	echo "$sc seed $seed $b instructions=$n"
done
