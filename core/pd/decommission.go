package pd

import (
	"github.com/multiraft/multiraft/core/pb"
)

// decommission empties Offline stores: for each (by id), the regions with
// a peer on it (by id, without an operator, not joint) get a move of that
// voter to the Up store with the fewest regions (a replace when the store
// is also Down), or a removal of that learner; at most opsPerRun in all,
// within the store limits. An Offline store that PD's view shows holds no
// peer, and that no operator involves, becomes a Tombstone.
func (p *PD) decommission() {
	made := 0
	for _, sid := range p.storeIDs() {
		s := p.stores[sid]
		if !s.offline || s.tombstone {
			continue
		}
		var on []*entry
		for _, id := range p.regionIDs() {
			if e := p.view.known(id); e.region.PeerOnStore(sid) != nil {
				on = append(on, e)
			}
		}
		if len(on) == 0 {
			if !p.storeBusy(sid) {
				s.tombstone = true
				p.touch()
				p.stats.Tombstones++
				p.log.Info("pd: store decommissioned: tombstone", "store", sid)
			}
			continue
		}
		for _, e := range on {
			if made == opsPerRun {
				return
			}
			if p.evacuate(e, sid) {
				made++
			}
		}
	}
}

// evacuate starts the operator that takes region e's peer off store sid,
// and reports whether it started one. A region whose reachable voters are
// not a strict majority gets nothing: no change of it can commit
// (quorum.go). The steps of the move are guarded too: its promote-demote
// is ordered only when the new voters keep a reachable quorum.
func (p *PD) evacuate(e *entry, sid uint64) bool {
	r := e.region
	if p.ops[r.GetId()] != nil || r.InJointConfig() || !p.quorate(votersOf(r), p.health[r.GetId()]) {
		return false
	}
	peer := r.PeerOnStore(sid)
	if peer.GetRole() == pb.PeerRole_LEARNER {
		if !p.underLimit(sid) {
			return false
		}
		p.startOperator(OpRemoveReplica, OriginDecommission, r, sid, 0, removePlan(peer))
		return true
	}
	kind := OpMoveReplica
	if p.liveness(p.stores[sid]) == StoreDown {
		kind = OpReplaceReplica
	}
	if kind == OpMoveReplica && !p.underLimit(sid) {
		return false
	}
	to := p.pickTarget(r, p.loads(true))
	if to == 0 {
		return false
	}
	p.startMove(kind, OriginDecommission, e, sid, to)
	return true
}

// storeBusy reports whether a running operator moves a replica or the
// leadership to or from store.
func (p *PD) storeBusy(store uint64) bool {
	for _, op := range p.ops {
		if op.from == store || op.to == store {
			return true
		}
	}
	return false
}
