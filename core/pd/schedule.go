package pd

import (
	"github.com/multiraft/multiraft/core/pb"
)

// Tick is the periodic hook: it ends operators past their deadline and
// cancels those whose target store went away.
func (p *PD) Tick() {
	p.checkOperators()
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

// newLearner allocates the peer an operator adds on store.
func (p *PD) newLearner(store uint64) *pb.Peer {
	return &pb.Peer{Id: p.alloc(), StoreId: store, Role: pb.PeerRole_LEARNER}
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
