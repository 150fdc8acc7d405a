package sim

import (
	"bytes"
	cryptorand "crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/multiraft/multiraft/core/client"
	"github.com/multiraft/multiraft/core/pb"
)

// runLock serialises runs: a run replaces crypto/rand.Reader.
var runLock sync.Mutex

// Run executes one simulation and checks it.
func Run(cfg Config, seed uint64, trace io.Writer) *Report {
	return RunWith(cfg, seed, Options{Trace: trace})
}

// RunTimed is Run with a stopwatch: when wall is not nil (the command
// passes time.Now), the report says how long simulating and checking took.
// The simulation itself never reads it.
func RunTimed(cfg Config, seed uint64, trace io.Writer, wall func() time.Time) *Report {
	return RunWith(cfg, seed, Options{Trace: trace, Wall: wall})
}

// Options are what a run may produce besides its report. None of them
// changes the run: its trace hash is the same with or without them.
type Options struct {
	// Trace receives every event of the run, one line each.
	Trace io.Writer
	// Wall is a stopwatch (the command passes time.Now): the report then
	// says how long simulating and checking took.
	Wall func() time.Time
	// Timeline, when not nil, records the run for a picture of it
	// (Timeline.WriteHTML).
	Timeline *Timeline
}

// RunWith executes one simulation, checks it, and produces what opts ask
// for.
func RunWith(cfg Config, seed uint64, opts Options) *Report {
	runLock.Lock()
	defer runLock.Unlock()
	cfg = cfg.Resolve(seed)
	watch := stopwatch(opts.Wall)
	w := newWorld(cfg, seed, opts.Trace)
	w.tl = opts.Timeline
	simWall := watch.time(w.simulate)
	// The hash is taken before the checks: they note their violations in
	// the trace, after the end of the simulation.
	hash := w.k.traceHash()
	lin, checkWall := w.check(watch)
	rep := w.summarize(hash, lin)
	rep.SimWallMs = wallMs(simWall)
	rep.CheckWallMs = wallMs(checkWall)
	w.tl.finish(w, rep)
	return rep
}

// simulate runs the world through the phases of a run, with raft's random
// source replaced by the run's raft stream: boot, the workload (with its
// faults) and the settle, the final reads, the liveness phase, and a last
// round of heartbeats.
func (w *World) simulate() {
	saved := cryptorand.Reader
	cryptorand.Reader = w.rs.raft
	if w.cfg.Mix != "" {
		w.k.note("mix %s", w.cfg.Mix)
	}
	if w.boot() {
		w.runWorkload()
		w.awaitFinalReads()
		w.awaitLiveness()
		w.awaitHeartbeats()
	}
	cryptorand.Reader = saved
}

// runWorkload runs the workload phase, in which the faults happen, and the
// settle after it, healed; the final reads are submitted at its end.
func (w *World) runWorkload() {
	w.k.after(w.cfg.Duration, "workload over", w.endWorkload)
	w.k.runUntil(w.cfg.Duration + w.cfg.Settle)
}

// endWorkload stops the clients' workload, heals the network and the
// disks, restarts every crashed store and schedules the final reads.
func (w *World) endWorkload() {
	w.workloadOver = true
	w.bug.Stop() // no fault hook fires once the world is healed
	w.net.Heal()
	w.net.SetConfig(w.cfg.Net) // undo the plan's SetLoss
	w.annotate("faults", "heal all")
	w.tl.healed(w.k.now)
	for _, n := range w.stores {
		n.ffs.SetErrorRate(0)
		n.ffs.CrashAfter(-1)
		w.restartStore(n)
	}
	w.k.after(w.cfg.Settle, "final reads", w.finalReads)
}

// finalReads reads every key once, spread over the clients, so that the
// history ends with the state of every key.
func (w *World) finalReads() {
	if len(w.clients) == 0 {
		return
	}
	for i, key := range w.keys {
		c := w.clients[i%len(w.clients)]
		c.submit(client.Op{Kind: client.Get, Key: []byte(key)})
	}
}

// finalPhase bounds the final reads and convergence after Settle.
const finalPhase = 15 * time.Second

// GCPercent and GCMemoryLimit are the garbage collector's settings for
// simulation runs, which `multiraft sim` and the scenario tests use unless
// GOGC or GOMEMLIMIT say otherwise: a run allocates fast and holds little,
// so the collector runs when the heap has grown 16 times over what it
// held (a sixth of the collections of GOGC=400, an eighth of the CPU of
// `static` saved), or when the process reaches 1.5 GiB, whichever comes
// first (`many-regions` peaks at about 600 MB).
const (
	GCPercent     = 1600
	GCMemoryLimit = 3 << 29
)

// settleLimit bounds how much longer than finalPhase PD may go on starting
// operators after the workload, each finishing within finalPhase.
const settleLimit = 2 * time.Minute

// awaitFinalReads waits, checking every 100ms for at most finalPhase, for
// the final reads to be answered, every replica to catch up and PD's
// operators to finish (operators PD starts late get finalPhase from their
// start, within settleLimit more); any of them not happening is a
// violation.
func (w *World) awaitFinalReads() {
	deadline := w.k.now + finalPhase
	for w.k.now < deadline {
		w.k.advanceTo(w.k.now + 100*time.Millisecond)
		if w.clientsIdle() && w.converged() && w.operatorsDone() {
			break
		}
	}
	// PD may go on starting operators (its balancers act on what the
	// faults left: after a late crash, a thousand regions' leaders move
	// back a few at a time): each gets finalPhase from its start, and PD
	// up to settleLimit in all. An operator that ran longer is stuck.
	end := deadline + settleLimit
	for w.k.now < end && w.operatorsWaiting() {
		w.stepWhile(end, w.operatorsWaiting)
		// An operator that has just finished may leave a replica a commit
		// behind (many-regions seed 5 at c04897c: a transferred leader's
		// first entry reached the other stores 4 ms after the checks):
		// the replicas get the time they had after the workload.
		w.stepWhile(min(w.k.now+finalPhase, end), func() bool { return !w.converged() })
	}
	if !w.clientsIdle() {
		w.violate(fmt.Sprintf("client operations still pending %v after the final reads", finalPhase))
	}
	if why := w.divergence(); why != "" {
		w.violate(fmt.Sprintf("replicas did not converge within %v after the workload: %s", finalPhase, why))
	}
	if !w.operatorsDone() {
		w.opsReported = true
		w.violate(fmt.Sprintf("PD operators still running %v after the workload: %v", w.k.now-w.cfg.Duration-w.cfg.Settle, w.runningOperators()))
	}
}

// runningOperators lists PD's running operators for a violation.
func (w *World) runningOperators() []string {
	var ops []string
	for _, op := range w.pd.Operators() {
		ops = append(ops, fmt.Sprintf("%d (%v region %d, step %s)", op.ID, op.Kind, op.Region, op.Step))
	}
	return ops
}

// operatorsWaiting reports whether PD runs an operator that is still worth
// waiting for: every one it runs started less than finalPhase ago.
func (w *World) operatorsWaiting() bool { return !w.operatorsDone() && w.operatorsYoung() }

// stepWhile runs the world 100ms at a time while cond holds, until end.
func (w *World) stepWhile(end time.Duration, cond func() bool) {
	for w.k.now < end && cond() {
		w.k.advanceTo(w.k.now + 100*time.Millisecond)
	}
}

// operatorsYoung reports whether every operator PD is running started less
// than finalPhase ago.
func (w *World) operatorsYoung() bool {
	for _, op := range w.pd.Operators() {
		if w.k.Now().Sub(op.Start) >= finalPhase {
			return false
		}
	}
	return true
}

// awaitHeartbeats lets every leader report to PD once more, so that the
// checks compare PD's view with the stores' after it.
//
// PD schedules on through the liveness phase (its writes can split a
// region, and the region balancer then moves one, onto a joined store
// say), so an operator can be running when the heartbeats are in: the
// checks would then see a region in the middle of a move (swarm seeds 2353
// and 2899: a move's promote-demote applied, its remove-peer not yet
// ordered, and "region 20 ends with 3 voters among 4 peers"). Such an
// operator is waited for like those of the final phase (finalPhase from
// its start, PD up to settleLimit in all), the replicas are given
// finalPhase to converge, and the heartbeats are taken again; an operator
// still running after that is a violation (unless the final phase already
// reported one).
func (w *World) awaitHeartbeats() {
	end := w.k.now + settleLimit
	// Two heartbeat intervals (at least 100ms: a store may take its
	// interval from PD, and the loop below must move on).
	heartbeats := max(2*w.cfg.Store.RegionHeartbeatInterval, 100*time.Millisecond)
	w.k.advanceTo(w.k.now + heartbeats)
	// Again while PD runs an operator, or while the replicas have not
	// converged: an operator that finished inside the heartbeats just
	// taken can leave a replica one commit behind (swarm seed 8080 at
	// cb07019: the last step's entry reached two stores of three 16 ms
	// before the checks).
	// And while PD has not heard of a region as the stores hold it: a
	// split that applied inside the heartbeats is reported with the next
	// ones (swarm seed 635 at 7312cdb: the liveness phase's writes split a
	// region 300 ms before the checks). A report that never comes still
	// fails the checks, after settleLimit.
	for w.k.now < end && (!w.converged() || w.operatorsWaiting() || !w.pdCaughtUp()) {
		w.stepWhile(end, w.operatorsWaiting)
		w.stepWhile(w.k.now+finalPhase, func() bool { return !w.converged() })
		w.k.advanceTo(w.k.now + heartbeats)
	}
	if !w.operatorsDone() && !w.opsReported {
		w.violate(fmt.Sprintf("PD operators still running after the liveness phase: %v", w.runningOperators()))
	}
}

// pdCaughtUp reports whether PD knows every initialized region a running
// store holds, with the same range and epoch (what checkInvariants and
// checkMembers compare at the end).
func (w *World) pdCaughtUp() bool {
	if w.pd == nil {
		return true
	}
	known := map[uint64]*pb.Region{}
	for _, r := range w.pd.Regions() {
		known[r.GetId()] = r
	}
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions() {
			r := known[rs.Region.GetId()]
			if rs.Initialized && (r == nil || !r.GetEpoch().Equal(rs.Region.GetEpoch()) ||
				!bytes.Equal(r.GetStartKey(), rs.Region.GetStartKey()) || !bytes.Equal(r.GetEndKey(), rs.Region.GetEndKey())) {
				return false
			}
		}
	}
	return true
}

// converged reports whether every region's replicas applied the same index
// and all stores are up (but those killed for good and spare stores never
// added).
func (w *World) converged() bool { return w.divergence() == "" }

// divergence describes the first reason the replicas have not converged
// (a store down, a placeholder waiting for its snapshot, two replicas of a
// region at different applied indexes), or returns "" when they have.
func (w *World) divergence() string {
	type at struct{ store, applied uint64 }
	applied := map[uint64]at{}
	for _, n := range w.stores {
		if n.dead || !n.started {
			continue
		}
		if !n.up() {
			return fmt.Sprintf("store %d is down", n.id)
		}
		for _, rs := range n.st.Regions() {
			id := rs.Region.GetId()
			if !rs.Initialized {
				return fmt.Sprintf("region %d on store %d is a placeholder waiting for its snapshot", id, n.id)
			}
			if a, ok := applied[id]; ok && a.applied != rs.Applied {
				return fmt.Sprintf("region %d applied %d on store %d, %d on store %d", id, a.applied, a.store, rs.Applied, n.id)
			}
			applied[id] = at{n.id, rs.Applied}
		}
	}
	return ""
}

// operatorsDone reports whether PD has no operator running.
func (w *World) operatorsDone() bool { return w.pd == nil || len(w.pd.Operators()) == 0 }
