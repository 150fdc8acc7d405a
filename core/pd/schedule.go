package pd

import (
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// opsPerRun is the most operators one scheduler starts in one run.
const opsPerRun = 4

// Tick is the periodic hook. Every call ends operators past their deadline
// and cancels those whose target store went away; at most every
// Config.ScheduleInterval it runs the schedulers, in this order: replica
// checker, decommission, balance regions, balance leaders.
func (p *PD) Tick() {
	if p.failed != nil {
		return
	}
	p.tick()
	p.commit()
}

func (p *PD) tick() {
	p.sendDelayedOrders()
	p.checkOperators()
	now := p.env.Clock.Now()
	if p.scheduled && now.Sub(p.lastSchedule) < p.set.scheduleInterval {
		return
	}
	p.scheduled, p.lastSchedule = true, now
	p.stats.ScheduleRuns++
	if p.set.replicaChecker {
		p.checkReplicas()
	}
	if p.set.decommission {
		p.decommission()
	}
	if p.set.balanceRegion {
		p.balanceRegions()
	}
	if p.set.balanceLeader {
		p.balanceLeaders()
	}
}

// upStores returns the ids of the stores in state Up, sorted: the only
// stores that receive new replicas or leaders, and the ones balanced.
func (p *PD) upStores() []uint64 {
	var out []uint64
	for _, id := range p.storeIDs() {
		if p.storeState(id) == StoreUp {
			out = append(out, id)
		}
	}
	return out
}

// pickTarget returns the Up store, under its limit and holding no peer of
// r, with the fewest regions in loads (then the fewest bytes, then the
// lowest id); 0 if there is none.
func (p *PD) pickTarget(r *pb.Region, loads map[uint64]*load) uint64 {
	var best uint64
	var bl load
	for _, id := range p.upStores() {
		if r.PeerOnStore(id) != nil || !p.underLimit(id) {
			continue
		}
		l := loadOf(loads, id)
		if best == 0 || l.regions < bl.regions || (l.regions == bl.regions && l.bytes < bl.bytes) {
			best, bl = id, l
		}
	}
	return best
}

// loadOf returns store's load, zero if it has none.
func loadOf(loads map[uint64]*load, store uint64) load {
	if l := loads[store]; l != nil {
		return *l
	}
	return load{}
}

// newLearner allocates the peer an operator adds on store.
func (p *PD) newLearner(store uint64) *pb.Peer {
	return &pb.Peer{Id: p.alloc(), StoreId: store, Role: pb.PeerRole_LEARNER}
}

// dead reports whether peer is beyond help where it is: its store is Down
// (Offline or not) or a tombstone, or its leader has listed it as down for
// the max store down time.
func (p *PD) dead(peer *pb.Peer, h *health) bool {
	s := p.stores[peer.GetStoreId()]
	if s == nil || s.tombstone || p.liveness(s) == StoreDown {
		return true
	}
	return h.downFor(peer.GetId(), p.env.Clock.Now()) >= p.set.down
}

// movable reports whether region state e may be picked by a balancer to
// move its voter off store src to store dst: no operator, not joint, the
// peer on src a voter, no peer on dst, exactly Replicas voters and no
// learners, a known leader, and a last heartbeat (at its conf_ver) that
// lists no pending or down peer.
func (p *PD) movable(e *entry, src, dst uint64) bool {
	r := e.region
	switch {
	case p.ops[r.GetId()] != nil, r.InJointConfig(), e.leader == nil, r.PeerOnStore(dst) != nil:
		return false
	case r.PeerOnStore(src) == nil || r.PeerOnStore(src).GetRole() != pb.PeerRole_VOTER:
		return false
	case len(r.GetPeers()) != p.set.replicas || voters(r) != p.set.replicas:
		return false
	}
	return p.health[r.GetId()].clean(r.GetEpoch().GetConfVer())
}

// startMove starts a move of region e's voter from src to dst.
func (p *PD) startMove(kind OpKind, origin string, e *entry, src, dst uint64) {
	r := e.region
	p.startOperator(kind, origin, r, src, dst, movePlan(r, r.PeerOnStore(src), p.newLearner(dst)))
}

// byCount orders stores by a count, descending when desc is set, then by id.
func byCount(stores []uint64, count func(uint64) int, desc bool) []uint64 {
	out := slices.Clone(stores)
	slices.SortStableFunc(out, func(a, b uint64) int {
		ca, cb := count(a), count(b)
		if desc {
			ca, cb = cb, ca
		}
		switch {
		case ca < cb:
			return -1
		case ca > cb:
			return 1
		}
		return cmpUint(a, b)
	})
	return out
}

// spread returns the lowest and highest count among stores.
func spread(stores []uint64, count func(uint64) int) (lo, hi int) {
	for i, s := range stores {
		c := count(s)
		if i == 0 || c < lo {
			lo = c
		}
		if i == 0 || c > hi {
			hi = c
		}
	}
	return lo, hi
}
