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
//     regions;
//   - more than R voters: remove one, preferring a dead peer, then one on
//     an Offline store, then the one on the store with the most regions;
//   - otherwise, a learner (no operator owns it: a region with an operator
//     is not checked) is removed.
//
// A region in a joint configuration gets nothing: raft leaves it on its
// own, and its next heartbeat shows where it landed. A region whose dead
// voters are at least half of its voters has lost its quorum: no change
// can commit, so it gets nothing either.
func (p *PD) repair(e *entry) bool {
	r := e.region
	if inJoint(r) {
		return false
	}
	h := p.health[r.GetId()]
	var vs, dead, learners []*pb.Peer
	for _, peer := range r.GetPeers() {
		switch peer.GetRole() {
		case pb.PeerRole_VOTER:
			vs = append(vs, peer)
			if p.dead(peer, h) {
				dead = append(dead, peer)
			}
		case pb.PeerRole_LEARNER:
			learners = append(learners, peer)
		}
	}
	if 2*len(dead) >= len(vs) && len(dead) > 0 {
		return false
	}
	want := p.set.replicas
	switch {
	case len(vs)-len(dead) < want:
		to := p.pickTarget(r, p.loads(true))
		if to == 0 {
			return false
		}
		in := p.newLearner(to)
		if len(dead) > 0 {
			out := dead[0]
			p.startOperator(OpReplaceReplica, OriginReplicaChecker, r, out.GetStoreId(), to, movePlan(r, out, in))
		} else {
			p.startOperator(OpAddReplica, OriginReplicaChecker, r, 0, to, addPlan(in))
		}
	case len(vs) > want:
		out := p.extraVoter(vs, dead)
		if !p.underLimit(out.GetStoreId()) {
			return false
		}
		p.startOperator(OpRemoveReplica, OriginReplicaChecker, r, out.GetStoreId(), 0, removePlan(out))
	case len(learners) > 0:
		out := slices.MinFunc(learners, func(a, b *pb.Peer) int { return cmpUint(a.GetId(), b.GetId()) })
		if !p.underLimit(out.GetStoreId()) {
			return false
		}
		p.startOperator(OpRemoveReplica, OriginReplicaChecker, r, out.GetStoreId(), 0, removePlan(out))
	default:
		return false
	}
	return true
}

// extraVoter picks the voter to remove from a region with too many: a
// dead one, else one on an Offline store, else the one on the store with
// the most regions (projected), the lowest store id on a tie.
func (p *PD) extraVoter(vs, dead []*pb.Peer) *pb.Peer {
	if len(dead) > 0 {
		return dead[0]
	}
	for _, v := range vs {
		if p.storeState(v.GetStoreId()) == StoreOffline {
			return v
		}
	}
	loads := p.loads(true)
	best := vs[0]
	for _, v := range vs[1:] {
		n, bn := loadOf(loads, v.GetStoreId()).regions, loadOf(loads, best.GetStoreId()).regions
		if n > bn || (n == bn && v.GetStoreId() < best.GetStoreId()) {
			best = v
		}
	}
	return best
}
