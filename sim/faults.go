package sim

import (
	"time"
)

// The fault API scenarios use from their plans. Every action is noted in
// the trace and marked on the linearizability visualization.

// StoreIDs lists the store ids.
func (w *World) StoreIDs() []uint64 { return w.storeIDs() }

// Now is the virtual time since the start of the run.
func (w *World) Now() time.Duration { return w.k.now }

// RegionIDs lists the regions PD knows, in key order.
func (w *World) RegionIDs() []uint64 {
	var ids []uint64
	if w.pd == nil {
		return nil
	}
	for _, r := range w.pd.Regions() {
		ids = append(ids, r.GetId())
	}
	return ids
}

// LeaderStore returns the store whose peer leads regionID, or 0. When two
// peers think they lead (an old leader not yet deposed), the one with the
// higher term wins.
func (w *World) LeaderStore(regionID uint64) uint64 {
	var best, term uint64
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions(false) {
			if rs.Region.GetId() == regionID && rs.IsLeader && rs.Term > term {
				best, term = n.id, rs.Term
			}
		}
	}
	return best
}

// Isolate cuts node off from everyone.
func (w *World) Isolate(node uint64) {
	w.net.Isolate(node)
	w.k.note("isolate %d", node)
}

// Partition splits the listed nodes into groups that cannot talk.
func (w *World) Partition(groups ...[]uint64) {
	w.net.Partition(groups...)
	w.k.note("partition %v", groups)
}

// BlockOneWay drops messages from -> to.
func (w *World) BlockOneWay(from, to uint64) {
	w.net.BlockOneWay(from, to)
	w.k.note("block %d->%d", from, to)
}

// Heal removes every network fault.
func (w *World) Heal() {
	w.net.Heal()
	w.k.note("heal")
}

// Crash stops store id, keeping only what its disk synced (and, at the
// seed's choice, some unsynced blocks).
func (w *World) Crash(id uint64) { w.crashStore(w.stores[id-1]) }

// Restart reopens a crashed store from its disk.
func (w *World) Restart(id uint64) { w.restartStore(w.stores[id-1]) }

// Up reports whether store id is running.
func (w *World) Up(id uint64) bool { return w.stores[id-1].up() }
