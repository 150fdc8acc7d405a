package scenarios

import (
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/sim"
)

// Coverage (core/buggify events; docs/testing.md, "Coverage"): the product
// code counts the dangerous situations it finds itself in. A scenario whose
// faults stop striking where they should (a plan edited, a callback no
// longer called, a timing that drifted) still passes; these checks make it
// fail instead, and make sure some test reaches every event.

// coverageSeeds is the seed range (1..coverageSeeds, TestScenarios' default)
// over which each scenario must reach its events.
const coverageSeeds = 4

// scenarioCoverage is what each scenario is named for: the events its runs
// over seeds 1..coverageSeeds must reach, in their default configuration
// (fault hooks as drawn per run). TestScenarios checks it, on the runs it
// makes anyway.
var scenarioCoverage = map[string][]buggify.Event{
	"static": {buggify.StaleEpochRequest},
	"static-partition": {buggify.ProposalStaleCommand, buggify.ProposalCoveredBySnap, buggify.DeposedLeaderRead,
		buggify.SessionRepeatAnswered, buggify.SnapshotOverExisting},
	"static-crash":           {buggify.DeposedLeaderRead, buggify.TornTailCut},
	"split":                  {buggify.SplitMessageStashed, buggify.StaleEpochCommand, buggify.SplitSkippedStale},
	"split-leader-change":    {buggify.LeaderChangeDuringSplit, buggify.PDStaleReportAfterSplit, buggify.PDStaleSplitReport, buggify.StaleTermMessageDropped},
	"split-partition":        {buggify.PlaceholderCreated, buggify.SnapshotOverExisting, buggify.SplitSkippedStale},
	"split-crash":            {buggify.RestartWithSplitInLog},
	"split-pd-down":          {buggify.LeaderChangeDuringSplit, buggify.OperatorCancelled},
	"move":                   {buggify.SnapshotToLearner, buggify.PeerRemovedItself, buggify.GCNoticeSent, buggify.TombstoneRefused},
	"move-partition":         {buggify.SnapshotToLearner, buggify.SnapshotRefused},
	"move-leader-change":     {buggify.PDStaleReportAfterMove, buggify.StalePeerDestroyed},
	"move-crash":             {buggify.SnapshotNeverApplied, buggify.TornTailCut},
	"store-down":             {buggify.StalePeerDestroyed, buggify.StaleConfChangeSkipped},
	"split-and-move":         {buggify.SplitWhileLearner},
	"split-snapshot":         {buggify.SplitWhileLearner, buggify.SplitPlaceholderTakenOver, buggify.SplitNewRegionPresent},
	"quiet-static-partition": {buggify.QuietWokenByMessage, buggify.QuietWokenBySilentStore},
	"quiet-static-crash":     {buggify.QuietWokenBySilentStore},
	"many-regions":           {buggify.QuietWokenBySilentStore},
	"session-churn":          {buggify.SessionExpiredAnswered},
	"pd-behind":              {buggify.StaleOrderIgnored}, // PD's orders made for epochs the region has left
	"pd-behind-split":        {buggify.PeerUnknownToPD},   // PD asked about a fresh split's region before it heard of the split
	"stale-voter":            {buggify.TombstoneRefused},  // the stale voter's campaign at the removed peer's store
	"client-clock-ahead":     {buggify.SessionClockAhead, buggify.ClockRefusalAfterTimeout},
	"swarm": {buggify.SnapshotToLearner, buggify.DeposedLeaderRead, buggify.SplitMessageStashed,
		buggify.StalePeerDestroyed, buggify.TornTailCut},
}

// planCoverage are events no scenario reaches often enough for a check on
// a few seeds: each has a short run of its own, made to reach it
// (TestCoverageOfRareEvents).
var planCoverage = []struct {
	name   string
	events []buggify.Event
	config func() sim.Config
}{
	{"moves to a store cut off from the others (not from PD) until their operators time out", []buggify.Event{buggify.OperatorTimedOut}, func() sim.Config {
		s, _ := Get("move")
		cfg := s.Config
		cfg.Duration = 20 * time.Second
		cfg.PD.OperatorTimeout = 4 * time.Second
		cfg.Buggify = sim.Buggify{Off: true}
		cfg.Faults = func(p *sim.Planner) {
			// Store 4 joins; PD's balancer moves replicas onto it, which
			// never catch up.
			p.At(0, "store 4 joins, cut off from the other stores", func(w *sim.World) {
				w.AddStore(4)
				for _, id := range []uint64{1, 2, 3} {
					w.BlockOneWay(id, 4)
					w.BlockOneWay(4, id)
				}
			})
			p.At(10*time.Second, "heal", func(w *sim.World) { w.Heal() })
		}
		return cfg
	}},
	{"a leader that appended writes it could not commit crashes and leads again", []buggify.Event{buggify.RestartedLeaderOldEntries}, func() sim.Config {
		s, _ := Get("static")
		cfg := s.Config
		cfg.Duration = 20 * time.Second
		cfg.Buggify = sim.Buggify{Off: true}
		cfg.PD.DisableBalanceLeader = true // the plan places the leaders
		cfg.Faults = func(p *sim.Planner) {
			var leader uint64
			var followers []uint64
			// Both followers of a region's leader crash: it takes writes
			// it cannot commit; it crashes, restarts first, and wins the
			// vote of the first follower back (its log is the longest).
			// The other region's leadership goes to the same store first:
			// clients waiting on a leader that crashed (attempt timeouts)
			// would send the store nothing in the window.
			p.At(4*time.Second, "one leader for every region", func(w *sim.World) {
				ids := w.RegionIDs()
				for _, r := range ids[1:] {
					w.TransferLeaderTo(r, w.LeaderStore(ids[0]))
				}
			})
			p.At(5*time.Second, "crash a leader's followers", func(w *sim.World) {
				leader = w.LeaderStore(w.RegionIDs()[0])
				followers = others(w.StoreIDs(), leader)
				for _, f := range followers {
					w.Crash(f)
				}
			})
			p.At(6500*time.Millisecond, "crash the leader", func(w *sim.World) { w.Crash(leader) })
			p.At(7*time.Second, "restart the leader", func(w *sim.World) { w.Restart(leader) })
			p.At(9*time.Second, "restart a follower", func(w *sim.World) { w.Restart(followers[0]) })
			p.At(11*time.Second, "restart the other", func(w *sim.World) { w.Restart(followers[1]) })
		}
		return cfg
	}},
}

// checkScenarioCoverage fails the test of scenario name when its n runs
// (reached: the events they reached) missed one of its events.
func checkScenarioCoverage(t *testing.T, name string, n int, reached map[string]bool) {
	t.Helper()
	for _, e := range missingCoverage(name, reached) {
		t.Errorf("seeds 1-%d never reached coverage event %s, which the scenario is there for (multiraft sim --scenario %s --seeds 1-%d --coverage)",
			n, e, name, n)
	}
}

// missingCoverage lists the events of scenario name not in reached.
func missingCoverage(name string, reached map[string]bool) []buggify.Event {
	var out []buggify.Event
	for _, e := range scenarioCoverage[name] {
		if !reached[e.String()] {
			out = append(out, e)
		}
	}
	return out
}

// Every coverage event is checked somewhere, every scenario named there
// exists, and the checks can fail (an event nobody reached is reported).
func TestEveryCoverageEventIsChecked(t *testing.T) {
	checked := map[buggify.Event]bool{}
	for name, events := range scenarioCoverage {
		if _, err := Get(name); err != nil {
			t.Errorf("scenarioCoverage: %v", err)
		}
		for _, e := range events {
			checked[e] = true
		}
	}
	for _, c := range planCoverage {
		for _, e := range c.events {
			checked[e] = true
		}
	}
	for e := buggify.Event(0); e < buggify.NumEvents; e++ {
		if !checked[e] {
			t.Errorf("coverage event %s is checked by no scenario (scenarioCoverage) and no plan (planCoverage)", e)
		}
	}
	if len(missingCoverage("split-crash", map[string]bool{})) == 0 {
		t.Error("a scenario that reached nothing passed its coverage check")
	}
}

// TestCoverageOfRareEvents runs the plans of planCoverage: each must
// reach its events at seed 1.
func TestCoverageOfRareEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few simulations")
	}
	for _, c := range planCoverage {
		rep := sim.Run(c.config(), 1, nil)
		if !rep.OK {
			t.Errorf("%s: %s", c.name, rep.Violation)
		}
		for _, e := range c.events {
			if rep.Coverage[e.String()] == 0 {
				t.Errorf("%s: never reached %s", c.name, e)
			}
		}
	}
}

// TestCoverageNeedsTheFaults checks that the events come from the faults:
// split-crash without its fault plan (and without hooks) does not restart
// a store with a split in its log, which it is named for.
func TestCoverageNeedsTheFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulation")
	}
	s, err := Get("split-crash")
	if err != nil {
		t.Fatal(err)
	}
	s.Config.Faults = nil
	s.Config.Buggify = sim.Buggify{Off: true}
	s.Config.Duration = 30 * time.Second
	rep := sim.Run(s.Config, 1, nil)
	if !rep.OK {
		t.Fatalf("split-crash without faults: %s", rep.Violation)
	}
	if n := rep.Coverage[buggify.RestartWithSplitInLog.String()]; n > 0 {
		t.Fatalf("split-crash without faults reached %s %d times", buggify.RestartWithSplitInLog, n)
	}
}
