package sim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlantedBugFailsAndEditsReplay(t *testing.T) {
	cfg := plantedBug()
	rep := Run(cfg, 1, nil)
	// Key a000 is the one the plan's bug corrupts, and the only one: the
	// planted read must not shift what the other operations are resolved
	// by (World.resolvedHistory).
	if rep.OK || !strings.HasPrefix(rep.Violation, "not linearizable") || !slices.Equal(rep.FailedKeys(), []string{KeyName(0)}) {
		t.Fatalf("planted bug: ok %v, failed keys %v, violation %q", rep.OK, rep.FailedKeys(), firstLine(rep.Violation))
	}
	acts := rep.FaultActions()
	if len(acts) != 13 {
		t.Fatalf("%d actions, want 11 planned and 2 restarts", len(acts))
	}
	for i, want := range []string{"isolate s3", "heal", "isolate PD", "crash s1", "partition", "crash s2", "restart s2"} {
		if acts[i].Index != i || acts[i].Name != want || !acts[i].Effective() {
			t.Errorf("action %d: %v, want %q, effective", i, acts[i], want)
		}
	}
	if !acts[1].Ends || acts[2].Ends || !acts[6].Ends {
		t.Errorf("heal and restart end a fault, isolating PD does not: %v %v %v", acts[1], acts[2], acts[6])
	}

	// Skipping the isolation of PD removes the bug; skipping the rest
	// keeps it.
	cfg.FaultEdits = FaultEdits{Skip: []int{2}}
	if r := Run(cfg, 1, nil); !r.OK {
		t.Errorf("without action #2: %s", firstLine(r.Violation))
	} else if a := r.FaultActions()[2]; !a.Skipped || a.Ran {
		t.Errorf("action #2 skipped: %v", a)
	}
	cfg.FaultEdits = FaultEdits{Skip: []int{0, 1, 3, 4, 7, 8, 9, 10}}
	r1 := Run(cfg, 1, nil)
	if r1.OK {
		t.Fatal("with only #2, #5 and #6 the planted bug should fire")
	}
	if r2 := Run(cfg, 1, nil); r2.TraceHash != r1.TraceHash {
		t.Errorf("an edited run does not replay: %s then %s", r1.TraceHash, r2.TraceHash)
	}
	// Healing before the restart removes it too.
	cfg.FaultEdits = FaultEdits{Retime: []Retime{{Index: 7, At: 12 * time.Second}}}
	if r := Run(cfg, 1, nil); !r.OK {
		t.Errorf("heal moved before the restart: %s", firstLine(r.Violation))
	} else if a := r.FaultActions()[7]; a.At != 12*time.Second || a.Planned != 14*time.Second {
		t.Errorf("retimed action: %v", a)
	}
}

func TestFaultEditFlags(t *testing.T) {
	e := FaultEdits{Skip: []int{9, 3, 3, 5}, Retime: []Retime{{7, 12500 * time.Millisecond}, {3, time.Second}, {7, 20 * time.Second}}}.Normalized()
	if e.SkipFlag() != "3,5,9" || e.RetimeFlag() != "7=20s" {
		t.Errorf("flags %q %q", e.SkipFlag(), e.RetimeFlag())
	}
	skip, err := ParseSkipFlag(e.SkipFlag())
	if err != nil || !slices.Equal(skip, e.Skip) {
		t.Errorf("parse skip: %v %v", skip, err)
	}
	rt, err := ParseRetimeFlag("7=12.5s,2=1m")
	if err != nil || !slices.Equal(rt, []Retime{{7, 12500 * time.Millisecond}, {2, time.Minute}}) {
		t.Errorf("parse retime: %v %v", rt, err)
	}
	for _, bad := range []string{"x", "-1", "1,,2"} {
		if _, err := ParseSkipFlag(bad); err == nil {
			t.Errorf("ParseSkipFlag(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"7", "7=x", "x=1s", "1=-1s"} {
		if _, err := ParseRetimeFlag(bad); err == nil {
			t.Errorf("ParseRetimeFlag(%q) accepted", bad)
		}
	}
}

// Faults happen in the workload: an action due after it (a plan made for a
// longer workload, say) does not run, and the healed world passes its
// checks.
func TestActionsAfterTheWorkloadDoNotRun(t *testing.T) {
	cfg := testConfig("late-fault")
	cfg.Faults = func(p *Planner) {
		p.At(5*time.Second, "isolate s1", func(w *World) { w.Isolate(1) })
		p.At(p.Dur+4*time.Second, "isolate s2 after the workload", func(w *World) { w.Isolate(2) })
	}
	rep := Run(cfg, 1, nil)
	if !rep.OK {
		t.Fatalf("%s", firstLine(rep.Violation))
	}
	acts := rep.FaultActions()
	if len(acts) != 2 || !acts[0].Effective() || acts[1].Ran {
		t.Fatalf("actions %v: the first should run, the second not", acts)
	}
}
