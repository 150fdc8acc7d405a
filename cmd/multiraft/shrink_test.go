package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// quorumLoss is a test-only scenario that fails: the move scenario's
// world (PD replaces the replicas of dead stores) with a plan of ten
// fault actions, of which #3 and #6 kill stores 1 and 2 for good; the
// regions lose their quorum and PD's replacements can never finish. The
// others are mostly noise. The product code's fault hooks are off: they
// would change the run this test describes.
func quorumLoss(t *testing.T) scenarios.Scenario {
	s, err := scenarios.Get("move")
	if err != nil {
		t.Fatal(err)
	}
	s.Name, s.Config.Name = "quorum-loss", "quorum-loss"
	s.Config.Duration = 20 * time.Second
	s.Config.Probe = false
	s.Config.Buggify = sim.Buggify{Off: true}
	s.Config.Faults = func(p *sim.Planner) {
		p.At(0, "store 4 joins", func(w *sim.World) { w.AddStore(4) })
		p.At(1*time.Second, "isolate s3", func(w *sim.World) { w.Isolate(3) })
		p.At(3*time.Second, "heal", func(w *sim.World) { w.Heal() })
		p.At(4*time.Second, "kill s1", func(w *sim.World) { w.KillStore(1) })
		p.At(6*time.Second, "isolate PD", func(w *sim.World) { w.Isolate(sim.PDNode) })
		p.At(8*time.Second, "heal", func(w *sim.World) { w.Heal() })
		p.At(10*time.Second, "kill s2", func(w *sim.World) { w.KillStore(2) })
		p.At(12*time.Second, "crash s3", func(w *sim.World) { p.CrashFor(w, 3, time.Second) })
		p.At(15*time.Second, "isolate s3", func(w *sim.World) { w.Isolate(3) })
	}
	return s
}

// TestShrinkCommand shrinks a failing run through the command's path:
// it prints the reduced run's replay flags and writes its trace, its
// picture and porcupine's page.
func TestShrinkCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a few dozen runs")
	}
	dir := t.TempDir()
	o := simOptions{shrink: true, outDir: dir, jobs: jobList{scens: []scenarios.Scenario{quorumLoss(t)}, from: 1, to: 1}}
	var out, errOut bytes.Buffer
	if code := runShrink(o, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut.String())
	}
	log := errOut.String()
	t.Logf("stderr:\n%s", log)
	for _, want := range []string{
		// The stores die for good, so the run fails at its liveness phase
		// (a region without a leader) or with operators still running.
		"shrink: original run fails: ",
		"reduced run: go run ./cmd/multiraft sim --scenario quorum-loss --seed 1 --clients 1 --duration ",
		"--faults-skip ",
		"kept: #3 4s kill s1: kill s1 for good",
		"kept: #6 10s kill s2: kill s2 for good",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "quorum-loss") || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("stdout: %s", out.String())
	}
	for _, f := range []string{"quorum-loss-seed1-min.trace", "quorum-loss-seed1-min-timeline.html", "quorum-loss-seed1-min-porcupine.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
