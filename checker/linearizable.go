package checker

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/multiraft/multiraft/core/pb"
)

// Verdicts of CheckLinearizable.
const (
	// VerdictOK: the history is linearizable.
	VerdictOK = "ok"
	// VerdictIllegal: the history is not linearizable, or a scan result
	// is malformed (unsorted, duplicate keys, keys out of range, over the
	// limit).
	VerdictIllegal = "illegal"
	// VerdictUnknown: porcupine ran out of its time budget. Not a pass.
	VerdictUnknown = "unknown"
	// VerdictMalformed: the history itself is unusable (an unknown kind or
	// outcome, a negative client id or scan limit, an acknowledged
	// operation that returned before it was called). This is a bug in the
	// recorder, not in the system under test.
	VerdictMalformed = "malformed"
)

// DefaultTimeout is porcupine's wall-clock budget when CheckLinearizable is
// given a timeout <= 0.
const DefaultTimeout = 60 * time.Second

// maxListed caps how many operations or problems a Violation lists.
const maxListed = 12

// Annotation is an event (typically a fault) to mark on the visualization.
type Annotation struct {
	At   int64  // virtual nanoseconds, same clock as Op.Call
	Node string // the lane it is drawn in, e.g. "store 2" or "network"
	Text string // e.g. "partition", "crash store 2"
}

// Result is the verdict of CheckLinearizable.
type Result struct {
	// OK is true only when Verdict is VerdictOK.
	OK bool
	// Verdict is one of VerdictOK, VerdictIllegal, VerdictUnknown,
	// VerdictMalformed.
	Verdict string
	// Violation describes the first problem found; empty when OK.
	Violation string
	// Ops is the number of porcupine operations checked, after failed
	// operations and ambiguous reads were dropped and scans expanded.
	Ops int
	// FailedKeys lists, sorted, the keys whose partition porcupine found
	// not linearizable.
	FailedKeys []string

	// What WriteVisualization needs: porcupine's operations and, once
	// computed, its linearization info. The info costs a verbose check,
	// which is many times slower than the plain one on a hot key, so only
	// a failing check and a visualization ask for it.
	ops     []porcupine.Operation
	timeout time.Duration
	info    porcupine.LinearizationInfo
	hasInfo bool
	// infoPartial: the verbose check ran out of time before it found a
	// failing partition; its partial linearizations may stop short.
	infoPartial bool
	checked     bool // ops were checked: a visualization can be drawn
}

// CheckLinearizable checks that h is linearizable with respect to a per-key
// KV model. timeout is porcupine's wall-clock budget (DefaultTimeout if <= 0);
// running out of it gives VerdictUnknown, which is not OK.
//
// Failed operations are dropped; ambiguous reads are dropped; ambiguous
// writes may take effect at any point after their call, or never (by
// Op.EffectBy at the latest, when it is set). A scan is
// checked as a get, over the scan's interval, of every key of the history
// (History.Keys, the keys of all operations and all scan results) in its
// range — up to its last returned key when it returned exactly ScanLimit
// pairs.
func CheckLinearizable(h History, timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ops, problems, err := convertHistory(h)
	if err != nil {
		return Result{Verdict: VerdictMalformed, Violation: err.Error()}
	}
	model := newModel()
	// Keys a witness proves linearizable (witness.go) are not searched.
	var rest []porcupine.Operation
	witnessed := map[string]bool{}
	parts, keys := partitionByKey(ops)
	for i, part := range parts {
		if witness(part) {
			witnessed[keys[i]] = true
			continue
		}
		rest = append(rest, part...)
	}
	res := porcupine.Ok
	if len(rest) > 0 {
		res = porcupine.CheckOperationsTimeout(model, rest, timeout)
	}
	r := Result{Ops: len(ops), ops: ops, timeout: timeout, checked: true}

	var primary []string
	primary = append(primary, problems...)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		r.computeInfo()
		failed := r.confirmFailing(slices.DeleteFunc(failingPartitions(r.info, parts), func(i int) bool {
			return witnessed[keys[i]] // proven linearizable: the search merely did not finish it
		}), parts)
		for _, i := range failed {
			r.FailedKeys = append(r.FailedKeys, keys[i])
		}
		if len(failed) == 0 {
			primary = append(primary, "not linearizable (porcupine reported illegal, but no partition could be singled out)")
		} else {
			msg := describePartitionFailure(r.info, parts[failed[0]], keys[failed[0]], failed[0])
			if len(failed) > 1 {
				msg += fmt.Sprintf("\nother keys that are not linearizable either: %s", quoteList(r.FailedKeys[1:]))
			}
			if r.infoPartial {
				msg += fmt.Sprintf("\n(the detailed check, which finds the longest linearizable prefix, ran out of its %v: the prefix shown may be shorter than the longest)", r.timeout)
			}
			primary = append(primary, msg)
		}
	case porcupine.Unknown:
	default:
		primary = append(primary, fmt.Sprintf("porcupine returned unexpected result %q", res))
	}

	switch {
	case len(primary) > 0:
		r.Verdict = VerdictIllegal
		r.Violation = joinCapped(primary)
		if res == porcupine.Unknown {
			r.Violation += fmt.Sprintf("\n(the linearizability check itself timed out after %v)", timeout)
		}
	case res == porcupine.Unknown:
		r.Verdict = VerdictUnknown
		r.Violation = fmt.Sprintf("linearizability check timed out after %v over %d operations: result unknown", timeout, len(ops))
	default:
		r.Verdict = VerdictOK
		r.OK = true
	}
	return r
}

// WriteVisualization writes porcupine's HTML visualization of the checked
// history to path, with ann marked on it. It is the only function of this
// package that touches the file system.
func (r Result) WriteVisualization(path string, ann []Annotation) error {
	if !r.checked {
		return fmt.Errorf("checker: write visualization %s: nothing to visualize (verdict %q)", path, r.Verdict)
	}
	r.computeInfo() // r is a copy: the caller's Result stays as it was
	info := r.info  // AddAnnotations must not touch the Result's copy
	pa := make([]porcupine.Annotation, 0, len(ann))
	for _, a := range ann {
		tag := a.Node
		if tag == "" {
			tag = "events"
		}
		pa = append(pa, porcupine.Annotation{Tag: tag, Start: a.At, End: a.At, Description: a.Text})
	}
	info.AddAnnotations(pa)
	if err := porcupine.VisualizePath(newModel(), info, path); err != nil {
		return fmt.Errorf("checker: write visualization %s: %w", path, err)
	}
	return nil
}

// computeInfo runs porcupine's verbose check, which records the partial
// linearizations a visualization and a failure report draw, once.
func (r *Result) computeInfo() {
	if r.hasInfo {
		return
	}
	res, info := checkVerbose(newModel(), r.ops, r.timeout)
	r.info = info
	r.infoPartial = res == porcupine.Unknown
	r.hasInfo = true
}

// confirmFailing keeps, of the partitions the verbose check's partial
// linearizations single out, those a plain check of the partition alone
// does not pass. The verbose check is many times slower than the plain
// one that found the history illegal: when it runs out of time, every
// partition it had not finished looks failing (and porcupine does not say
// it timed out when it had found a failing one by then).
func (r *Result) confirmFailing(failed []int, parts [][]porcupine.Operation) []int {
	var out []int
	for _, i := range failed {
		if porcupine.CheckOperationsTimeout(newModel(), parts[i], r.timeout) != porcupine.Ok {
			out = append(out, i)
		}
	}
	return out
}

// checkVerbose is porcupine's verbose check (a variable for tests).
var checkVerbose = porcupine.CheckOperationsVerbose

// convertHistory turns the history into porcupine operations. It returns the
// problems found in scan results (each one a violation by itself) and an
// error if the history is malformed.
func convertHistory(h History) ([]porcupine.Operation, []string, error) {
	universe := keyUniverse(h)
	var ops []porcupine.Operation
	var problems []string
	var ios slab[kvIO]
	for i, op := range h.Ops {
		if op.Kind > OpScan {
			return nil, nil, fmt.Errorf("malformed history: op #%d has unknown kind %v", i, op.Kind)
		}
		if op.ClientID < 0 {
			return nil, nil, fmt.Errorf("malformed history: op #%d has negative client id %d", i, op.ClientID)
		}
		if op.Kind == OpScan && op.ScanLimit < 0 {
			return nil, nil, fmt.Errorf("malformed history: op #%d %s has negative limit", i, op.describe())
		}
		ret := op.Return
		switch op.Outcome {
		case OutcomeFailed:
			continue
		case OutcomeAmbiguous:
			if op.Kind == OpGet || op.Kind == OpScan {
				continue
			}
			ret = math.MaxInt64
			if op.EffectBy != 0 {
				if op.EffectBy < op.Call {
					return nil, nil, fmt.Errorf("malformed history: op #%d %s takes effect before it is called", i, op.describe())
				}
				ret = op.EffectBy
			}
		case OutcomeOK:
			// Return == Call is fine as it is: porcupine orders a call
			// before a return at the same instant, so the interval is
			// valid. Widening it to Call+1 would make the operation
			// concurrent with one called at Call+1 and could hide a
			// violation.
			if ret < op.Call {
				return nil, nil, fmt.Errorf("malformed history: op #%d %s returns before it is called", i, op.describe())
			}
		default:
			return nil, nil, fmt.Errorf("malformed history: op #%d has unknown outcome %v", i, op.Outcome)
		}
		// Boxed once: a scan makes an operation per key it covers.
		var meta any = opMeta{index: i, op: op}
		unknown := op.Outcome == OutcomeAmbiguous
		mk := func(in kvInput, out kvOutput) porcupine.Operation {
			io := ios.add(kvIO{in, out})
			return porcupine.Operation{
				ClientId: op.ClientID, Input: &io.in, Call: op.Call,
				Output: &io.out, Return: ret, Metadata: meta,
			}
		}
		switch op.Kind {
		case OpScan:
			if p := scanProblems(op); len(p) > 0 {
				problems = append(problems, fmt.Sprintf("op #%d %s returned a malformed result: %s",
					i, op.describe(), strings.Join(p, "; ")))
				continue
			}
			for _, k := range scannedKeys(op, universe) {
				out := kvOutput{}
				j := sort.Search(len(op.Pairs), func(j int) bool { return op.Pairs[j].Key >= k })
				if j < len(op.Pairs) && op.Pairs[j].Key == k {
					out = kvOutput{found: true, value: op.Pairs[j].Value, version: op.Pairs[j].Version}
				}
				ops = append(ops, mk(kvInput{kind: OpGet, key: k}, out))
			}
		default:
			in := kvInput{kind: op.Kind, key: op.Key, value: op.Value, expected: op.ExpectedVersion, unknown: unknown}
			out := kvOutput{
				found: op.Found, value: op.ResultValue, version: op.Version,
				deleted: op.Deleted, casOK: op.CasSucceeded,
			}
			ops = append(ops, mk(in, out))
		}
	}
	return ops, problems, nil
}

// kvIO is an operation's input and output. The porcupine operations point
// at them (an interface holds a pointer without allocating), held in a
// slab instead of two allocations each.
type kvIO struct {
	in  kvInput
	out kvOutput
}

// slab hands out pointers to values it holds in chunks that never move.
type slab[T any] struct{ chunk []T }

func (s *slab[T]) add(v T) *T {
	if len(s.chunk) == cap(s.chunk) {
		s.chunk = make([]T, 0, 256)
	}
	s.chunk = append(s.chunk, v)
	return &s.chunk[len(s.chunk)-1]
}

// keyUniverse returns, sorted and deduplicated, History.Keys together with
// every key an operation names or a scan returned.
func keyUniverse(h History) []string {
	set := make(map[string]struct{}, len(h.Keys))
	for _, k := range h.Keys {
		set[k] = struct{}{}
	}
	for _, op := range h.Ops {
		if op.Kind == OpScan {
			for _, p := range op.Pairs {
				set[p.Key] = struct{}{}
			}
		} else {
			set[op.Key] = struct{}{}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// inStrRange reports whether k lies in [start, end), empty end = +inf.
func inStrRange(k, start, end string) bool {
	return k >= start && (end == "" || k < end)
}

// scanProblems lists what is wrong with a scan's result on its own.
func scanProblems(op Op) []string {
	var p []string
	if op.ScanLimit > 0 && len(op.Pairs) > op.ScanLimit {
		p = append(p, fmt.Sprintf("%d pairs exceed the limit of %d", len(op.Pairs), op.ScanLimit))
	}
	for j, pair := range op.Pairs {
		if !inStrRange(pair.Key, op.ScanStart, op.ScanEnd) {
			p = append(p, fmt.Sprintf("key %q is outside the range %s", pair.Key, pb.FormatRange([]byte(op.ScanStart), []byte(op.ScanEnd))))
		}
		if j > 0 {
			prev := op.Pairs[j-1].Key
			if pair.Key == prev {
				p = append(p, fmt.Sprintf("key %q is returned twice", pair.Key))
			} else if pair.Key < prev {
				p = append(p, fmt.Sprintf("keys are not sorted: %q comes after %q", pair.Key, prev))
			}
		}
	}
	return p
}

// scannedKeys returns the keys of universe a well-formed scan vouches for.
func scannedKeys(op Op, universe []string) []string {
	var keys []string
	truncated := op.ScanLimit > 0 && len(op.Pairs) == op.ScanLimit
	for i := sort.SearchStrings(universe, op.ScanStart); i < len(universe); i++ {
		k := universe[i]
		if !inStrRange(k, op.ScanStart, op.ScanEnd) {
			break
		}
		if truncated && k > op.Pairs[len(op.Pairs)-1].Key {
			break
		}
		keys = append(keys, k)
	}
	return keys
}

// longestPartial returns, deterministically, a longest partial
// linearization porcupine found for partition i (ties go to the
// lexicographically smallest sequence of operation ids).
func longestPartial(info porcupine.LinearizationInfo, i int) []int {
	all := info.PartialLinearizations()
	if i >= len(all) {
		return nil
	}
	var best []int
	for _, p := range all[i] {
		if len(p) > len(best) || (len(p) == len(best) && lexLess(p, best)) {
			best = p
		}
	}
	return append([]int(nil), best...)
}

func lexLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// failingPartitions returns the indexes of the partitions no linearization
// of which covers all of their operations.
func failingPartitions(info porcupine.LinearizationInfo, parts [][]porcupine.Operation) []int {
	var failed []int
	for i, part := range parts {
		if len(longestPartial(info, i)) < len(part) {
			failed = append(failed, i)
		}
	}
	return failed
}

// describePartitionFailure explains why one key's operations are not
// linearizable: the longest prefix porcupine could linearize, and the
// operations none of which can come next.
func describePartitionFailure(info porcupine.LinearizationInfo, part []porcupine.Operation, key string, i int) string {
	var b strings.Builder
	prefix := longestPartial(info, i)
	fmt.Fprintf(&b, "not linearizable: key %q: the %d operations on it have no linearization; ", key, len(part))
	if len(prefix) == 0 {
		fmt.Fprintf(&b, "no operation can be linearized first (the key starts absent)")
	} else {
		fmt.Fprintf(&b, "the longest linearizable prefix has %d:", len(prefix))
		st := kvState{}
		for n, id := range prefix {
			_, st = step(st, part[id].Input.(*kvInput), part[id].Output.(*kvOutput))
			if len(prefix) > maxListed && n < len(prefix)-maxListed {
				if n == 0 {
					fmt.Fprintf(&b, "\n  ... %d earlier operations", len(prefix)-maxListed)
				}
				continue
			}
			fmt.Fprintf(&b, "\n  %s  => %s", describePorcupineOp(part[id]), describeState(st))
		}
		fmt.Fprintf(&b, "\noperations left out of it (none fits next):")
	}
	in := make(map[int]bool, len(prefix))
	for _, id := range prefix {
		in[id] = true
	}
	var rest []int
	for id := range part {
		if !in[id] {
			rest = append(rest, id)
		}
	}
	sort.SliceStable(rest, func(a, c int) bool { return part[rest[a]].Call < part[rest[c]].Call })
	for n, id := range rest {
		if n == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(rest)-maxListed)
			break
		}
		fmt.Fprintf(&b, "\n  %s", describePorcupineOp(part[id]))
	}
	return b.String()
}

// describePorcupineOp renders an operation with its origin in the history.
func describePorcupineOp(op porcupine.Operation) string {
	ret := fmt.Sprintf("%d", op.Return)
	if op.Return == math.MaxInt64 {
		ret = "?"
	}
	meta := op.Metadata.(opMeta)
	origin := ""
	if meta.op.Kind == OpScan {
		origin = fmt.Sprintf(", part of scan %s limit %d", pb.FormatRange([]byte(meta.op.ScanStart), []byte(meta.op.ScanEnd)), meta.op.ScanLimit)
	}
	return fmt.Sprintf("op #%d client %d t=%d..%s: %s%s",
		meta.index, op.ClientId, op.Call, ret,
		describeOperation(op.Input.(*kvInput), op.Output.(*kvOutput)), origin)
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}

// joinCapped joins problems one per line, at most maxListed of them.
func joinCapped(problems []string) string {
	if len(problems) <= maxListed {
		return strings.Join(problems, "\n")
	}
	return strings.Join(problems[:maxListed], "\n") + fmt.Sprintf("\n... and %d more problems", len(problems)-maxListed)
}
