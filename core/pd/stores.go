package pd

import (
	"fmt"
	"slices"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// StoreState is what PD makes of a store: how recently it was heard from,
// and whether it is being (or has been) decommissioned.
type StoreState int

const (
	// StoreUp: heard from within the disconnect time. Gets new replicas.
	StoreUp StoreState = iota
	// StoreDisconnected: silent for longer than the disconnect time. Keeps
	// its replicas but gets no new ones; operators on it go on.
	StoreDisconnected
	// StoreDown: silent for longer than the max store down time. Its
	// replicas are re-created elsewhere, operators moving replicas to it
	// are cancelled.
	StoreDown
	// StoreOffline: being decommissioned. Its replicas are moved away; it
	// gets no new ones.
	StoreOffline
	// StoreTombstone: decommissioned and empty. PD refuses it from then on.
	StoreTombstone
)

func (s StoreState) String() string {
	switch s {
	case StoreUp:
		return "up"
	case StoreDisconnected:
		return "disconnected"
	case StoreDown:
		return "down"
	case StoreOffline:
		return "offline"
	case StoreTombstone:
		return "tombstone"
	}
	return fmt.Sprintf("StoreState(%d)", int(s))
}

// StoreInfo is what PD knows about one store.
type StoreInfo struct {
	ID         uint64
	State      StoreState
	Registered bool   // sent a StoreHello or a StoreHeartbeat
	Joined     bool   // joined after bootstrap (not in the initial layout)
	Address    string // from the last StoreHello
	// Bootstrapped: the store holds durable raft state (it sent a store
	// heartbeat, or a StoreHello saying its disk holds its identity); PD
	// refuses it from then on if it comes back on an empty disk.
	Bootstrapped bool

	// From PD's own view of the regions (the newest state of each).
	Regions     int    // peers on this store, learners included
	Leaders     int    // regions whose last reported leader is on this store
	RegionBytes uint64 // sum of the approximate sizes of those regions

	// As the store itself reported in its last StoreHeartbeat.
	RegionCount   uint64
	LeaderCount   uint64
	UsedBytes     uint64
	Heartbeats    uint64    // StoreHeartbeats received
	LastHeartbeat time.Time // zero until the first StoreHeartbeat
	LastSeen      time.Time // last StoreHello or StoreHeartbeat
}

// store is PD's record of one store.
type store struct {
	info         StoreInfo // Regions, Leaders, RegionBytes and State are filled in on demand
	registered   bool
	bootstrapped bool // durable: see StoreInfo.Bootstrapped
	joined       bool
	offline      bool // decommission ordered
	tombstone    bool // decommissioned and empty
}

// markBootstrapped records that store s holds durable raft state.
func (p *PD) markBootstrapped(s *store) {
	if !s.bootstrapped {
		s.bootstrapped = true
		p.touch()
		p.log.Info("pd: store bootstrapped", "store", s.info.ID)
	}
}

// liveness is how recently the store was heard from: Up, Disconnected or
// Down. A store never heard from counts from PD's start.
func (p *PD) liveness(s *store) StoreState {
	last := s.info.LastSeen
	if last.Before(p.started) {
		last = p.started
	}
	switch silent := p.env.Clock.Now().Sub(last); {
	case silent >= p.set.down:
		return StoreDown
	case silent >= p.set.disconnect:
		return StoreDisconnected
	}
	return StoreUp
}

// state is the store's state: Tombstone and Offline (administrative) win
// over liveness.
func (p *PD) state(s *store) StoreState {
	switch {
	case s.tombstone:
		return StoreTombstone
	case s.offline:
		return StoreOffline
	}
	return p.liveness(s)
}

// storeState is the state of store id; an unknown store counts as a
// tombstone (it can hold nothing and get nothing).
func (p *PD) storeState(id uint64) StoreState {
	s := p.stores[id]
	if s == nil {
		return StoreTombstone
	}
	return p.state(s)
}

// operatedRegionsLedBy lists, by id, the regions with a running operator
// whose leader PD believes on store id.
func (p *PD) operatedRegionsLedBy(id uint64) []uint64 {
	var out []uint64
	for rid := range p.ops {
		if e := p.view.known(rid); e != nil && e.leader.GetStoreId() == id {
			out = append(out, rid)
		}
	}
	slices.Sort(out)
	return out
}

// HasStore reports whether PD knows store id (in its layout, or joined;
// tombstones included): what Stores lists, without computing loads.
func (p *PD) HasStore(id uint64) bool { return p.stores[id] != nil }

// storeIDs returns the ids of every store PD knows, sorted.
func (p *PD) storeIDs() []uint64 {
	ids := make([]uint64, 0, len(p.stores))
	for id := range p.stores {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Stores returns every store PD knows (the layout's and those that joined),
// sorted by id, with its state and its load in PD's view of the regions.
func (p *PD) Stores() []StoreInfo {
	loads := p.loads(false)
	ids := p.storeIDs()
	out := make([]StoreInfo, len(ids))
	for i, id := range ids {
		s := p.stores[id]
		info := s.info
		info.State = p.state(s)
		info.Registered = s.registered
		info.Bootstrapped = s.bootstrapped
		info.Joined = s.joined
		if l := loads[id]; l != nil {
			info.Regions, info.Leaders, info.RegionBytes = l.regions, l.leaders, l.bytes
		}
		out[i] = info
	}
	return out
}

// load is one store's share of the regions.
type load struct {
	regions int
	leaders int
	bytes   uint64
}

// loads counts, for every store, the peers, leaders and region bytes in
// PD's view: the newest state of each region. With projected set, each
// region with a running operator counts as its operator will leave it (the
// replica moved, the leader transferred), so that schedulers do not pile
// more work on a store that operators are already filling.
func (p *PD) loads(projected bool) map[uint64]*load {
	out := map[uint64]*load{}
	at := func(store uint64) *load {
		l := out[store]
		if l == nil {
			l = &load{}
			out[store] = l
		}
		return l
	}
	for _, id := range p.regionIDs() {
		e := p.view.known(id)
		stores := make([]uint64, 0, len(e.region.GetPeers())+1)
		for _, peer := range e.region.GetPeers() {
			stores = append(stores, peer.GetStoreId())
		}
		leader := e.leader.GetStoreId()
		if op := p.ops[id]; projected && op != nil {
			stores, leader = op.projection(stores, leader)
		}
		for _, s := range stores {
			l := at(s)
			l.regions++
			l.bytes += e.size
		}
		if leader != 0 && slices.Contains(stores, leader) {
			at(leader).leaders++
		}
	}
	return out
}

// regionIDs returns the id of every region PD holds a state of (published
// or pending), sorted.
func (p *PD) regionIDs() []uint64 {
	ids := make([]uint64, 0, len(p.view.byID)+len(p.view.pendingID))
	for id := range p.view.byID {
		ids = append(ids, id)
	}
	for id := range p.view.pendingID {
		if p.view.byID[id] == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (p *PD) onStoreHello(m *pb.Envelope, h *pb.StoreHello) {
	id := h.GetStoreId()
	s := p.stores[id]
	refuse := func(why string) {
		p.log.Warn("pd: store hello refused", "store", id, "from", m.GetFrom(), "reason", why)
		p.reply(m, &pb.Bootstrap{StoreId: id, Error: "pd: " + why})
	}
	switch {
	case s != nil && s.tombstone:
		p.stats.TombstoneStores++
		refuse(fmt.Sprintf("store %d is a tombstone (decommissioned)", id))
		return
	case s == nil && !h.GetJoin():
		p.stats.UnknownStores++
		refuse(fmt.Sprintf("store %d is not in the cluster layout", id))
		return
	case s == nil && (id == 0 || id == p.id):
		p.stats.UnknownStores++
		refuse(fmt.Sprintf("store id %d cannot join: it is 0 or PD's own id", id))
		return
	case s != nil && s.bootstrapped && !h.GetBootstrapped():
		// Its disk is empty (or not the one it had): the raft state of its
		// replicas is gone. Bootstrapping it again would re-create them
		// from the initial layout with their old peer ids and an empty log,
		// a voter that forgot what it acknowledged: a committed write could
		// be lost. The store must not start.
		p.stats.EmptyDiskStores++
		refuse(fmt.Sprintf("store %d has bootstrapped before and its replicas' raft state is not on this disk "+
			"(an empty data directory?): it cannot start again without it; start it on its own data "+
			"directory, or decommission store %d and add a new store with a new id", id, id))
		return
	case s == nil:
		s = &store{joined: true}
		s.info.ID = id
		p.stores[id] = s
		p.touch()
		p.stats.Joins++
		p.log.Info("pd: store joined", "store", id, "address", h.GetAddress())
	}
	p.stats.Hellos++
	if !s.registered {
		p.log.Info("pd: store registered", "store", id, "address", h.GetAddress())
	}
	if !s.registered || s.info.Address != h.GetAddress() {
		p.touch()
	}
	s.registered = true
	s.info.Address = h.GetAddress()
	s.info.LastSeen = p.env.Clock.Now()
	if h.GetBootstrapped() {
		p.markBootstrapped(s)
	}
	var regions []*pb.Region
	if !s.joined && !h.GetBootstrapped() {
		for _, r := range p.initial {
			if r.PeerOnStore(id) != nil {
				regions = append(regions, r.CloneVT())
			}
		}
	}
	p.reply(m, &pb.Bootstrap{
		StoreId:             id,
		Regions:             regions,
		HeartbeatIntervalMs: uint64(p.set.heartbeat / time.Millisecond),
		StoreIds:            p.liveStoreIDs(),
	})
}

// liveStoreIDs lists the stores that are not tombstoned, sorted: the
// stores a store accepts raft traffic from.
func (p *PD) liveStoreIDs() []uint64 {
	var out []uint64
	for _, id := range p.storeIDs() {
		if !p.stores[id].tombstone {
			out = append(out, id)
		}
	}
	return out
}

func (p *PD) onStoreHeartbeat(m *pb.Envelope, h *pb.StoreHeartbeat) {
	id := h.GetStoreId()
	s := p.stores[id]
	switch {
	case s == nil:
		p.stats.UnknownStores++
		p.log.Warn("pd: heartbeat from an unknown store", "store", id, "from", m.GetFrom())
		return
	case s.tombstone:
		p.stats.TombstoneStores++
		p.log.Warn("pd: heartbeat from a tombstone store", "store", id, "from", m.GetFrom())
		return
	}
	p.stats.StoreHeartbeats++
	now := p.env.Clock.Now()
	if !s.registered {
		p.touch()
	}
	s.registered = true
	// A store heartbeats only once its bootstrap is durable.
	p.markBootstrapped(s)
	s.info.RegionCount = h.GetRegionCount()
	s.info.LeaderCount = h.GetLeaderCount()
	s.info.UsedBytes = h.GetUsedBytes()
	s.info.Heartbeats++
	s.info.LastHeartbeat = now
	s.info.LastSeen = now
	p.reply(m, &pb.StoreHeartbeatResponse{StoreIds: p.liveStoreIDs(), WakeRegions: p.operatedRegionsLedBy(id)})
}
