package checker

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestIllegalWhenVerboseCheckTimesOut: the plain check finds a violation
// on key b; the verbose re-check, which draws the report, runs out of time
// before it gets through key a's long (and linearizable) history. Key a
// must not be reported as failing, nor described as the violation.
func TestIllegalWhenVerboseCheckTimesOut(t *testing.T) {
	var h []Op
	for i := 1; i <= 20000; i++ {
		h = append(h, put(0, "a", fmt.Sprintf("v%d", i), uint64(i), int64(10*i), int64(10*i+5)))
	}
	h = append(h, get(1, "b", true, "never-written", 1, 0, 5))
	saved := checkVerbose
	defer func() { checkVerbose = saved }()
	checkVerbose = func(m porcupine.Model, ops []porcupine.Operation, _ time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
		return saved(m, ops, time.Nanosecond)
	}
	r := CheckLinearizable(History{Ops: h}, testTimeout)
	if r.Verdict != VerdictIllegal {
		t.Fatalf("verdict %q: %s", r.Verdict, r.Violation)
	}
	if !slices.Equal(r.FailedKeys, []string{"b"}) {
		t.Errorf("failed keys %q, want [b]", r.FailedKeys)
	}
	if !strings.Contains(r.Violation, `key "b"`) || strings.Contains(r.Violation, `key "a"`) {
		t.Errorf("violation names the wrong key:\n%s", r.Violation)
	}
}
