#!/usr/bin/env bash
# mutation-check.sh: plant each deliberate bug of testdata/mutations/ in a
# copy of the repository and see what catches it.
#
# For each patch (a git diff of one safety check, described by the text
# above its first "diff --git" line) the script:
#   1. copies the working tree (tracked and untracked, not ignored files;
#      no .git) into a temporary directory and applies the patch there;
#   2. builds cmd/multiraft in the copy;
#   3. runs `go test` of every package the patch touches, in the copy, and
#      notes the first failing test;
#   4. runs `multiraft sim` over the scenarios, seed by seed (every scenario
#      of a seed, --workers of them at a time), and stops at the first seed
#      where a run fails: the first failing scenario of that seed, in the
#      order given, catches the mutation. A run that crashes, prints no
#      report or outlives --timeout counts as failed.
# It prints a table and exits 1 if a mutation was caught by no scenario
# (with --unit-enough: by neither a scenario nor a unit test), 2 on a
# usage error or a patch that no longer applies or builds.
#
# usage: scripts/mutation-check.sh [--seeds A-B] [--scenarios "s1 s2 ..."]
#          [--workers N] [--timeout SECONDS] [--no-unit] [--unit-enough]
#          [--markdown] [patch ...]
#
#   --seeds A-B       seed range (default 1-20)
#   --scenarios LIST  scenario names, space separated (default: all of
#                     `multiraft sim --list`, in its order)
#   --workers N       simulations at once (default 2)
#   --timeout S       wall-clock limit of one simulation (default 600)
#   --no-unit         skip the unit tests
#   --unit-enough     a unit test catching the mutation is enough for exit 0
#   --markdown        print the table as Markdown
#   patch ...         only these patches (default testdata/mutations/*.patch)
set -euo pipefail

seeds="1-20"
scenarios=""
workers=2
timeout_s=600
unit=1
unit_enough=0
markdown=0
patches=()

die() { echo "mutation-check: $*" >&2; exit 2; }

while (($#)); do
	case "$1" in
	--seeds) seeds="${2:?}"; shift 2 ;;
	--scenarios) scenarios="${2:?}"; shift 2 ;;
	--workers) workers="${2:?}"; shift 2 ;;
	--timeout) timeout_s="${2:?}"; shift 2 ;;
	--no-unit) unit=0; shift ;;
	--unit-enough) unit_enough=1; shift ;;
	--markdown) markdown=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) patches+=("$1"); shift ;;
	esac
done

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel) || die "not in a git repository"
cd "$root"
[[ "$seeds" =~ ^([0-9]+)-([0-9]+)$ ]] || die "--seeds wants A-B"
from=${BASH_REMATCH[1]} to=${BASH_REMATCH[2]}
((from <= to)) || die "--seeds wants A <= B"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers wants a positive number"
if ((${#patches[@]} == 0)); then
	patches=(testdata/mutations/*.patch)
fi
for p in "${patches[@]}"; do
	[[ -f "$p" ]] || die "no patch $p"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mutation-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The scenario list, from the unpatched build unless given.
go build -o "$work/multiraft" ./cmd/multiraft || die "the unpatched tree does not build"
if [[ -z "$scenarios" ]]; then
	scenarios=$("$work/multiraft" sim --list | awk '{print $1}' | tr '\n' ' ')
fi
read -r -a scenario_list <<<"$scenarios"
((${#scenario_list[@]} > 0)) || die "no scenarios"

# describe prints the first sentence of a patch's description.
describe() {
	sed -n '/^diff --git/q; p' "$1" | tr '\n' ' ' | sed -E 's/^Mutation: //; s/\. .*/./; s/ +$//'; echo
}

# packages prints the Go packages a patch touches, as ./dir.
packages() { grep -E '^\+\+\+ b/' "$1" | sed -E 's#^\+\+\+ b/##; s#/[^/]*$##; s#^#./#' | sort -u; }

# run_seed runs every scenario at one seed with the binary $1 and prints
# "scenario<TAB>reason" for each failed run, in scenario order.
run_seed() {
	local bin=$1 seed=$2 out=$3
	rm -rf "$out" && mkdir -p "$out"
	printf '%s\n' "${scenario_list[@]}" | xargs -P "$workers" -I{} \
		sh -c 'timeout "$1" "$2" sim --scenario "$3" --seed "$4" --workers 1 --json >"$5/$3.json" 2>"$5/$3.err"; echo $? >"$5/$3.rc"' \
		sh "$timeout_s" "$bin" {} "$seed" "$out"
	local s rc
	for s in "${scenario_list[@]}"; do
		rc=$(cat "$out/$s.rc" 2>/dev/null || echo 99)
		if grep -q '"ok":true' "$out/$s.json" 2>/dev/null && [[ "$rc" == 0 ]]; then
			continue
		fi
		local why
		case "$rc" in
		124) why="timed out after ${timeout_s}s" ;;
		1) why=$(jq -r '.violation // empty' "$out/$s.json" 2>/dev/null | head -c 160) ;;
		*) why="exit $rc: $(grep -m1 -E 'panic|fatal|error' "$out/$s.err" | head -c 160)" ;;
		esac
		printf '%s\t%s\n' "$s" "${why:-failed}"
	done
}

rows=()
escaped=0
broken=0
for patch in "${patches[@]}"; do
	name=$(basename "$patch" .patch)
	desc=$(describe "$patch")
	echo "== $name: $desc" >&2
	copy="$work/$name"
	mkdir -p "$copy"
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$copy"
	if ! (cd "$copy" && git apply "$root/$patch"); then
		rows+=("$name|$desc|PATCH DOES NOT APPLY|-|-")
		broken=1
		continue
	fi
	if ! (cd "$copy" && go build -o "$copy/multiraft.bin" ./cmd/multiraft) >"$copy/build.log" 2>&1; then
		rows+=("$name|$desc|DOES NOT BUILD|-|-")
		broken=1
		cat "$copy/build.log" >&2
		continue
	fi

	unit_result="not run"
	if ((unit)); then
		mapfile -t pkgs < <(packages "$patch")
		if (cd "$copy" && go test -count=1 -timeout 15m "${pkgs[@]}") >"$copy/unit.log" 2>&1; then
			unit_result="NOT CAUGHT (${pkgs[*]})"
		else
			first=$(grep -m1 -oE -- '--- FAIL: [^ ]+' "$copy/unit.log" | sed 's/--- FAIL: //')
			if [[ -z "$first" ]]; then
				first=$(grep -m1 -E 'panic:|FAIL' "$copy/unit.log" | head -c 80)
			fi
			unit_result="${first:-failed} (${pkgs[*]})"
		fi
		echo "   unit tests: $unit_result" >&2
	fi

	sim_result="NOT CAUGHT"
	seeds_run=0
	why=""
	for ((seed = from; seed <= to; seed++)); do
		seeds_run=$((seeds_run + 1))
		failed=$(run_seed "$copy/multiraft.bin" "$seed" "$copy/runs")
		if [[ -n "$failed" ]]; then
			first=$(head -n1 <<<"$failed")
			scen=${first%%$'\t'*}
			why=${first#*$'\t'}
			n=$(wc -l <<<"$failed")
			sim_result="$scen seed $seed"
			((n > 1)) && sim_result+=" (+$((n - 1)) more at that seed)"
			break
		fi
		echo "   seed $seed: all ${#scenario_list[@]} scenarios pass" >&2
	done
	echo "   scenarios: $sim_result${why:+: $why}" >&2
	if [[ "$sim_result" == "NOT CAUGHT" ]]; then
		if ((!unit_enough)) || [[ "$unit_result" == NOT* || "$unit_result" == "not run" ]]; then
			escaped=1
		fi
	fi
	rows+=("$name|$desc|$sim_result|$seeds_run|$unit_result|$why")
	rm -rf "$copy"
done

if ((markdown)); then
	echo "| mutation | planted bug | caught by scenario | seeds run | unit test that fails | scenario's violation |"
	echo "| --- | --- | --- | --- | --- | --- |"
	for r in "${rows[@]}"; do
		IFS='|' read -r n d s k u w <<<"$r"
		printf '| `%s` | %s | %s | %s | %s | %s |\n' "$n" "$d" "$s" "$k" "$u" "${w//|/\\|}"
	done
else
	printf '%-28s %-40s %-6s %s\n' "mutation" "caught by scenario" "seeds" "unit test"
	for r in "${rows[@]}"; do
		IFS='|' read -r n d s k u w <<<"$r"
		printf '%-28s %-40s %-6s %s\n' "$n" "$s" "$k" "$u"
	done
fi

if ((broken)); then
	exit 2
fi
exit "$escaped"
