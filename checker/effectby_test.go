package checker

import (
	"strings"
	"testing"
)

func effectBy(op Op, at int64) Op {
	op = ambiguous(op)
	op.EffectBy = at
	return op
}

// TestAmbiguousWriteWithEffectBy: an ambiguous write known to have taken
// effect by a time must be seen by every operation called after it, and
// may be seen by one that overlaps it.
func TestAmbiguousWriteWithEffectBy(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"a read after EffectBy sees it", []Op{
			effectBy(put(0, "x", "1", 0, 10, 0), 20),
			get(1, "x", true, "1", 1, 30, 40),
		}, true},
		{"a read after EffectBy that misses it", []Op{
			effectBy(put(0, "x", "1", 0, 10, 0), 20),
			get(1, "x", false, "", 0, 30, 40),
		}, false},
		{"a read overlapping the window may miss it", []Op{
			effectBy(put(0, "x", "1", 0, 10, 0), 20),
			get(1, "x", false, "", 0, 12, 15),
			get(1, "x", true, "1", 1, 16, 18),
		}, true},
		{"without EffectBy a late read may still miss it", []Op{
			ambiguous(put(0, "x", "1", 0, 10, 0)),
			get(1, "x", false, "", 0, 30, 40),
		}, true},
		{"a write after EffectBy counts its version", []Op{
			effectBy(put(0, "x", "1", 0, 10, 0), 20),
			put(1, "x", "2", 1, 30, 40), // would be version 2
		}, false},
	}
	for _, tc := range cases {
		r := CheckLinearizable(History{Ops: tc.ops, Keys: []string{"x"}}, testTimeout)
		if r.OK != tc.ok {
			t.Errorf("%s: ok = %v (%s), want %v", tc.name, r.OK, r.Violation, tc.ok)
		}
	}
}

func TestEffectByBeforeCallIsMalformed(t *testing.T) {
	r := CheckLinearizable(History{Ops: []Op{effectBy(put(0, "x", "1", 0, 10, 0), 5)}}, testTimeout)
	if r.Verdict != VerdictMalformed || !strings.Contains(r.Violation, "takes effect before it is called") {
		t.Fatalf("verdict %s: %s", r.Verdict, r.Violation)
	}
}
