package sim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShrinkReducesThePlantedBug(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a few dozen runs")
	}
	var steps []string
	res, err := Shrink(plantedBug(), 1, ShrinkOptions{Log: func(s string) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs:\n%s", res.Runs, strings.Join(steps, "\n"))
	c := res.Config
	if res.Reduced.OK || !SameFailure(res.Original, res.Reduced) {
		t.Fatalf("reduced run does not fail the same way: %q", firstLine(res.Reduced.Violation))
	}
	if c.Clients != 1 {
		t.Errorf("clients %d, want 1", c.Clients)
	}
	if c.Duration >= 13*time.Second || c.Duration <= 10*time.Second {
		t.Errorf("duration %v, want shorter than 13s (s2 restarts early) and longer than 10s (it crashes then)", c.Duration)
	}
	var kept []int
	for _, a := range res.Reduced.FaultActions() {
		if a.Effective() && !a.Ends {
			kept = append(kept, a.Index)
		}
	}
	if !slices.Equal(kept, []int{2, 5}) {
		t.Errorf("faults kept %v, want [2 5] (isolate PD, crash s2); edits %+v", kept, c.FaultEdits)
	}
	// s2's restart moved close to its crash: the window is shorter.
	if restart := res.Reduced.FaultActions()[6]; !restart.Effective() || restart.At >= 11*time.Second {
		t.Errorf("restart of s2: %v, want it moved before 11s", restart)
	}
	// The reduced configuration is exact: it replays to the same hash.
	if r := Run(c, 1, nil); r.TraceHash != res.Reduced.TraceHash || r.OK {
		t.Errorf("reduced run replays to %s (ok %v), shrink saw %s", r.TraceHash, r.OK, res.Reduced.TraceHash)
	}
	t.Logf("reduced: clients %d, duration %v, --faults-skip %s --faults-at %s",
		c.Clients, c.Duration, c.FaultEdits.SkipFlag(), c.FaultEdits.RetimeFlag())
}

func TestShrinkRefusesAPassingRun(t *testing.T) {
	cfg := testConfig("passing")
	cfg.Duration = 2 * time.Second
	if _, err := Shrink(cfg, 1, ShrinkOptions{}); err == nil {
		t.Fatal("shrinking a passing run should fail")
	}
}

func TestFailureKind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"not linearizable: key \"a000\": the 5 operations", "not linearizable"},
		{"region 12 ends with 2 voters among 3 peers, want 3: r12 ...", "region N ends with N voters among N peers, want N"},
		{"store 2 served a request it must refuse: get \"x\" outside region 4", "store N served a request it must refuse"},
		{"manual split at \"a:b\" refused", "manual split at Q refused"},
	} {
		if got := FailureKind(c.in); got != c.want {
			t.Errorf("FailureKind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
