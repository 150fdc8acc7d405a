package sim

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multiraft/multiraft/checker"
)

// Report is the outcome of one run.
type Report struct {
	Scenario     string   `json:"scenario"`
	Seed         uint64   `json:"seed"`
	Mix          string   `json:"mix,omitempty"` // what the seed drew (Config.PerSeed)
	OK           bool     `json:"ok"`
	Violation    string   `json:"violation"`
	Violations   []string `json:"violations,omitempty"`
	OpsTotal     int      `json:"ops_total"`
	OpsOK        int      `json:"ops_ok"`
	OpsFailed    int      `json:"ops_failed"`
	OpsAmbiguous int      `json:"ops_ambiguous"`
	// Of the ambiguous writes, those some replica applied (checked as
	// taking effect by then) and those none did (checked as failed).
	AmbiguousApplied      int     `json:"ambiguous_applied"`
	AmbiguousNeverApplied int     `json:"ambiguous_never_applied"`
	OpsChecked            int     `json:"ops_checked"`
	RegionsInitial        int     `json:"regions_initial"`
	RegionsFinal          int     `json:"regions_final"`
	LeaderElectMsMax      float64 `json:"leader_elect_ms_max"`
	SimMs                 float64 `json:"sim_ms"`
	WallMs                float64 `json:"wall_ms"`
	SimWallMs             float64 `json:"sim_wall_ms"`   // wall time of the simulation alone
	CheckWallMs           float64 `json:"check_wall_ms"` // wall time of the linearizability check
	TraceHash             string  `json:"trace_hash"`
	Events                uint64  `json:"events"`
	Crashes               int     `json:"crashes"`
	LivenessProbes        int     `json:"liveness_probes"` // regions written and read back at the end
	DiskFailures          int     `json:"disk_failures"`
	ProbesSent            int     `json:"probes_sent"`
	ProbesRejected        int     `json:"probes_rejected"`
	InvalidProbesSent     int     `json:"invalid_probes_sent"`    // requests of invalid input (badinput.go)
	InvalidProbesRefused  int     `json:"invalid_probes_refused"` // of which answered with a refusal
	DeposedReads          int     `json:"deposed_reads"`          // reads at peers leading at an older term than a newer leader
	DeposedReadsServed    int     `json:"deposed_reads_served"`   // of which answered (and checked)
	UnknownRegionMsgs     uint64  `json:"unknown_region_msgs"`
	Splits                int     `json:"splits"`
	SplitRegisterMsMax    float64 `json:"split_register_ms_max"`
	SplitApplyMsMax       float64 `json:"split_apply_ms_max"`
	SplitApplyMsMean      float64 `json:"split_apply_ms_mean"`
	WriteRateAvg          float64 `json:"write_rate_avg"`       // acknowledged writes per simulated second, workload phase
	WriteRateSplitMin     float64 `json:"write_rate_split_min"` // lowest rate over the second after a split applied
	WritesIssued          int     `json:"writes_issued"`
	WritesAcked           int     `json:"writes_acked"`
	WriteSuccessRatio     float64 `json:"write_success_ratio"`
	// Writes that ended Failed or Ambiguous only because their deadline
	// passed: their region could not commit for that long.
	WritesPastDeadline int     `json:"writes_past_deadline"`
	SnapshotsApplied   uint64  `json:"snapshots_applied"`
	SnapshotsRefused   uint64  `json:"snapshots_refused"`
	PlaceholderPeers   uint64  `json:"placeholder_peers"`
	PlaceholdersTaken  uint64  `json:"placeholders_taken_over"`
	TornTailCuts       uint64  `json:"torn_tail_cuts"`
	ChunksCorrupted    int     `json:"chunks_corrupted"`
	SnapshotsSent      int     `json:"snapshots_sent"` // streamed transfers completed
	SnapshotBytes      uint64  `json:"snapshot_bytes"`
	Tombstones         int     `json:"tombstones"`  // peers removed from their region and destroyed
	Moves              int     `json:"moves"`       // replica moves (and adds, replaces) PD finished
	MoveMsMax          float64 `json:"move_ms_max"` // the longest, from its operator's start to done
	OperatorsStarted   int     `json:"operators_started"`
	OperatorsFinished  int     `json:"operators_finished"`
	OperatorsTimedOut  int     `json:"operators_timed_out"`
	OperatorsCancelled int     `json:"operators_cancelled"`
	// ReplicasPerStore counts, in PD's final view, the peers on each store
	// (store ids as strings, for JSON).
	ReplicasPerStore map[string]int `json:"replicas_per_store,omitempty"`
	// Hooks says which fault hooks the run enabled and how often each
	// fired (nil: none enabled); Coverage counts the dangerous events the
	// run reached, by name (core/buggify).
	Hooks    *HookReport       `json:"hooks,omitempty"`
	Coverage map[string]uint64 `json:"coverage,omitempty"`

	// Refusals of a write as started more than the session lifetime ahead
	// of its region's clock (clock dependent) that reached a client, and
	// the writes a replica applied after such a refusal had reached their
	// client (Config.ClientClockSkew).
	ClockRefusals       int `json:"clock_refusals,omitempty"`
	ClockRefusedApplied int `json:"clock_refused_applied,omitempty"`

	lin     checker.Result
	ann     []checker.Annotation
	actions []FaultAction
}

// FaultActions lists the fault plan's actions of the run by index: what
// each was planned to do, when, and what it did.
func (r *Report) FaultActions() []FaultAction { return r.actions }

// FailedKeys lists, sorted, the keys whose history is not linearizable.
func (r *Report) FailedKeys() []string { return r.lin.FailedKeys }

// WriteVisualization writes porcupine's HTML view of the history to path.
func (r *Report) WriteVisualization(path string) error {
	return r.lin.WriteVisualization(path, r.ann)
}

// firstLine is the first line of a (violation) message.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// LinearizabilityFailed reports whether the history check failed (so a
// visualization is worth writing).
func (r *Report) LinearizabilityFailed() bool { return !r.lin.OK }

// summarize builds the report of a checked run from its trace hash, the
// metrics, the history, the linearizability result and the violations.
func (w *World) summarize(traceHash string, lin checker.Result) *Report {
	m := w.metrics
	rep := &Report{
		Scenario:       w.cfg.Name,
		Seed:           w.seed,
		Mix:            w.cfg.Mix,
		SimMs:          float64(w.k.now) / 1e6,
		TraceHash:      traceHash,
		Events:         w.k.events,
		Crashes:        m.crashes,
		LivenessProbes: m.livenessProbes,
		DiskFailures:   m.diskFailures,
		TornTailCuts:   m.tornTailCuts,
		SnapshotsSent:  m.snapshotsSent,
		SnapshotBytes:  m.snapshotBytes,
		Tombstones:     m.peersDestroyed,
		Moves:          len(m.moveDurations),

		OperatorsStarted:   m.opsStarted,
		OperatorsFinished:  m.opsFinished,
		OperatorsTimedOut:  m.opsTimedOut,
		OperatorsCancelled: m.opsCancelled,
		ChunksCorrupted:    m.corrupted,
		lin:                lin,
		ann:                w.annotations,
		actions:            w.actions,
		Hooks:              hookReport(w.bug),
		Coverage:           coverageReport(w.bug),
	}
	if w.pd != nil {
		rep.RegionsInitial = len(w.cfg.SplitKeys) + 1
		rep.RegionsFinal = len(w.pd.Regions())
		if w.probe != nil {
			rep.ProbesSent, rep.ProbesRejected = w.probe.sent, w.probe.rejected
			rep.InvalidProbesSent, rep.InvalidProbesRefused = w.probe.invalidSent, w.probe.invalidRefused
			rep.DeposedReads, rep.DeposedReadsServed = w.probe.deposedSent, w.probe.deposedServed
		}
		w.addStoreStats(rep)
		rep.ReplicasPerStore = map[string]int{}
		for _, r := range w.pd.Regions() {
			for _, p := range r.GetPeers() {
				rep.ReplicasPerStore[strconv.FormatUint(p.GetStoreId(), 10)]++
			}
		}
		for _, r := range w.pd.Regions() {
			if first, ok := m.firstLeader[r.GetId()]; ok {
				rep.LeaderElectMsMax = max(rep.LeaderElectMsMax, float64(first-m.born[r.GetId()])/1e6)
			}
		}
	}
	rep.Splits = rep.RegionsFinal - rep.RegionsInitial
	for _, d := range m.splitRegister {
		rep.SplitRegisterMsMax = max(rep.SplitRegisterMsMax, float64(d)/1e6)
	}
	for _, d := range m.moveDurations {
		rep.MoveMsMax = max(rep.MoveMsMax, float64(d)/1e6)
	}
	for _, d := range m.splitApply {
		rep.SplitApplyMsMax = max(rep.SplitApplyMsMax, float64(d)/1e6)
		rep.SplitApplyMsMean += float64(d) / 1e6 / float64(len(m.splitApply))
	}
	rep.WriteRateAvg, rep.WriteRateSplitMin = writeRates(w.history, m.born, w.cfg.Duration)
	countOps(rep, w.history)
	rep.WritesPastDeadline = w.metrics.writesPastDeadline
	rep.ClockRefusals, rep.ClockRefusedApplied = w.metrics.clockRefusals, w.metrics.clockRefusedApplied
	rep.AmbiguousApplied, rep.AmbiguousNeverApplied = w.ambiguousResolved()
	rep.OpsChecked = lin.Ops
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

// addStoreStats adds up the counters of the stores that are up.
func (w *World) addStoreStats(rep *Report) {
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
}

// countOps counts the history's operations by outcome, and its writes.
func countOps(rep *Report, history []checker.Op) {
	for _, op := range history {
		if isWrite(op) {
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
}

func isWrite(op checker.Op) bool {
	return op.Kind == checker.OpPut || op.Kind == checker.OpDelete || op.Kind == checker.OpCas
}

// writeRates returns the acknowledged write rate over the workload phase,
// and the lowest rate over the second that follows the birth of any region
// born by a split at least a second before the workload ended.
func writeRates(history []checker.Op, born map[uint64]time.Duration, workload time.Duration) (avg, splitMin float64) {
	var acks []time.Duration
	for _, op := range history {
		if op.Outcome == checker.OutcomeOK && isWrite(op) && time.Duration(op.Return) <= workload {
			acks = append(acks, time.Duration(op.Return))
		}
	}
	if workload > 0 {
		avg = float64(len(acks)) / workload.Seconds()
	}
	splitMin = -1
	for _, id := range slices.Sorted(maps.Keys(born)) {
		b := born[id]
		if b == 0 || b+time.Second > workload {
			continue
		}
		n := 0
		for _, a := range acks {
			if a >= b && a < b+time.Second {
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

// stopwatch is the wall clock a command may give a run to time it; a nil
// stopwatch measures nothing. The simulation never reads it.
type stopwatch func() time.Time

// time runs fn and returns how long it took (0 for a nil stopwatch).
func (s stopwatch) time(fn func()) time.Duration {
	if s == nil {
		fn()
		return 0
	}
	start := s()
	fn()
	return s().Sub(start)
}

// wallMs is d in milliseconds, to the microsecond.
func wallMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
