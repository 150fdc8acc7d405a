package sim

import (
	"time"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
)

// metrics is what a run measures for its report: when regions appeared and
// first elected a leader, how long splits took, and fault counters. The
// stores' hooks, PD observations and fault handling feed it; nothing in the
// simulation reads it, only the end-of-run checks and the report.
type metrics struct {
	born        map[uint64]time.Duration   // region id -> when it appeared (0: initial layout)
	firstLeader map[uint64]time.Duration   // region id -> when a peer first learned of a leader
	splitDue    map[splitKey]time.Duration // when a leader first decided to split a region
	// Per split: from due to the new region registered at PD, and to the
	// first replica applying it.
	splitRegister, splitApply []time.Duration

	// Operators by how they ended, and how long each finished move took
	// (from its start to its last step done).
	opsStarted, opsFinished, opsTimedOut, opsCancelled int
	opStart                                            map[uint64]time.Duration
	moveDurations                                      []time.Duration

	snapshotsSent  int    // snapshot transfers completed
	snapshotBytes  uint64 // bytes of keys and values they carried
	peersDestroyed int    // peers removed from their region and tombstoned

	crashes      int    // stores crashed, by the plan or by a disk failure
	diskFailures int    // ready rounds failed by the disk
	tornTailCuts uint64 // torn WAL tails cut while stores recovered
	corrupted    int    // snapshot chunks corrupted on arrival

	livenessProbes int // regions written and read back in the liveness phase

	// Workload writes that ended without an answer because their deadline
	// passed (the region had no quorum for that long): unavailability, as
	// opposed to a write lost or left unknown while its region could serve.
	writesPastDeadline int

	// Clock-dependent refusals (a write started more than the session
	// lifetime ahead of its region's clock) that reached a client, and the
	// writes a replica applied after such a refusal reached their client.
	clockRefusals, clockRefusedApplied int
}

// splitKey names a region at one epoch version.
type splitKey struct{ region, version uint64 }

func newMetrics() *metrics {
	return &metrics{
		born:        map[uint64]time.Duration{},
		firstLeader: map[uint64]time.Duration{},
		splitDue:    map[splitKey]time.Duration{},
		opStart:     map[uint64]time.Duration{},
	}
}

// operator records an operator event of PD's.
func (m *metrics) operator(e pd.OperatorEvent, at time.Duration) {
	id := e.Op.ID
	switch e.Event {
	case pd.OpStarted:
		m.opsStarted++
		m.opStart[id] = at
	case pd.OpFinished:
		m.opsFinished++
		if e.Op.Kind == pd.OpMoveReplica || e.Op.Kind == pd.OpReplaceReplica || e.Op.Kind == pd.OpAddReplica {
			m.moveDurations = append(m.moveDurations, at-m.opStart[id])
		}
		delete(m.opStart, id)
	case pd.OpTimedOut:
		m.opsTimedOut++
		delete(m.opStart, id)
	case pd.OpCancelled:
		m.opsCancelled++
		delete(m.opStart, id)
	}
}

// initialRegion records a region of the initial layout, born at the start.
func (m *metrics) initialRegion(id uint64) { m.born[id] = 0 }

// leaderChanged records a peer of region learning of leader (0: none).
func (m *metrics) leaderChanged(region, leader uint64, at time.Duration) {
	if leader == 0 {
		return
	}
	if _, ok := m.firstLeader[region]; !ok {
		m.firstLeader[region] = at
	}
}

// splitBecameDue records a leader deciding to split region at version.
func (m *metrics) splitBecameDue(region, version uint64, at time.Duration) {
	key := splitKey{region, version}
	if _, ok := m.splitDue[key]; !ok {
		m.splitDue[key] = at
	}
}

// splitApplied records a replica applying a split: the first to apply it
// gives the right region its birth and the split its apply latency.
func (m *metrics) splitApplied(left, right *pb.Region, at time.Duration) {
	if _, ok := m.born[right.GetId()]; ok {
		return
	}
	m.born[right.GetId()] = at
	if due, ok := m.splitDue[splitKey{left.GetId(), left.GetEpoch().GetVersion() - 1}]; ok {
		m.splitApply = append(m.splitApply, at-due)
	}
}

// pdRegistered records PD showing region r for the first time, with left
// its left neighbour (nil for the first region). A region no replica has
// applied yet is born now. A new region is the right half of a split of its
// left neighbour at the version before the split: that split's
// registration latency ends now.
func (m *metrics) pdRegistered(r, left *pb.Region, at time.Duration) {
	if _, ok := m.born[r.GetId()]; !ok {
		m.born[r.GetId()] = at
	}
	if left == nil {
		return
	}
	if due, ok := m.splitDue[splitKey{left.GetId(), r.GetEpoch().GetVersion() - 1}]; ok {
		m.splitRegister = append(m.splitRegister, at-due)
	}
}
