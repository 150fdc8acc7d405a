package checker

import (
	"fmt"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// refEntry is the reference model's value for a present key.
type refEntry struct {
	value   string
	version uint64
}

// genSequentialHistory draws a sequential history (no two intervals
// overlap) and fills in results from a plain map model. Some operations fail
// (and are not applied); if allowAmbiguous, some writes are ambiguous (and
// applied or not at their call, as drawn).
func genSequentialHistory(t *rapid.T, allowAmbiguous bool) History {
	keys := []string{"a", "b", "c", "d", "e"}
	state := map[string]refEntry{}
	n := rapid.IntRange(1, 30).Draw(t, "n")
	now := int64(0)
	var ops []Op
	for i := range n {
		kind := OpKind(rapid.IntRange(int(OpGet), int(OpScan)).Draw(t, "kind"))
		op := Op{ClientID: rapid.IntRange(0, 3).Draw(t, "client"), Kind: kind}
		op.Call = now + rapid.Int64Range(0, 5).Draw(t, "gap")
		op.Return = op.Call + rapid.Int64Range(0, 10).Draw(t, "len")
		now = op.Return + 1
		op.Key = rapid.SampledFrom(keys).Draw(t, "key")
		op.Value = fmt.Sprintf("v%d", i)

		outcome := rapid.IntRange(0, 9).Draw(t, "outcome")
		isWrite := kind == OpPut || kind == OpDelete || kind == OpCas
		switch {
		case outcome == 0:
			op.Outcome = OutcomeFailed
		case outcome == 1 && allowAmbiguous && isWrite:
			op.Outcome = OutcomeAmbiguous
		}
		apply := op.Outcome == OutcomeOK ||
			(op.Outcome == OutcomeAmbiguous && rapid.Bool().Draw(t, "applied"))

		cur, present := state[op.Key]
		switch kind {
		case OpGet:
			op.Found, op.ResultValue, op.Version = present, cur.value, cur.version
		case OpPut:
			op.Version = cur.version + 1
			if apply {
				state[op.Key] = refEntry{op.Value, op.Version}
			}
		case OpDelete:
			op.Deleted = present
			if apply {
				delete(state, op.Key)
			}
		case OpCas:
			op.ExpectedVersion = uint64(rapid.IntRange(0, 3).Draw(t, "expected"))
			if op.ExpectedVersion == cur.version {
				op.CasSucceeded, op.Version = true, cur.version+1
				if apply {
					state[op.Key] = refEntry{op.Value, op.Version}
				}
			} else {
				op.Version = cur.version
			}
		case OpScan:
			op.Key = ""
			op.ScanStart = rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(t, "start")
			op.ScanEnd = rapid.SampledFrom([]string{"", "c", "d", "f"}).Draw(t, "end")
			op.ScanLimit = rapid.IntRange(0, 3).Draw(t, "limit")
			var present []string
			for k := range state {
				if inStrRange(k, op.ScanStart, op.ScanEnd) {
					present = append(present, k)
				}
			}
			sort.Strings(present)
			for _, k := range present {
				if op.ScanLimit > 0 && len(op.Pairs) == op.ScanLimit {
					break
				}
				op.Pairs = append(op.Pairs, Pair{k, state[k].value, state[k].version})
			}
		}
		if op.Outcome != OutcomeOK {
			// Results are not meaningful; make sure the checker ignores them.
			op.Found, op.ResultValue, op.Version, op.Deleted, op.CasSucceeded = true, "junk", 99, true, true
			op.Pairs = []Pair{{"zz", "junk", 99}}
			if op.Outcome == OutcomeAmbiguous {
				op.Return = 0
			}
		}
		ops = append(ops, op)
	}
	return History{Ops: ops, Keys: keys}
}

// corruptRead changes the result of one acknowledged read so that it can no
// longer be explained. It returns false if the history has no read to
// corrupt.
func corruptRead(t *rapid.T, h History, allowAmbiguous bool) bool {
	var reads []int
	for i, op := range h.Ops {
		if op.Outcome == OutcomeOK && (op.Kind == OpGet || (op.Kind == OpScan && len(op.Pairs) > 0)) {
			reads = append(reads, i)
		}
	}
	if len(reads) == 0 {
		return false
	}
	op := &h.Ops[rapid.SampledFrom(reads).Draw(t, "victim")]
	how := 0 // a value nobody wrote: cannot be explained even with ambiguous writes
	if !allowAmbiguous {
		how = rapid.IntRange(0, 2).Draw(t, "how")
	}
	switch op.Kind {
	case OpGet:
		switch {
		case how == 0 || !op.Found:
			op.Found, op.ResultValue, op.Version = true, "never-written", max(op.Version, 1)
		case how == 1:
			op.Found = false
		default:
			op.Version++
		}
	case OpScan:
		pairs := append([]Pair(nil), op.Pairs...)
		j := rapid.IntRange(0, len(pairs)-1).Draw(t, "pair")
		switch how {
		case 0:
			pairs[j].Value = "never-written"
		case 1:
			pairs = append(pairs[:j], pairs[j+1:]...)
		default:
			pairs[j].Version++
		}
		op.Pairs = pairs
	}
	return true
}

func TestRapidSequentialHistories(t *testing.T) {
	for _, amb := range []bool{false, true} {
		t.Run(fmt.Sprintf("ambiguous=%v", amb), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				h := genSequentialHistory(t, amb)
				r := CheckLinearizable(h, testTimeout)
				if !r.OK {
					t.Fatalf("sequential history reported %q:\n%s", r.Verdict, r.Violation)
				}
				if !corruptRead(t, h, amb) {
					t.Skip("no read to corrupt")
				}
				r = CheckLinearizable(h, testTimeout)
				if r.OK || r.Verdict != VerdictIllegal {
					t.Fatalf("corrupted history reported %q", r.Verdict)
				}
				if len(r.FailedKeys) == 0 || r.Violation == "" {
					t.Fatalf("illegal without failing keys or description: %q %q", r.FailedKeys, r.Violation)
				}
			})
		})
	}
}
