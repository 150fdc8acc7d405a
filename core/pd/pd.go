package pd

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// Stats counts what PD has received and done.
type Stats struct {
	Hellos             uint64 // StoreHello answered with a bootstrap (layout stores and joins)
	Joins              uint64 // stores that joined after bootstrap
	UnknownStores      uint64 // StoreHello or StoreHeartbeat from a store PD does not know (and that did not join)
	TombstoneStores    uint64 // StoreHello or StoreHeartbeat from a tombstone store, refused
	EmptyDiskStores    uint64 // StoreHello of a store that bootstrapped before, from an empty disk, refused
	StoreHeartbeats    uint64
	RegionHeartbeats   uint64 // all region heartbeats received
	StaleHeartbeats    uint64 // region heartbeats ignored as older than PD's state
	RejectedHeartbeats uint64 // region heartbeats ignored as invalid or inconsistent
	SplitReports       uint64
	StaleSplitReports  uint64 // ReportSplit ignored: left not newer, or invalid
	ViewChanges        uint64 // published regions replaced by newer ones (splits published)
	Pending            int    // region states waiting for their range to be covered
	GetRegions         uint64
	ListRegions        uint64
	RegionByIDs        uint64
	AskSplits          uint64
	AskSplitErrors     uint64
	AdminRequests      uint64 // MoveRegion, TransferLeader, DecommissionStore received
	AdminErrors        uint64 // ... of which refused
	Orders             uint64 // RegionOrders sent (re-sends included)
	QuorumHolds        uint64 // operator steps not ordered (on a heartbeat) because they would leave no reachable quorum
	ScheduleRuns       uint64 // scheduler runs (Ticks at least ScheduleInterval apart)
	Tombstones         uint64 // stores decommissioned
	Malformed          uint64 // envelopes PD cannot handle (nil, empty, wrong kind)
	StateWrites        uint64 // times the durable state was written (PDs with a disk)

	Operators [NumOpKinds]OperatorCounts // by OpKind
}

// PD is the placement driver state machine. It is not safe for concurrent
// use: its driver calls it from one goroutine.
type PD struct {
	env     core.Env
	log     *slog.Logger
	id      uint64
	set     settings
	started time.Time // when New ran: a store never heard from counts its silence from here

	nextID  uint64            // the next id the allocator hands out
	bounds  map[uint64]bound  // per region id: the newest epoch it can legitimately have
	stores  map[uint64]*store // every store of the layout, and every store that joined
	initial []*pb.Region      // the initial regions, in start-key order
	view    *view             // routing view and pending states
	health  map[uint64]*health

	ops          map[uint64]*operator // running operators, by region id (at most one each)
	nextOpID     uint64               // the last operator id handed out
	scheduled    bool                 // the schedulers ran at least once
	lastSchedule time.Time            // when they last ran
	hooks        Hooks
	stats        Stats

	// Fault hooks and coverage (core/buggify); bug is nil in real mode.
	bug     *buggify.B
	delayed []delayedOrder // orders a hook holds back, sent from Tick

	// Durability (durable.go): ids below idHigh may have been handed out;
	// replies wait in outbox until the state they depend on is saved.
	idHigh    uint64
	outbox    []*pb.Envelope
	saved     []byte // the state last written
	savedGen  uint64 // stateGen + view.gen when it was written
	stateGen  uint64 // counts changes to the durable state (touch)
	failed    error  // the state could not be written: PD is stopped
	recovered bool
}

// New validates cfg and builds a PD holding the initial layout.
func New(env core.Env, cfg Config) (*PD, error) {
	if env.Clock == nil || env.Net == nil {
		return nil, errors.New("pd: new: env needs a Clock and a Net")
	}
	ranges, stores, err := validateLayout(cfg.Layout)
	if err != nil {
		return nil, err
	}
	if cfg.ID == 0 {
		return nil, errors.New("pd: new: Config.ID (PD's node id) must be non-zero")
	}
	if _, clash := slices.BinarySearch(stores, cfg.ID); clash {
		return nil, fmt.Errorf("pd: new: Config.ID %d is also a store id", cfg.ID)
	}
	set, err := settingsOf(cfg)
	if err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &PD{
		env:     env,
		log:     log.With("node", "pd", "pd_id", cfg.ID),
		id:      cfg.ID,
		set:     set,
		started: env.Clock.Now(),
		nextID:  1,
		bounds:  map[uint64]bound{},
		stores:  make(map[uint64]*store, len(stores)),
		view:    newView(),
		health:  map[uint64]*health{},
		ops:     map[uint64]*operator{},
		bug:     env.Buggify,
	}
	for _, s := range stores {
		p.stores[s] = &store{info: StoreInfo{ID: s}}
	}
	replicas := cfg.Layout.Replicas
	for i, rs := range ranges {
		r := &pb.Region{
			Id:       p.alloc(),
			StartKey: slices.Clone(rs.Start),
			EndKey:   slices.Clone(rs.End),
			Epoch:    &pb.Epoch{ConfVer: 1, Version: 1},
		}
		on := make([]uint64, 0, replicas)
		for j := 0; j < replicas; j++ {
			on = append(on, stores[(i+j)%len(stores)])
		}
		slices.Sort(on)
		for _, s := range on {
			r.Peers = append(r.Peers, &pb.Peer{Id: p.alloc(), StoreId: s, Role: pb.PeerRole_VOTER})
		}
		p.bounds[r.Id] = bound{version: 1, confVer: 1}
		p.initial = append(p.initial, r)
		p.view.publish(&entry{region: r.CloneVT()})
	}
	p.log.Info("pd: started", "regions", len(p.initial), "stores", len(stores),
		"replicas", replicas, "heartbeat_interval", set.heartbeat)
	return p, nil
}

// alloc hands out the next id.
func (p *PD) alloc() uint64 {
	id := p.nextID
	p.nextID++
	if p.nextID > p.idHigh {
		p.idHigh = id + idBatch // made durable before the id leaves (save)
		p.touch()
	}
	return id
}

// bound is the newest epoch a region can have, given what PD handed out:
// every split of a region needs ids from AskSplit, so its version can grow
// by at most one per answered AskSplit; membership changes (conf_ver) are
// ordered by PD alone. A report beyond its bound is forged or corrupt, and
// accepting it would freeze the region in PD (every real report would then
// look stale).
type bound struct{ version, confVer uint64 }

// allocSplit hands out the ids of a split of r: a region id and one peer id
// per peer. The split, if it applies, raises r's version by one and creates
// the new region at r's epoch with the version after it. A region split
// while in a joint configuration creates its new region joint too, and raft
// takes that one out of it as well: one more conf_ver.
func (p *PD) allocSplit(r *pb.Region) (regionID uint64, peerIDs []uint64) {
	regionID = p.alloc()
	for range r.GetPeers() {
		peerIDs = append(peerIDs, p.alloc())
	}
	p.touch()
	b := p.bounds[r.GetId()]
	b.version++
	p.bounds[r.GetId()] = b
	confVer := r.GetEpoch().GetConfVer()
	if r.InJointConfig() {
		confVer++
	}
	p.bounds[regionID] = bound{version: r.GetEpoch().GetVersion() + 1, confVer: confVer}
	return regionID, peerIDs
}

// checkIDs returns why r names an id or an epoch PD never handed out, or "".
func (p *PD) checkIDs(r *pb.Region) string {
	if r.GetId() >= p.nextID {
		return fmt.Sprintf("region id %d was never allocated", r.GetId())
	}
	for _, peer := range r.GetPeers() {
		if peer.GetId() == 0 || peer.GetId() >= p.nextID {
			return fmt.Sprintf("peer id %d was never allocated", peer.GetId())
		}
		if p.stores[peer.GetStoreId()] == nil {
			return fmt.Sprintf("peer %d is on store %d, which PD does not know", peer.GetId(), peer.GetStoreId())
		}
	}
	b, ok := p.bounds[r.GetId()]
	switch {
	case !ok:
		return fmt.Sprintf("region id %d was never allocated to a region", r.GetId())
	case r.GetEpoch().GetVersion() > b.version:
		return fmt.Sprintf("version %d is beyond the %d its splits allow", r.GetEpoch().GetVersion(), b.version)
	case r.GetEpoch().GetConfVer() > b.confVer:
		return fmt.Sprintf("conf_ver %d is beyond the %d PD ordered", r.GetEpoch().GetConfVer(), b.confVer)
	}
	return ""
}

// HeartbeatInterval is the interval stores are told to heartbeat at.
func (p *PD) HeartbeatInterval() time.Duration { return p.set.heartbeat }

// ID is PD's own node id.
func (p *PD) ID() uint64 { return p.id }

// Stats returns a copy of PD's counters.
func (p *PD) Stats() Stats {
	s := p.stats
	s.Pending = p.view.pending.Len()
	return s
}

// Regions returns the routing view: clones of the published regions, sorted
// by start key. They tile the keyspace exactly.
func (p *PD) Regions() []*pb.Region { return cloneEntries(p.view.all()) }

// ViewGeneration counts the changes to the published routing view: two
// calls that return the same number bracket no change to what Regions
// returns (leader hints and sizes aside). Observers poll it to skip
// cloning an unchanged view.
func (p *PD) ViewGeneration() uint64 { return p.view.gen }

// RegionInfos returns the routing view with the known leaders (clones),
// sorted by start key.
func (p *PD) RegionInfos() []*pb.RegionInfo {
	all := p.view.all()
	out := make([]*pb.RegionInfo, len(all))
	for i, e := range all {
		out[i] = e.info()
	}
	return out
}

// PendingRegions returns clones of the region states PD has accepted but not
// published yet, sorted by start key then id.
func (p *PD) PendingRegions() []*pb.Region { return cloneEntries(p.view.pendingAll()) }

// cloneEntries returns clones of the entries' regions, in order.
func cloneEntries(entries []*entry) []*pb.Region {
	out := make([]*pb.Region, len(entries))
	for i, e := range entries {
		out[i] = e.region.CloneVT()
	}
	return out
}

// InitialRegions returns clones of the regions allocated by New, sorted by
// start key.
func (p *PD) InitialRegions() []*pb.Region {
	out := make([]*pb.Region, len(p.initial))
	for i, r := range p.initial {
		out[i] = r.CloneVT()
	}
	return out
}

// Receive handles one envelope. Replies go out through Env.Net, after the
// state they depend on is durable (a PD with a disk).
func (p *PD) Receive(m *pb.Envelope) {
	if p.failed != nil {
		return
	}
	p.receive(m)
	p.commit()
}

// commit saves the state if it changed, then sends the queued replies. A
// PD whose state cannot be saved sends nothing more.
func (p *PD) commit() {
	if err := p.save(); err != nil {
		p.outbox = nil
		return
	}
	out := p.outbox
	p.outbox = nil
	for _, e := range out {
		p.env.Net.Send(e)
	}
}

func (p *PD) receive(m *pb.Envelope) {
	if m == nil {
		p.malformed(nil, "nil envelope")
		return
	}
	switch b := m.GetBody().(type) {
	case *pb.Envelope_StoreHello:
		p.onStoreHello(m, b.StoreHello)
	case *pb.Envelope_StoreHeartbeat:
		p.onStoreHeartbeat(m, b.StoreHeartbeat)
	case *pb.Envelope_RegionHeartbeat:
		p.onRegionHeartbeat(m, b.RegionHeartbeat)
	case *pb.Envelope_ReportSplit:
		p.onReportSplit(m, b.ReportSplit)
	case *pb.Envelope_GetRegion:
		p.onGetRegion(m, b.GetRegion)
	case *pb.Envelope_ListRegions:
		p.onListRegions(m, b.ListRegions)
	case *pb.Envelope_AskSplit:
		p.onAskSplit(m, b.AskSplit)
	case *pb.Envelope_RegionById:
		p.onRegionByID(m, b.RegionById)
	case *pb.Envelope_MoveRegion:
		p.onMoveRegion(m, b.MoveRegion)
	case *pb.Envelope_TransferLeader:
		p.onTransferLeader(m, b.TransferLeader)
	case *pb.Envelope_DecommissionStore:
		p.onDecommissionStore(m, b.DecommissionStore)
	case nil:
		p.malformed(m, "envelope without a body")
	default:
		p.malformed(m, fmt.Sprintf("unexpected body %T", b))
	}
}

func (p *PD) malformed(m *pb.Envelope, why string) {
	p.stats.Malformed++
	p.log.Warn("pd: ignoring malformed message", "reason", why, "from", m.GetFrom())
}

// reply sends body back to the sender of m.
func (p *PD) reply(m *pb.Envelope, body pb.Body) {
	p.outbox = append(p.outbox, pb.NewEnvelope(p.id, m.GetFrom(), body))
}

// verdict is the outcome of offering a region state to the view.
type verdict int

const (
	accepted  verdict = iota // newer: published in place or made pending
	refreshed                // same epoch as PD's newest state
	stale                    // older than what PD knows
	rejected                 // invalid or inconsistent
)

func (v verdict) String() string {
	return [...]string{"accepted", "refreshed", "stale", "rejected"}[v]
}

// checkRegion returns why r cannot be a region state, or "".
func checkRegion(r *pb.Region) string {
	switch {
	case r == nil:
		return "no region"
	case r.GetId() == 0:
		return "region id 0"
	case r.GetEpoch() == nil:
		return "no epoch"
	case len(r.GetEndKey()) != 0 && string(r.GetStartKey()) >= string(r.GetEndKey()):
		return "empty range " + pb.FormatRange(r.GetStartKey(), r.GetEndKey())
	}
	for _, peer := range r.GetPeers() {
		if peer == nil {
			return "nil peer"
		}
	}
	return ""
}

// classify decides what a report of region r means against PD's state,
// without changing anything. why explains a stale or rejected verdict.
func (p *PD) classify(r *pb.Region) (v verdict, why string) {
	if why := checkRegion(r); why != "" {
		return rejected, why
	}
	if why := p.checkIDs(r); why != "" {
		return rejected, why
	}
	if k := p.view.known(r.GetId()); k != nil {
		switch {
		case r.GetEpoch().Older(k.epoch()):
			return stale, "older than " + k.region.Describe()
		case r.GetEpoch().GetVersion() == k.version() && !r.SameRange(k.region):
			return rejected, "same version as " + k.region.Describe() + " but another range"
		case r.GetEpoch().GetVersion() > k.version() && r.SameRange(k.region):
			// Only a split raises the version, and a split shrinks the range.
			return rejected, "a newer version than " + k.region.Describe() + " over the same range"
		case r.GetEpoch().Equal(k.epoch()):
			return refreshed, ""
		}
	}
	why = ""
	p.view.overlapping(r.GetStartKey(), r.GetEndKey(), func(e *entry) bool {
		if e.id() != r.GetId() && e.version() >= r.GetEpoch().GetVersion() {
			why = "overlaps newer " + e.region.Describe()
			return false
		}
		return true
	})
	if why != "" {
		return stale, why
	}
	return accepted, ""
}

// offer applies a report of region r (with leader and sizes when it comes
// from a heartbeat) to the view, without settling. The caller settles.
func (p *PD) offer(r *pb.Region, hb *pb.RegionHeartbeat) (verdict, string) {
	v, why := p.classify(r)
	if v == stale || v == rejected {
		return v, why
	}
	now := p.env.Clock.Now()
	k := p.view.known(r.GetId())
	if v == refreshed {
		if hb != nil {
			if hb.GetTerm() >= k.term { // a deposed leader's late report is not believed
				k.leader, k.term = cloneLeader(hb.GetLeader(), k.leader), hb.GetTerm()
			}
			k.size, k.keys, k.seen = hb.GetApproximateSize(), hb.GetApproximateKeys(), now
			if pub := p.view.byID[r.GetId()]; pub != nil && pub != k && hb.GetLeader() != nil && hb.GetTerm() >= pub.term {
				pub.leader, pub.term = cloneLeader(hb.GetLeader(), pub.leader), hb.GetTerm()
			}
		}
		return v, ""
	}
	e := &entry{region: r.CloneVT(), seen: now}
	if k != nil {
		e.leader, e.term, e.size, e.keys = k.leader, k.term, k.size, k.keys
	}
	if hb != nil {
		if hb.GetTerm() >= e.term {
			e.leader, e.term = cloneLeader(hb.GetLeader(), e.leader), hb.GetTerm()
		}
		e.size, e.keys = hb.GetApproximateSize(), hb.GetApproximateKeys()
	}
	pub := p.view.byID[r.GetId()]
	if pub != nil && p.view.pendingID[r.GetId()] == nil && pub.region.SameRange(r) {
		// Same keys, newer epoch (membership change): publish in place.
		p.view.unpublish(pub)
		p.view.publish(e)
		return v, ""
	}
	p.view.setPending(e)
	if pub != nil && e.leader != nil {
		pub.leader = e.leader.CloneVT() // same raft group: a better hint
	}
	return v, ""
}

// cloneLeader returns a clone of reported, or old when nothing was reported.
func cloneLeader(reported, old *pb.Peer) *pb.Peer {
	if reported == nil {
		return old
	}
	return reported.CloneVT()
}

// settle publishes what can be published and logs the changes.
func (p *PD) settle() {
	for _, c := range p.view.settle() {
		p.stats.ViewChanges++
		news := make([]string, len(c.new))
		for i, e := range c.new {
			news[i] = e.region.Describe()
		}
		p.log.Info("pd: routing view updated", "replaced", c.old.region.Describe(), "by", news)
	}
}

func (p *PD) onRegionHeartbeat(m *pb.Envelope, hb *pb.RegionHeartbeat) {
	p.stats.RegionHeartbeats++
	v, why := p.offer(hb.GetRegion(), hb)
	switch v {
	case stale:
		p.stats.StaleHeartbeats++
		p.noteStaleReport(hb.GetRegion())
		p.log.Debug("pd: stale region heartbeat ignored", "region", hb.GetRegion().Describe(),
			"from", m.GetFrom(), "reason", why)
	case rejected:
		p.stats.RejectedHeartbeats++
		p.log.Warn("pd: invalid region heartbeat ignored", "region", hb.GetRegion().Describe(),
			"from", m.GetFrom(), "reason", why)
	case accepted, refreshed:
		if v == accepted {
			p.settle()
		}
		p.noteHealth(hb)
		p.onRegionReported(m, hb.GetRegion().GetId())
	}
}

func (p *PD) onReportSplit(m *pb.Envelope, rs *pb.ReportSplit) {
	p.stats.SplitReports++
	left, right := rs.GetLeft(), rs.GetRight()
	ignore := func(why string) {
		p.stats.StaleSplitReports++
		p.bug.Reach(buggify.PDStaleSplitReport)
		p.log.Debug("pd: split report ignored", "left", left.Describe(), "right", right.Describe(),
			"from", m.GetFrom(), "reason", why)
	}
	if why := checkRegion(left); why != "" {
		ignore("left: " + why)
		return
	}
	if why := checkRegion(right); why != "" {
		ignore("right: " + why)
		return
	}
	if len(left.GetEndKey()) == 0 || string(left.GetEndKey()) != string(right.GetStartKey()) ||
		left.GetId() == right.GetId() {
		ignore("halves are not adjacent regions")
		return
	}
	if v, why := p.classify(left); v != accepted {
		ignore("left " + v.String() + ": " + why)
		return
	}
	p.offer(left, nil)
	if v, why := p.offer(right, nil); v == stale || v == rejected {
		p.log.Debug("pd: split report: right half not newer", "right", right.Describe(), "reason", why)
	}
	p.settle()
	p.onRegionReported(m, left.GetId())
}

func (p *PD) onGetRegion(m *pb.Envelope, req *pb.GetRegionRequest) {
	p.stats.GetRegions++
	e := p.view.lookup(req.GetKey())
	info := e.info()
	p.reply(m, &pb.GetRegionResponse{
		RequestId: req.GetRequestId(),
		Region:    info.Region,
		Leader:    info.Leader,
	})
}

func (p *PD) onRegionByID(m *pb.Envelope, req *pb.RegionByIDRequest) {
	p.stats.RegionByIDs++
	resp := &pb.RegionByIDResponse{RequestId: req.GetRequestId()}
	if e := p.view.known(req.GetRegionId()); e != nil {
		info := e.info()
		resp.Region, resp.Leader = info.Region, info.Leader
	}
	p.reply(m, resp)
}

func (p *PD) onListRegions(m *pb.Envelope, req *pb.ListRegionsRequest) {
	p.stats.ListRegions++
	p.reply(m, &pb.ListRegionsResponse{
		RequestId: req.GetRequestId(),
		Regions:   p.RegionInfos(),
	})
}

func (p *PD) onAskSplit(m *pb.Envelope, req *pb.AskSplitRequest) {
	p.stats.AskSplits++
	resp := &pb.AskSplitResponse{RequestId: req.GetRequestId()}
	r := req.GetRegion()
	k := p.view.known(r.GetId())
	switch {
	case r == nil:
		resp.Error = "pd: ask split: no region given"
	case k == nil:
		resp.Error = fmt.Sprintf("pd: ask split: region %d is unknown", r.GetId())
	case r.GetEpoch() == nil || r.GetEpoch().Older(k.epoch()):
		resp.Error = fmt.Sprintf("pd: ask split: %s is older than PD's %s", r.Describe(), k.region.Describe())
	case len(r.GetPeers()) == 0:
		resp.Error = fmt.Sprintf("pd: ask split: %s has no peers", r.Describe())
	case k.leader != nil && k.leader.GetStoreId() != m.GetFrom():
		// Each answer licenses one more version of the region: only its
		// leader, which proposes the split, may ask.
		resp.Error = fmt.Sprintf("pd: ask split: store %d does not lead region %d (store %d does)", m.GetFrom(), r.GetId(), k.leader.GetStoreId())
	case p.checkIDs(r) != "":
		resp.Error = fmt.Sprintf("pd: ask split: %s: %s", r.Describe(), p.checkIDs(r))
	default:
		resp.NewRegionId, resp.NewPeerIds = p.allocSplit(r)
		p.log.Debug("pd: split ids allocated", "region", r.Describe(), "new_region", resp.NewRegionId,
			"new_peers", resp.NewPeerIds)
	}
	if resp.Error != "" {
		p.stats.AskSplitErrors++
		p.log.Debug("pd: ask split refused", "reason", resp.Error, "from", m.GetFrom())
	}
	p.reply(m, resp)
}
