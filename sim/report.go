package sim

import (
	"fmt"
	"time"

	"github.com/multiraft/multiraft/checker"
)

// Report is the outcome of one run.
type Report struct {
	Scenario           string   `json:"scenario"`
	Seed               uint64   `json:"seed"`
	OK                 bool     `json:"ok"`
	Violation          string   `json:"violation"`
	Violations         []string `json:"violations,omitempty"`
	OpsTotal           int      `json:"ops_total"`
	OpsOK              int      `json:"ops_ok"`
	OpsFailed          int      `json:"ops_failed"`
	OpsAmbiguous       int      `json:"ops_ambiguous"`
	OpsChecked         int      `json:"ops_checked"`
	RegionsInitial     int      `json:"regions_initial"`
	RegionsFinal       int      `json:"regions_final"`
	LeaderElectMsMax   float64  `json:"leader_elect_ms_max"`
	SimMs              float64  `json:"sim_ms"`
	WallMs             float64  `json:"wall_ms"`
	SimWallMs          float64  `json:"sim_wall_ms"`   // wall time of the simulation alone
	CheckWallMs        float64  `json:"check_wall_ms"` // wall time of the linearizability check
	TraceHash          string   `json:"trace_hash"`
	Events             uint64   `json:"events"`
	Crashes            int      `json:"crashes"`
	DiskFailures       int      `json:"disk_failures"`
	ProbesSent         int      `json:"probes_sent"`
	ProbesRejected     int      `json:"probes_rejected"`
	UnknownRegionMsgs  uint64   `json:"unknown_region_msgs"`
	Splits             int      `json:"splits"`
	SplitRegisterMsMax float64  `json:"split_register_ms_max"`
	SplitApplyMsMax    float64  `json:"split_apply_ms_max"`
	SplitApplyMsMean   float64  `json:"split_apply_ms_mean"`
	WriteRateAvg       float64  `json:"write_rate_avg"`       // acknowledged writes per simulated second, workload phase
	WriteRateSplitMin  float64  `json:"write_rate_split_min"` // lowest rate over the second after a split applied
	WritesIssued       int      `json:"writes_issued"`
	WritesAcked        int      `json:"writes_acked"`
	WriteSuccessRatio  float64  `json:"write_success_ratio"`
	SnapshotsApplied   uint64   `json:"snapshots_applied"`
	SnapshotsRefused   uint64   `json:"snapshots_refused"`
	PlaceholderPeers   uint64   `json:"placeholder_peers"`
	PlaceholdersTaken  uint64   `json:"placeholders_taken_over"`
	TornTailCuts       uint64   `json:"torn_tail_cuts"`

	lin checker.Result
	ann []checker.Annotation
}

// WriteVisualization writes porcupine's HTML view of the history to path.
func (r *Report) WriteVisualization(path string) error {
	return r.lin.WriteVisualization(path, r.ann)
}

// LinearizabilityFailed reports whether the history check failed (so a
// visualization is worth writing).
func (r *Report) LinearizabilityFailed() bool { return !r.lin.OK }

// linearizabilityTimeout is porcupine's wall-clock budget per run.
const linearizabilityTimeout = 2 * time.Minute

func (w *World) finish() *Report {
	rep := &Report{
		Scenario:     w.cfg.Name,
		Seed:         w.seed,
		SimMs:        float64(w.k.now) / 1e6,
		TraceHash:    fmt.Sprintf("%016x", w.k.hash.Sum64()),
		Events:       w.k.events,
		Crashes:      w.crashes,
		DiskFailures: w.diskFailures,
		ann:          w.annotations,
	}
	if w.pd != nil {
		rep.RegionsInitial = len(w.cfg.SplitKeys) + 1
		rep.RegionsFinal = len(w.pd.Regions())
		w.checkInvariants()
		if w.probe != nil {
			w.probe.checkNoGhostRegions()
			rep.ProbesSent, rep.ProbesRejected = w.probe.sent, w.probe.rejected
		}
		for _, n := range w.stores {
			if n.up() {
				st := n.st.Stats()
				rep.UnknownRegionMsgs += st.UnknownRegionMsgs
				rep.SnapshotsApplied += st.SnapshotsApplied
				rep.SnapshotsRefused += st.SnapshotsRefused
				rep.PlaceholderPeers += st.PlaceholderPeers
				rep.PlaceholdersTaken += st.PlaceholdersTakenOver
			}
		}
		for _, r := range w.pd.Regions() {
			born := w.regionBorn[r.GetId()]
			first, ok := w.firstLeader[r.GetId()]
			if !ok {
				w.violate(fmt.Sprintf("region %d never elected a leader", r.GetId()))
				continue
			}
			if ms := float64(first-born) / 1e6; ms > rep.LeaderElectMsMax {
				rep.LeaderElectMsMax = ms
			}
		}
	}
	rep.SimWallMs = float64(w.simWall.Microseconds()) / 1000
	rep.TornTailCuts = w.tornTailCuts
	rep.Splits = rep.RegionsFinal - rep.RegionsInitial
	for _, d := range w.splitLatency {
		rep.SplitRegisterMsMax = max(rep.SplitRegisterMsMax, float64(d)/1e6)
	}
	for _, d := range w.splitApplyLatency {
		rep.SplitApplyMsMax = max(rep.SplitApplyMsMax, float64(d)/1e6)
		rep.SplitApplyMsMean += float64(d) / 1e6 / float64(len(w.splitApplyLatency))
	}
	rep.WriteRateAvg, rep.WriteRateSplitMin = w.writeRates()
	for _, op := range w.history {
		if op.Kind == checker.OpPut || op.Kind == checker.OpDelete || op.Kind == checker.OpCas {
			rep.WritesIssued++
			if op.Outcome == checker.OutcomeOK {
				rep.WritesAcked++
			}
		}
		rep.OpsTotal++
		switch op.Outcome {
		case checker.OutcomeOK:
			rep.OpsOK++
		case checker.OutcomeFailed:
			rep.OpsFailed++
		default:
			rep.OpsAmbiguous++
		}
	}
	if len(w.history) > 0 {
		var t0 time.Time
		if w.wall != nil {
			t0 = w.wall()
		}
		rep.lin = checker.CheckLinearizable(checker.History{Ops: w.history, Keys: w.keys}, linearizabilityTimeout)
		if w.wall != nil {
			rep.CheckWallMs = float64(w.wall().Sub(t0).Microseconds()) / 1000
		}
		rep.OpsChecked = rep.lin.Ops
		if !rep.lin.OK {
			w.violations = append([]string{rep.lin.Violation}, w.violations...)
		}
	} else {
		rep.lin.OK = true
		w.violations = append(w.violations, "no client operations ran")
	}
	if rep.WritesIssued > 0 {
		rep.WriteSuccessRatio = float64(rep.WritesAcked) / float64(rep.WritesIssued)
	}
	rep.Violations = w.violations
	rep.OK = len(w.violations) == 0
	if !rep.OK {
		rep.Violation = w.violations[0]
	}
	return rep
}

// writeRates returns the acknowledged write rate over the workload phase,
// and the lowest rate over the second that follows any split's first apply.
func (w *World) writeRates() (avg, splitMin float64) {
	var acks []time.Duration
	for _, op := range w.history {
		if op.Outcome == checker.OutcomeOK && (op.Kind == checker.OpPut || op.Kind == checker.OpDelete || op.Kind == checker.OpCas) &&
			time.Duration(op.Return) <= w.cfg.Duration {
			acks = append(acks, time.Duration(op.Return))
		}
	}
	if w.cfg.Duration > 0 {
		avg = float64(len(acks)) / w.cfg.Duration.Seconds()
	}
	splitMin = -1
	for id, born := range w.regionBorn {
		if born == 0 || born+time.Second > w.cfg.Duration {
			continue
		}
		_ = id
		n := 0
		for _, a := range acks {
			if a >= born && a < born+time.Second {
				n++
			}
		}
		if splitMin < 0 || float64(n) < splitMin {
			splitMin = float64(n)
		}
	}
	if splitMin < 0 {
		splitMin = 0
	}
	return avg, splitMin
}
