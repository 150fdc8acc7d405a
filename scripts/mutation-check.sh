#!/usr/bin/env bash
# mutation-check.sh: plant each deliberate bug of testdata/mutations/ in a
# copy of the repository and see what catches it.
#
# Each patch is a git diff that removes or weakens one safety check of the
# product code; the text above its first "diff --git" line says what it
# does. For each patch the script:
#   1. copies the working tree (tracked and untracked, not ignored files;
#      no .git) into a temporary directory and applies the patch there;
#   2. builds cmd/multiraft in the copy;
#   3. runs `go test` of every package the patch touches, in the copy, and
#      notes the first failing test;
#   4. runs `multiraft sim` seed by seed, each seed over the scenarios in
#      order (--workers of them at a time), and stops at the first failed
#      run: its scenario and seed catch the mutation. A run that crashes,
#      prints no report or outlives --timeout counts as failed. A failed
#      run is run again without the mutation: if it fails there too, it
#      catches nothing; it is noted (at the end) and the search goes on.
# It prints a table (mutation, what catches it, seeds needed, time) and
# exits 1 if some mutation was caught by nothing: by no scenario, or, with
# --unit-enough, by neither a scenario nor a unit test; 2 on a usage error,
# or a patch that no longer applies or builds.
#
# usage: scripts/mutation-check.sh [--seeds A-B] [--scenarios "s1 s2 ..."]
#          [--workers N] [--timeout SECONDS] [--no-unit] [--no-sim]
#          [--unit-enough] [--all-at-seed] [--markdown] [patch ...]
#        scripts/mutation-check.sh --check [patch ...]
#        scripts/mutation-check.sh --refresh [patch ...]
#
#   --seeds A-B       seed range (default 1-20)
#   --scenarios LIST  scenario names, space separated (default: all of
#                     `multiraft sim --list`, in its order)
#   --workers N       simulations at once (default 1)
#   --timeout S       wall-clock limit of one simulation (default 900)
#   --no-unit         skip the unit tests
#   --no-sim          skip the scenarios
#   --unit-enough     a unit test catching the mutation is enough for exit 0
#   --all-at-seed     at the catching seed, run the remaining scenarios too
#                     and count how many fail
#   --markdown        print the table as Markdown
#   --check           only check that every patch applies to the working
#                     tree (git apply --check; cheap, for CI)
#   --refresh         rewrite every patch against the working tree (after
#                     the code moved: line numbers, context, index lines),
#                     keeping its description; a patch that does not apply
#                     even with a 3-way merge is reported and left alone
#   patch ...         only these patches (default testdata/mutations/*.patch)
#
# A patch whose description has a line "Scenarios: none (why)" is a bug no
# scenario can reach by design (say, in a disk the simulator never
# crashes): its scenario search is skipped, and the table says why.
#
# The script is not part of CI (a run takes tens of minutes); CI runs
# --check. On a shared machine run it under nice with --workers 1.
set -euo pipefail

seeds="1-20"
scenarios=""
workers=1
timeout_s=900
unit=1
sim=1
unit_enough=0
all_at_seed=0
markdown=0
mode=run
patches=()

die() {
	echo "mutation-check: $*" >&2
	exit 2
}

while (($#)); do
	case "$1" in
	--seeds) seeds="${2:?}"; shift 2 ;;
	--scenarios) scenarios="${2:?}"; shift 2 ;;
	--workers) workers="${2:?}"; shift 2 ;;
	--timeout) timeout_s="${2:?}"; shift 2 ;;
	--no-unit) unit=0; shift ;;
	--no-sim) sim=0; shift ;;
	--unit-enough) unit_enough=1; shift ;;
	--all-at-seed) all_at_seed=1; shift ;;
	--markdown) markdown=1; shift ;;
	--check) mode=check; shift ;;
	--refresh) mode=refresh; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) patches+=("$1"); shift ;;
	esac
done

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel) || die "not in a git repository"
cd "$root"
if ((${#patches[@]} == 0)); then
	patches=(testdata/mutations/*.patch)
fi
for p in "${patches[@]}"; do
	[[ -f "$p" ]] || die "no patch $p"
done

# describe prints the first sentence of a patch's description.
describe() {
	sed -n '/^diff --git/q; p' "$1" | tr '\n' ' ' | sed -E 's/^Mutation: //; s/\. .*/./; s/ +$//'
	echo
}

# header prints a patch's description: everything above its first diff.
header() { sed -n '/^diff --git/q; p' "$1"; }

# unreachable prints why no scenario can catch a patch's bug, from a
# "Scenarios: none (why)" line of its description, or nothing.
unreachable() { header "$1" | sed -n 's/^Scenarios: none *//p' | head -n1; }

# files prints the paths a patch changes.
files() { grep -E '^\+\+\+ b/' "$1" | sed -E 's#^\+\+\+ b/##' | sort -u; }

# packages prints the Go packages a patch touches, as ./dir.
packages() { files "$1" | sed -E 's#/[^/]*$##; s#^#./#' | sort -u; }

if [[ "$mode" == check ]]; then
	bad=0
	for p in "${patches[@]}"; do
		if ! git apply --check "$p" 2>/dev/null; then
			echo "mutation-check: $p does not apply to the working tree (scripts/mutation-check.sh --refresh)" >&2
			git apply --check "$p" 2>&1 | sed 's/^/    /' >&2 || true
			bad=1
		fi
		if ! grep -q '^Mutation: ' "$p"; then
			echo "mutation-check: $p has no 'Mutation: ' description" >&2
			bad=1
		fi
	done
	((bad == 0)) && echo "mutation-check: ${#patches[@]} patches apply"
	exit "$bad"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mutation-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# copy_tree copies the working tree (tracked and untracked, not ignored
# files) into $1.
copy_tree() {
	mkdir -p "$1"
	git ls-files -z --cached --others --exclude-standard |
		tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$1"
}

if [[ "$mode" == refresh ]]; then
	# A worktree of HEAD shares the repository's objects, so that a 3-way
	# merge finds the blobs a patch was made from; the working tree's own
	# changes are committed there first, so each new diff is the patch's.
	copy="$work/refresh"
	git worktree add -q --detach "$copy" HEAD
	trap 'git worktree remove --force "$copy" 2>/dev/null; rm -rf "$work"' EXIT
	copy_tree "$copy"
	(cd "$copy" && git add -A && git -c user.name=mutation-check -c user.email=mutation-check@localhost \
		commit -q --allow-empty --no-verify -m "working tree")
	bad=0
	for p in "${patches[@]}"; do
		(cd "$copy" && git reset -q --hard && git clean -qfd)
		if ! (cd "$copy" && git apply "$root/$p") 2>/dev/null &&
			! (cd "$copy" && git apply -3 "$root/$p") >/dev/null 2>&1; then
			echo "mutation-check: $p does not apply, even with a 3-way merge: redo it by hand" >&2
			bad=1
			continue
		fi
		if (cd "$copy" && git diff --quiet HEAD); then
			echo "mutation-check: $p changes nothing" >&2
			bad=1
			continue
		fi
		{
			header "$p"
			(cd "$copy" && git diff HEAD)
		} >"$work/new.patch"
		if cmp -s "$work/new.patch" "$p"; then
			echo "$p: unchanged"
		else
			cp "$work/new.patch" "$p"
			echo "$p: refreshed"
		fi
	done
	exit "$bad"
fi

[[ "$seeds" =~ ^([0-9]+)-([0-9]+)$ ]] || die "--seeds wants A-B"
from=${BASH_REMATCH[1]} to=${BASH_REMATCH[2]}
((from <= to)) || die "--seeds wants A <= B"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers wants a positive number"

# The scenario list, from the unpatched build unless given.
go build -o "$work/multiraft" ./cmd/multiraft || die "the unpatched tree does not build"
if [[ -z "$scenarios" ]]; then
	scenarios=$("$work/multiraft" sim --list | awk '{print $1}' | tr '\n' ' ')
fi
read -r -a scenario_list <<<"$scenarios"
((${#scenario_list[@]} > 0)) || die "no scenarios"

# run_failed says whether the run of scenario $2 in directory $1 has ended
# and failed (0) or not (1); why_failed prints why it failed.
run_failed() {
	local rc
	[[ -f "$1/$2.rc" ]] || return 1
	rc=$(<"$1/$2.rc")
	[[ "$rc" != 0 ]] || ! grep -q '"ok":true' "$1/$2.json" 2>/dev/null
}
why_failed() {
	local rc why
	rc=$(<"$1/$2.rc")
	case "$rc" in
	0 | 1) why=$(jq -r '.violation // empty' "$1/$2.json" 2>/dev/null | head -n1 | head -c 200) ;;
	124) why="timed out after ${timeout_s}s" ;;
	*) why="exit $rc: $(grep -m1 -E 'panic|fatal|error' "$1/$2.err" | head -c 160)" ;;
	esac
	why=$(tr '\n\t|' '   ' <<<"$why" | sed -E 's/ +/ /g; s/ $//')
	echo "${why:-failed}"
}

# sim_run runs scenario $2 at seed $3 with the binary $1 into directory $4.
sim_run() {
	local rc=0
	timeout "$timeout_s" "$1" sim --scenario "$2" --seed "$3" --workers 1 --json \
		>"$4/$2.json" 2>"$4/$2.err" || rc=$?
	echo "$rc" >"$4/$2.rc"
}

# baseline_fails says whether scenario $1 fails at seed $2 without any
# mutation too (run once, when a mutated run of it failed). Such a failure
# catches nothing: it is noted in $work/baseline-failures and ignored.
baseline_fails() {
	local d="$work/baseline/$2"
	if [[ ! -f "$d/$1.rc" ]]; then
		mkdir -p "$d"
		sim_run "$work/multiraft" "$1" "$2" "$d"
		if run_failed "$d" "$1"; then
			printf '%s seed %s: %s\n' "$1" "$2" "$(why_failed "$d" "$1")" >>"$work/baseline-failures"
			echo "   note: $1 seed $2 fails without the mutation too; ignored: $(why_failed "$d" "$1")" >&2
		fi
	fi
	run_failed "$d" "$1"
}

# caught says whether the run of scenario $2 in directory $1 at seed $3
# failed and the unmutated build passes it.
caught() { run_failed "$1" "$2" && ! baseline_fails "$2" "$3"; }

# run_seed runs the scenarios at one seed with the binary $1, in order,
# --workers at a time, and stops launching after a run that catches the
# mutation (unless --all-at-seed). It prints "scenario<TAB>reason" for each
# run that caught it, in scenario order.
run_seed() {
	local bin=$1 seed=$2 out=$3 s t running=0 stop=0
	local launched=()
	rm -rf "$out" && mkdir -p "$out"
	for s in "${scenario_list[@]}"; do
		while ((running >= workers)); do
			wait -n || true
			running=$((running - 1))
		done
		if ((!all_at_seed)); then
			for t in "${launched[@]}"; do
				if caught "$out" "$t" "$seed"; then
					stop=1
					break
				fi
			done
			((stop)) && break
		fi
		sim_run "$bin" "$s" "$seed" "$out" &
		launched+=("$s")
		running=$((running + 1))
	done
	wait
	for s in "${launched[@]}"; do
		if caught "$out" "$s" "$seed"; then
			printf '%s\t%s\n' "$s" "$(why_failed "$out" "$s")"
		fi
	done
}

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

rows=()
escaped=0
broken=0
start_all=$SECONDS
for patch in "${patches[@]}"; do
	name=$(basename "$patch" .patch)
	desc=$(describe "$patch")
	start=$SECONDS
	echo "== $name: $desc" >&2
	copy="$work/$name"
	copy_tree "$copy"
	if ! (cd "$copy" && git apply "$root/$patch"); then
		rows+=("$name|$desc|PATCH DOES NOT APPLY|-|-|-|-")
		broken=1
		continue
	fi
	if ! (cd "$copy" && go build -o "$copy/multiraft.bin" ./cmd/multiraft) >"$copy/build.log" 2>&1; then
		rows+=("$name|$desc|DOES NOT BUILD|-|-|-|-")
		broken=1
		cat "$copy/build.log" >&2
		continue
	fi

	unit_result="not run"
	if ((unit)); then
		mapfile -t pkgs < <(packages "$patch")
		if (cd "$copy" && go test -count=1 -timeout 15m "${pkgs[@]}") >"$copy/unit.log" 2>&1; then
			unit_result="not caught (${pkgs[*]})"
		else
			first=$(grep -m1 -oE -- '--- FAIL: [^ ]+' "$copy/unit.log" | sed 's/--- FAIL: //')
			if [[ -z "$first" ]]; then
				first=$(grep -m1 -E 'panic:|FAIL' "$copy/unit.log" | head -c 80)
			fi
			unit_result="${first:-failed} (${pkgs[*]})"
		fi
		echo "   unit tests: $unit_result" >&2
	fi

	sim_result="not run"
	seeds_run="-"
	why=""
	if [[ -n "$(unreachable "$patch")" ]]; then
		sim_result="not searched"
		why="no scenario can: $(unreachable "$patch" | sed 's/^(//; s/)$//')"
		echo "   scenarios: $sim_result: $why" >&2
	elif ((sim)); then
		sim_result="NOT CAUGHT"
		seeds_run=0
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
			echo "   seed $seed: all ${#scenario_list[@]} scenarios pass ($(fmt_secs $((SECONDS - start))))" >&2
		done
		echo "   scenarios: $sim_result${why:+: $why}" >&2
	fi
	if [[ "$sim_result" != *" seed "* ]]; then
		if ((!unit_enough)) || [[ "$unit_result" == "not "* ]]; then
			escaped=1
		fi
	fi
	took=$(fmt_secs $((SECONDS - start)))
	echo "   took $took" >&2
	rows+=("$name|$desc|$sim_result|$seeds_run|$unit_result|$took|$why")
	rm -rf "$copy"
done

if ((markdown)); then
	echo "| mutation | planted bug | caught by scenario | seeds | unit test that fails | time | scenario's violation |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for r in "${rows[@]}"; do
		IFS='|' read -r n d s k u w v <<<"$r"
		printf '| `%s` | %s | %s | %s | %s | %s | %s |\n' "$n" "$d" "$s" "$k" "$u" "$w" "$v"
	done
else
	printf '%-30s %-44s %-6s %-8s %s\n' "mutation" "caught by scenario" "seeds" "time" "unit test"
	for r in "${rows[@]}"; do
		IFS='|' read -r n d s k u w v <<<"$r"
		printf '%-30s %-44s %-6s %-8s %s\n' "$n" "$s" "$k" "$w" "$u"
	done
fi
echo "mutation-check: ${#patches[@]} mutations in $(fmt_secs $((SECONDS - start_all)))" >&2
if [[ -s "$work/baseline-failures" ]]; then
	echo "mutation-check: runs that fail without any mutation (ignored above):" >&2
	sed 's/^/    /' "$work/baseline-failures" >&2
fi

if ((broken)); then
	exit 2
fi
exit "$escaped"
