package scenarios

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/sim"
)

var seeds = flag.Int("seeds", 4, "seeds per scenario (1..N); the long sweeps are `multiraft sim --seeds`")

// TestScenarios runs every scenario over seeds 1..N (default 4, to keep CI
// short; docs/scenarios.md records the long sweeps): every history must be
// linearizable and every invariant hold. Over the default seeds each
// scenario must also reach the coverage events it is named for
// (scenarioCoverage, coverage_test.go).
func TestScenarios(t *testing.T) {
	for _, s := range All() {
		t.Run(s.Name, func(t *testing.T) {
			worstElect := 0.0
			corrupted := 0
			deposedReads := 0
			staleVoters := 0
			n := *seeds
			if s.Name == "many-regions" {
				n = min(n, 2) // 15 s of CPU a seed: the sweeps run more
			}
			reached := map[string]bool{}
			for seed := uint64(1); seed <= uint64(n); seed++ {
				rep := sim.Run(s.Config, seed, nil)
				for e := range rep.Coverage {
					reached[e] = true
				}
				if !rep.OK {
					t.Errorf("seed %d: %s (replay: go run ./cmd/multiraft sim --scenario %s --seed %d)",
						seed, rep.Violation, s.Name, seed)
					for _, v := range rep.Violations[1:] {
						t.Logf("  also: %s", v)
					}
					continue
				}
				if minOps := minOps(s.Name); rep.OpsTotal < minOps {
					t.Errorf("seed %d: only %d client ops, want at least %d", seed, rep.OpsTotal, minOps)
				}
				if minSim := minSimMs(s.Name); rep.SimMs < minSim {
					t.Errorf("seed %d: simulated %.0f ms, want at least %.0f s", seed, rep.SimMs, minSim/1000)
				}
				worstElect = max(worstElect, rep.LeaderElectMsMax)
				corrupted += rep.ChunksCorrupted
				deposedReads += rep.DeposedReads
				staleVoters += staleVoterReached(rep)
				if s.Name == "client-clock-ahead" {
					checkClockRefusalApplied(t, seed, rep)
				}
				// An initialized peer of a fresh split must ask PD before
				// PD hears of the split, in every seed: what the scenario
				// is for.
				if s.Name == "pd-behind-split" && rep.Coverage[buggify.PeerUnknownToPD.String()] == 0 {
					t.Errorf("seed %d: no initialized peer was told by PD that it knows no such region (%s)", seed, buggify.PeerUnknownToPD)
				}
				if strings.HasPrefix(s.Name, "split") && s.Name != "split-and-move" {
					checkSplitRun(t, s.Name, seed, rep)
				}
				checkMoveRun(t, s.Name, seed, rep)
				checkExactlyOnce(t, s.Name, seed, rep)
			}
			t.Logf("%s: %d seeds, slowest first leader %.0f ms, %d reads at deposed leaders", s.Name, n, worstElect, deposedReads)
			// The probe must reach the case this scenario is for: a leader
			// cut off from its peers while a new one leads (sim/deposed.go).
			if s.Name == "static-partition" && deposedReads == 0 {
				t.Errorf("no read was sent to a deposed leader in %d seeds", n)
			}
			// And a corrupted snapshot chunk must arrive (and be refused:
			// the runs pass).
			if s.Name == "move-crash" && corrupted == 0 {
				t.Errorf("no snapshot chunk arrived corrupted in %d seeds", n)
			}
			// And a voter left behind a move must reach the store the
			// move emptied, after it removed its peer (its campaign is
			// refused by the tombstone: the runs pass).
			if s.Name == "stale-voter" && staleVoters < n {
				t.Errorf("a stale voter reached the removed peer's store %d times in %d seeds, want one a seed", staleVoters, n)
			}
			if n >= coverageSeeds || s.Name == "many-regions" {
				checkScenarioCoverage(t, s.Name, n, reached)
			}
		})
	}
}

// staleVoterReached counts the moves of a stale-voter run whose stale
// voter was let reach the source's store once the source had removed its
// peer: the situation the scenario is for.
func staleVoterReached(rep *sim.Report) int {
	n := 0
	for _, a := range rep.FaultActions() {
		if a.Name == "on peer destroyed" && a.Effective() {
			n++
		}
	}
	return n
}

// checkClockRefusalApplied holds a client-clock-ahead run to the situation
// it is for, in every seed: a write refused as started too far ahead of
// its region's clock after an earlier attempt of it timed out, and a write
// a replica applied after such a refusal had reached its client (a client
// that called it failed would be caught: its value, or the version it
// made, is seen).
func checkClockRefusalApplied(t *testing.T, seed uint64, rep *sim.Report) {
	t.Helper()
	if rep.Coverage["client.clock-refusal-after-timeout"] == 0 {
		t.Errorf("seed %d: no write was refused as clock dependent after an earlier attempt of it timed out", seed)
	}
	if rep.ClockRefusedApplied == 0 {
		t.Errorf("seed %d: no write was applied after a clock-dependent refusal of it reached its client (%d such refusals)", seed, rep.ClockRefusals)
	}
}

// minOps is the fewest client operations a run of scenario name must
// complete. A swarm seed may draw a small cluster, few clients with long
// think times and faults that keep it without a quorum most of the time:
// it must still get some work done.
func minOps(name string) int {
	switch name {
	case "swarm":
		return 100
	case "slow-follower": // 10 s; fewer when the slow store leads
		return 500
	}
	return 2000
}

// minSimMs is the simulated time a run of the scenario must cover: a
// minute, but slow-follower's 10 s (it checks a steady state, every
// snapshot is a failure, and it must stay cheap in CI).
func minSimMs(name string) float64 {
	if name == "slow-follower" {
		return 10_000
	}
	return 60_000
}

// checkSplitRun holds the Phase 2 scenarios to their promises: at least
// four splits in the split scenario (three where faults slow the writers
// down); in the fault-free split scenario (SC-003) every new region
// registered at PD within 60 simulated seconds of its split being due and
// write success at or above 99%.
func checkSplitRun(t *testing.T, name string, seed uint64, rep *sim.Report) {
	t.Helper()
	want := 4
	if name != "split" {
		want = 3
	}
	if rep.Splits < want {
		t.Errorf("seed %d: only %d splits, want at least %d", seed, rep.Splits, want)
	}
	if name != "split" {
		return
	}
	if rep.SplitRegisterMsMax <= 0 || rep.SplitRegisterMsMax > 60_000 {
		t.Errorf("seed %d: a split took %.0f ms to reach PD", seed, rep.SplitRegisterMsMax)
	}
	if rep.WriteSuccessRatio < 0.99 {
		t.Errorf("seed %d: write success %.4f (%d of %d), want >= 0.99", seed, rep.WriteSuccessRatio, rep.WritesAcked, rep.WritesIssued)
	}
}

// checkMoveRun holds the Phase 3 scenarios to their promises. In move
// (SC-004) every move finishes within 5 simulated minutes, write success
// stays at or above 99% and the final placement is balanced (replica counts
// per store differ by at most one). Where stores join, leave or die, the
// replicas end where they should.
func checkMoveRun(t *testing.T, name string, seed uint64, rep *sim.Report) {
	t.Helper()
	counts := func(stores ...string) (lo, hi int) {
		lo = 1 << 30
		for _, s := range stores {
			n := rep.ReplicasPerStore[s]
			lo, hi = min(lo, n), max(hi, n)
		}
		return lo, hi
	}
	switch name {
	case "move":
		if rep.Moves < 3 || rep.MoveMsMax <= 0 || rep.MoveMsMax > 5*60*1000 {
			t.Errorf("seed %d: %d moves, the longest %.0f ms: want at least 3, each within 5 minutes", seed, rep.Moves, rep.MoveMsMax)
		}
		if rep.WriteSuccessRatio < 0.99 {
			t.Errorf("seed %d: write success %.4f during moves, want >= 0.99", seed, rep.WriteSuccessRatio)
		}
		if lo, hi := counts("1", "2", "3", "4"); hi-lo > 1 {
			t.Errorf("seed %d: replicas per store %v: not balanced", seed, rep.ReplicasPerStore)
		}
	case "scale-out":
		if lo, hi := counts("1", "2", "3", "4", "5"); lo == 0 || hi-lo > 1 {
			t.Errorf("seed %d: replicas per store %v: the new stores were not filled evenly", seed, rep.ReplicasPerStore)
		}
	case "decommission":
		if lo, _ := counts("1", "2", "3", "4"); lo != 0 {
			t.Errorf("seed %d: replicas per store %v: the decommissioned store still holds replicas", seed, rep.ReplicasPerStore)
		}
	case "store-down":
		if rep.Moves == 0 {
			t.Errorf("seed %d: the dead store's replicas were not re-created", seed)
		}
	}
	if strings.HasPrefix(name, "move") || name == "store-down" || name == "split-and-move" {
		if rep.SnapshotsSent == 0 || rep.Tombstones == 0 {
			t.Errorf("seed %d: %d snapshots sent, %d peers destroyed: the scenario moved nothing", seed, rep.SnapshotsSent, rep.Tombstones)
		}
	}
}

// checkExactlyOnce: with client sessions a write whose answer is lost is
// retried until it is answered, so under crashes and partitions that leave
// a quorum up, writes succeed at 99.9% or better (an ambiguous write counts
// against it). The fault plans of these scenarios keep a quorum of every
// region up (split-crash crashes a store only while the others are up: when
// it did not, seed 4 kept a region without quorum for most of ten seconds
// and three writes ended past their deadline). The five-replica variants
// are left out: they lose quorum for longer (three of five stores down at
// once).
func checkExactlyOnce(t *testing.T, name string, seed uint64, rep *sim.Report) {
	t.Helper()
	switch {
	case name == "static-crash", name == "static-partition", name == "split-crash", name == "split-partition",
		strings.HasPrefix(name, "quiet-"), name == "many-regions",
		strings.HasPrefix(name, "move"), name == "store-down", name == "split-and-move":
		if rep.WriteSuccessRatio < 0.999 {
			t.Errorf("seed %d: write success %.4f (%d of %d; %d ambiguous ops, %d writes past their deadline), want >= 0.999",
				seed, rep.WriteSuccessRatio, rep.WritesAcked, rep.WritesIssued, rep.OpsAmbiguous, rep.WritesPastDeadline)
		}
	}
}

// TestStaticRejectsEveryMisroutedRequest is SC-002: in the static scenario
// every probe (key outside the region, unknown region id, wrong epoch) is
// refused, stray raft messages create nothing, and every region elects a
// leader well within 60 simulated seconds.
func TestStaticRejectsEveryMisroutedRequest(t *testing.T) {
	s, err := Get("static")
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 5; seed++ {
		rep := sim.Run(s.Config, seed, nil)
		if !rep.OK {
			t.Fatalf("seed %d: %s", seed, rep.Violation)
		}
		if rep.ProbesSent < 100 {
			t.Fatalf("seed %d: only %d probes sent", seed, rep.ProbesSent)
		}
		// Probes lost to the network get no answer; every answer must be a refusal.
		if rep.ProbesRejected < rep.ProbesSent*9/10 {
			t.Errorf("seed %d: %d of %d probes answered with a refusal", seed, rep.ProbesRejected, rep.ProbesSent)
		}
		if rep.UnknownRegionMsgs == 0 {
			t.Errorf("seed %d: stray raft messages never reached a store", seed)
		}
		// Every answer to an invalid request is InvalidRequest (the run
		// passed); here, nearly every one was answered.
		if rep.InvalidProbesSent < 200 || rep.InvalidProbesRefused < rep.InvalidProbesSent*9/10 {
			t.Errorf("seed %d: %d of %d invalid requests refused", seed, rep.InvalidProbesRefused, rep.InvalidProbesSent)
		}
		if rep.LeaderElectMsMax <= 0 || rep.LeaderElectMsMax > 60_000 {
			t.Errorf("seed %d: slowest first leader after %.0f ms", seed, rep.LeaderElectMsMax)
		}
	}
}

// TestDeterminism runs every scenario twice with the same seed, once with
// raft messages handed over as copies and once decoded from their bytes:
// the traces must hash the same. A third run with another seed must differ. The
// workloads are cut to 20 simulated seconds (15 for many regions): the
// same code paths and faults, a third of the time (TestScenarios runs the
// full length, and the sweeps compare hashes of full runs).
func TestDeterminism(t *testing.T) {
	for _, s := range All() {
		t.Run(s.Name, func(t *testing.T) {
			s.Config.Duration = min(s.Config.Duration, 20*time.Second)
			if len(s.Config.SplitKeys) > 100 {
				s.Config.Duration = 15 * time.Second
			}
			a := sim.Run(s.Config, 7, nil)
			// The second run decodes every message from its bytes, where
			// the first hands raft messages over as copies.
			decoding := s.Config
			decoding.CheckWireCopies = true
			b := sim.Run(decoding, 7, nil)
			if a.TraceHash != b.TraceHash || a.OpsTotal != b.OpsTotal || a.Events != b.Events {
				t.Fatalf("seed 7 twice (copies, then decoded messages): hash %s vs %s, ops %d vs %d, events %d vs %d",
					a.TraceHash, b.TraceHash, a.OpsTotal, b.OpsTotal, a.Events, b.Events)
			}
			c := sim.Run(s.Config, 8, nil)
			if c.TraceHash == a.TraceHash {
				t.Fatalf("seeds 7 and 8 gave the same trace hash %s", a.TraceHash)
			}
		})
	}
}

func TestGetUnknownScenario(t *testing.T) {
	if _, err := Get("no-such"); err == nil {
		t.Fatal("Get of an unknown scenario succeeded")
	} else if want := fmt.Sprintf("%q", "no-such"); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the scenario", err)
	}
}

// TestPDStateWritesAreNeverSkipped runs scenarios whose PD splits, moves,
// decommissions and replaces, with a PD disk and every skipped state write
// checked: PD writes its state only after a change it noted (region
// heartbeats that change nothing durable write nothing), and a change it
// failed to note would be lost on a PD restart. The check panics on one.
func TestPDStateWritesAreNeverSkipped(t *testing.T) {
	pd.VerifyStateWrites(true)
	defer pd.VerifyStateWrites(false)
	for _, name := range []string{"split-crash", "split-and-move", "decommission", "store-down", "scale-out"} {
		s, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.Config
		cfg.PDDisk = true
		if rep := sim.Run(cfg, 1, nil); !rep.OK {
			t.Errorf("%s seed 1: %s", name, rep.Violation)
		}
	}
}
