package pd

import (
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// checkReplicas is the replica checker: it walks the regions by id and
// starts at most opsPerRun repairs, one per region, on regions without an
// operator.
func (p *PD) checkReplicas() {
	made := 0
	for _, id := range p.regionIDs() {
		if made == opsPerRun {
			return
		}
		if p.ops[id] == nil && p.repair(p.view.known(id)) {
			made++
		}
	}
}

// repair starts the operator region state e needs, if any, and reports
// whether it started one. With R = Replicas:
//
//   - fewer than R voters on usable stores (not dead, see PD.dead): if a
//     voter is dead, replace it (a move from its store to a new one), else
//     add a voter; the new replica goes to the Up store with the fewest
//     regions; when no store can take it, a learner is removed first (it
//     may hold the only store that could);
//   - more than R voters: remove one (see extraVoter), never the leader and
//     never one whose removal would leave the reachable voters at half or
//     fewer of those left (quorum.go);
//   - otherwise, a learner (no operator owns it: a region with an operator
//     is not checked) is removed.
//
// A region in a joint configuration gets nothing: raft leaves it on its
// own, and its next heartbeat shows where it landed. A region whose
// reachable voters are not a strict majority of its voters gets nothing
// either: no change can commit, and none could restore its quorum.
func (p *PD) repair(e *entry) bool {
	r := e.region
	if r.InJointConfig() {
		return false
	}
	h := p.health[r.GetId()]
	vs := votersOf(r)
	if !p.quorate(vs, h) {
		return false
	}
	var dead, learners []*pb.Peer
	for _, peer := range r.GetPeers() {
		switch peer.GetRole() {
		case pb.PeerRole_VOTER:
			if p.dead(peer, h) {
				dead = append(dead, peer)
			}
		case pb.PeerRole_LEARNER:
			learners = append(learners, peer)
		}
	}
	want := p.set.replicas
	switch {
	case len(vs)-len(dead) < want:
		to := p.pickTarget(r, p.loads(true))
		if to == 0 {
			// No store can take a new replica: a learner no operator owns
			// may hold the one that could (a split copies a move's learner
			// into the new region). It goes first.
			return p.removeLearner(r, learners)
		}
		in := p.newLearner(to)
		if len(dead) > 0 {
			out := dead[0]
			p.startOperator(OpReplaceReplica, OriginReplicaChecker, r, out.GetStoreId(), to, movePlan(r, out, in))
		} else {
			p.startOperator(OpAddReplica, OriginReplicaChecker, r, 0, to, addPlan(in))
		}
	case len(vs) > want:
		out := p.extraVoter(e, vs, h)
		if out == nil || !p.underLimit(out.GetStoreId()) {
			return false
		}
		p.startOperator(OpRemoveReplica, OriginReplicaChecker, r, out.GetStoreId(), 0, removePlan(out))
	case len(learners) > 0:
		return p.removeLearner(r, learners)
	default:
		return false
	}
	return true
}

// removeLearner starts the removal of the learner of r with the lowest id,
// if there is one and its store is under its limit, and reports whether it
// did.
func (p *PD) removeLearner(r *pb.Region, learners []*pb.Peer) bool {
	if len(learners) == 0 {
		return false
	}
	out := slices.MinFunc(learners, func(a, b *pb.Peer) int { return cmpUint(a.GetId(), b.GetId()) })
	if !p.underLimit(out.GetStoreId()) {
		return false
	}
	p.startOperator(OpRemoveReplica, OriginReplicaChecker, r, out.GetStoreId(), 0, removePlan(out))
	return true
}

// Ranks of a voter as a candidate for removal, most removable first.
const (
	rankDead    = iota // beyond help (PD.dead)
	rankDown           // not reachable (its store silent, or listed down), not yet dead
	rankPending        // reachable, but behind the leader's log
	rankOffline        // healthy, on a store being decommissioned
	rankHealthy        // healthy
)

// voterRank ranks voter v of region r (whose last heartbeat said h) as a
// candidate for removal.
func (p *PD) voterRank(r *pb.Region, v *pb.Peer, h *health) int {
	switch {
	case p.dead(v, h):
		return rankDead
	case !p.reachable(v, h):
		return rankDown
	case h.isPending(r.GetEpoch().GetConfVer(), v.GetId()):
		return rankPending
	case p.storeState(v.GetStoreId()) == StoreOffline:
		return rankOffline
	}
	return rankHealthy
}

// extraVoter picks the voter to remove from region state e, which has too
// many voters (vs), or nil if none may go. Never the leader, never one
// whose removal would leave no reachable quorum; of the others, the most
// removable by rank (dead, down, pending, on an Offline store, healthy: a
// healthy voter only when no other is left), then the one on the store with
// the most regions (projected), then the lowest store id.
//
// Removing a voter that is not reachable never breaks a quorum the region
// has (one voter fewer, as many reachable); removing a reachable one can:
// five voters with two silent keep three of five, but removing a live one
// leaves two of four.
func (p *PD) extraVoter(e *entry, vs []*pb.Peer, h *health) *pb.Peer {
	r := e.region
	loads := p.loads(true)
	var best *pb.Peer
	var bestRank, bestRegions int
	for _, v := range vs {
		if v.GetId() == e.leader.GetId() || !p.keepsQuorum(r, h, nil, v) {
			continue
		}
		rank, n := p.voterRank(r, v, h), loadOf(loads, v.GetStoreId()).regions
		if best == nil || rank < bestRank || (rank == bestRank && (n > bestRegions ||
			(n == bestRegions && v.GetStoreId() < best.GetStoreId()))) {
			best, bestRank, bestRegions = v, rank, n
		}
	}
	return best
}
