package scenarios

import (
	"slices"
	"testing"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/sim"
)

// coverageCase is what a scenario is named for: the coverage events its own
// fault plan must reach, with the product code's fault hooks off (so that a
// hook cannot stand in for a scenario that stopped doing its job), or with
// exactly the hooks given on.
type coverageCase struct {
	scenario string
	hooks    []buggify.Point // forced on; none: hooks off
	events   []buggify.Event
}

// coverageCases are checked by TestCoverage. Every coverage event is in at
// least one of them.
var coverageCases = []coverageCase{
	{scenario: "static", events: []buggify.Event{buggify.StaleEpochRequest}},
	{scenario: "static-partition", events: []buggify.Event{buggify.ProposalStaleCommand, buggify.ProposalCoveredBySnap,
		buggify.DeposedLeaderRead, buggify.SessionRepeatAnswered, buggify.SnapshotOverExisting}},
	{scenario: "static-crash", events: []buggify.Event{buggify.RestartedLeaderOldEntries, buggify.TornTailCut}},
	{scenario: "split", events: []buggify.Event{buggify.SplitMessageStashed, buggify.StaleEpochCommand}},
	{scenario: "split-leader-change", events: []buggify.Event{buggify.LeaderChangeDuringSplit, buggify.PDStaleReportAfterSplit,
		buggify.PDStaleSplitReport, buggify.StaleTermMessageDropped}},
	{scenario: "split-partition", events: []buggify.Event{buggify.PlaceholderCreated, buggify.SnapshotOverExisting}},
	{scenario: "split-crash", events: []buggify.Event{buggify.RestartWithSplitInLog, buggify.TornTailCut}},
	{scenario: "split-pd-down", events: []buggify.Event{buggify.LeaderChangeDuringSplit, buggify.OperatorCancelled}},
	{scenario: "move", events: []buggify.Event{buggify.SnapshotToLearner, buggify.PeerRemovedItself, buggify.GCNoticeSent}},
	{scenario: "move-partition", events: []buggify.Event{buggify.SnapshotToLearner, buggify.SnapshotRefused, buggify.PDStaleReportAfterMove}},
	{scenario: "move-leader-change", events: []buggify.Event{buggify.PDStaleReportAfterMove, buggify.StalePeerDestroyed}},
	{scenario: "move-crash", events: []buggify.Event{buggify.SnapshotNeverApplied, buggify.TornTailCut}},
	{scenario: "store-down", events: []buggify.Event{buggify.StalePeerDestroyed}},
	{scenario: "split-and-move", events: []buggify.Event{buggify.SplitWhileLearner}},
	{scenario: "quiet-static-partition", events: []buggify.Event{buggify.QuietWokenByMessage, buggify.QuietWokenBySilentStore}},
	{scenario: "quiet-static-crash", events: []buggify.Event{buggify.QuietWokenBySilentStore}},
	{scenario: "session-churn", events: []buggify.Event{buggify.SessionExpiredAnswered}},
	// Reached through hooks: the checks at apply that only a repeated or a
	// late order or proposal can reach.
	{scenario: "split", hooks: []buggify.Point{buggify.SplitProposeRepeat}, events: []buggify.Event{buggify.SplitSkippedStale}},
	{scenario: "move", hooks: []buggify.Point{buggify.ConfProposeRepeat, buggify.OrderDelay},
		events: []buggify.Event{buggify.StaleConfChangeSkipped, buggify.StaleOrderIgnored}},
}

// coverageSeeds bounds the seeds a case may take to reach its events: it
// stops at the first seed by which it reached them all.
const coverageSeeds = 3

// TestCoverage holds each scenario to what it is named for: over a few
// seeds (it stops as soon as it has them all), its fault plan makes the
// product code reach the coverage events listed for it. A scenario whose
// faults stop striking where they should (a plan edited, a callback no
// longer called, a timing that drifted) fails here, though its runs still
// pass. `multiraft sim --seeds 1-50 --coverage` prints the full table.
func TestCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 25 simulations")
	}
	covered := map[buggify.Event]bool{}
	for _, c := range coverageCases {
		for _, e := range c.events {
			covered[e] = true
		}
	}
	for e := buggify.Event(0); e < buggify.NumEvents; e++ {
		if !covered[e] {
			t.Errorf("coverage event %s is in no case of coverageCases", e)
		}
	}
	for _, c := range coverageCases {
		name := c.scenario
		if len(c.hooks) > 0 {
			name += "+hooks"
		}
		t.Run(name, func(t *testing.T) {
			s, err := Get(c.scenario)
			if err != nil {
				t.Fatal(err)
			}
			missing := checkCoverage(t, c, s.Config)
			if len(missing) > 0 {
				t.Errorf("%s: seeds 1-%d never reached %v", c.scenario, coverageSeeds, missing)
			}
		})
	}
}

// checkCoverage runs case c on cfg over seeds 1.. until its events are all
// reached (at most coverageSeeds), and returns the events it never reached.
func checkCoverage(t *testing.T, c coverageCase, cfg sim.Config) []buggify.Event {
	t.Helper()
	cfg.Buggify = sim.Buggify{Off: true}
	if len(c.hooks) > 0 {
		cfg.Buggify = sim.Buggify{Force: c.hooks}
	}
	missing := slices.Clone(c.events)
	for seed := uint64(1); seed <= coverageSeeds && len(missing) > 0; seed++ {
		rep := sim.Run(cfg, seed, nil)
		if !rep.OK {
			t.Errorf("%s seed %d: %s", c.scenario, seed, rep.Violation)
		}
		missing = slices.DeleteFunc(missing, func(e buggify.Event) bool { return rep.Coverage[e.String()] > 0 })
	}
	return missing
}

// TestCoverageNeedsTheFaults checks that TestCoverage can fail: split-crash
// without its fault plan no longer reaches the restart with a split in the
// log that it is named for.
func TestCoverageNeedsTheFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulation")
	}
	s, err := Get("split-crash")
	if err != nil {
		t.Fatal(err)
	}
	s.Config.Faults = nil
	c := coverageCase{scenario: s.Name, events: []buggify.Event{buggify.RestartWithSplitInLog}}
	if missing := checkCoverage(t, c, s.Config); len(missing) != 1 {
		t.Fatalf("split-crash without faults still reaches %v", c.events)
	}
}
