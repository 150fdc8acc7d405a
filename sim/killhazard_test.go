package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// KillHazard finds nothing in a settled world (nor in killing a store
// that is down, the others settled), a voter down elsewhere, and the
// moment of a move in which the replicas of the moving region count
// different voters (swarm seed 1510 killed a store then, and the region
// never had a leader again); once the move is over, nothing again.
func TestKillHazardWhileAMembershipChangeIsUnderWay(t *testing.T) {
	cfg := testConfig("kill-hazard")
	cfg.SpareStores = 1
	cfg.PD.DisableBalanceRegion = true
	cfg.PD.DisableBalanceLeader = true
	cfg.Buggify.Off = true // no crash but the plan's
	var before, after []string
	var down, self string
	var moved uint64
	var during []string
	look := func(w *World) []string {
		var out []string
		for _, s := range w.AllStoreIDs() {
			out = append(out, w.KillHazard(s))
		}
		return out
	}
	cfg.Faults = func(p *Planner) {
		p.At(0, "store 4 joins", func(w *World) { w.AddStore(4) })
		p.At(3*time.Second, "look", func(w *World) { before = look(w) })
		p.At(4*time.Second, "crash s2", func(w *World) {
			w.Crash(2)
			down, self = w.KillHazard(1), w.KillHazard(2)
		})
		p.At(5*time.Second, "restart s2", func(w *World) { w.Restart(2) })
		p.At(8*time.Second, "move", func(w *World) {
			moved = w.RegionIDs()[0]
			w.MoveRegion(moved, 1, 4)
		})
		p.OnMembershipChanged(func(w *World, store uint64, r *pb.Region) {
			if r.GetId() == moved {
				during = append(during, w.KillHazard(3))
			}
		})
		p.At(16*time.Second, "look again", func(w *World) { after = look(w) })
	}
	rep := Run(cfg, 1, nil)
	if !rep.OK {
		t.Fatalf("%s", firstLine(rep.Violation))
	}
	for i, why := range before {
		if why != "" {
			t.Errorf("at 3 s, before any fault: killing store %d: %s", i+1, why)
		}
	}
	if !strings.Contains(down, "on store 2 is down") {
		t.Errorf("with store 2 down, killing store 1: %q", down)
	}
	if self != "" {
		t.Errorf("killing store 2, down, the others settled: %s", self)
	}
	hazards := 0
	for _, why := range during {
		if why != "" {
			hazards++
			if !strings.HasPrefix(why, fmt.Sprintf("region %d: ", moved)) {
				t.Errorf("during the move of region %d: %s", moved, why)
			}
		}
	}
	if len(during) < 4*3 || hazards == 0 {
		t.Errorf("%d membership changes applied, %d with a hazard: %q", len(during), hazards, during)
	}
	for i, why := range after {
		if why != "" {
			t.Errorf("at 16 s, the move over: killing store %d: %s", i+1, why)
		}
	}
}
