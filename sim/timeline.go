package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
)

// Timeline records a run for a picture of it (WriteHTML): the key range of
// every region over time, which store leads it, its membership, the
// faults on every node, the fault plan's actions, and the client
// operations with their outcomes. A run records one only when asked
// (Options.Timeline); the recorder only observes — it draws no random
// numbers, schedules nothing and writes nothing to the trace, so a run
// with a timeline has the trace hash of one without.
//
// Every method is a no-op on a nil *Timeline, so the world calls them
// unconditionally.
type Timeline struct {
	regions   map[uint64]*tlRegion
	order     []uint64          // region ids, in the order they appeared
	peerStore map[uint64]uint64 // peer id -> store id, from every region seen
	lanes     []*tlLane         // PD, then stores 1..N
	marks     []tlMark          // effects of fault actions
	splits    []tlEvent
	confs     []tlEvent
	healAll   time.Duration

	// Filled when the run ends.
	done       bool
	end        time.Duration
	workload   time.Duration
	report     *Report
	history    []checker.Op
	keys       []string
	failedKeys []string
	actions    []FaultAction
	edits      FaultEdits
	clients    int
}

// NewTimeline returns an empty recorder to pass in Options.Timeline.
func NewTimeline() *Timeline {
	return &Timeline{regions: map[uint64]*tlRegion{}, peerStore: map[uint64]uint64{}}
}

// tlRegion is one region's history: segments of constant range, leader
// and membership.
type tlRegion struct {
	id               uint64
	version, confVer uint64
	cur              tlSeg
	segs             []tlSeg
}

// tlSeg is a stretch of time over which a region kept its range, leader
// and peers.
type tlSeg struct {
	from, to   time.Duration
	start, end string // end "" = +inf
	leader     uint64 // store id, 0 = none
	peers      string // e.g. "s1 s2 s4(learner)"
}

// tlLane is one node's faults over time (PD or a store).
type tlLane struct {
	node  uint64
	spans []tlSpan
	open  map[spanKind]int // kind -> index into spans of the open one
}

type spanKind int

const (
	spanDown       spanKind = iota // store crashed or killed
	spanNet                        // isolated, partitioned, cut one way
	spanDisk                       // disk failing or about to die
	spanNotStarted                 // a spare store not added yet
)

type tlSpan struct {
	kind     spanKind
	from, to time.Duration
	label    string
}

// tlMark is an effect of a fault action at a time.
type tlMark struct {
	at   time.Duration
	text string
	ends bool
}

// tlEvent is a split or a membership change, as first applied.
type tlEvent struct {
	at     time.Duration
	region uint64
	key    string // the split key
	text   string
}

// start records the initial layout (from PD) and a lane per node.
func (t *Timeline) start(w *World) {
	if t == nil {
		return
	}
	t.lanes = append(t.lanes, &tlLane{node: PDNode, open: map[spanKind]int{}})
	for _, id := range w.AllStoreIDs() {
		l := &tlLane{node: id, open: map[spanKind]int{}}
		if id > uint64(w.cfg.Stores) {
			l.begin(spanNotStarted, 0, "not started")
		}
		t.lanes = append(t.lanes, l)
	}
	if w.pd == nil {
		return
	}
	for _, r := range w.pd.Regions() {
		t.learnPeers(r)
		reg := &tlRegion{id: r.GetId(), version: r.GetEpoch().GetVersion(), confVer: r.GetEpoch().GetConfVer(),
			cur: tlSeg{start: string(r.GetStartKey()), end: string(r.GetEndKey()), peers: peerList(r)}}
		t.regions[r.GetId()] = reg
		t.order = append(t.order, r.GetId())
	}
}

func (t *Timeline) learnPeers(r *pb.Region) {
	for _, p := range r.GetPeers() {
		t.peerStore[p.GetId()] = p.GetStoreId()
	}
}

// peerList renders a region's peers by store: "s1 s2 s4(learner)".
func peerList(r *pb.Region) string {
	var parts []string
	for _, p := range r.GetPeers() {
		s := fmt.Sprintf("s%d", p.GetStoreId())
		switch p.GetRole() {
		case pb.PeerRole_LEARNER:
			s += "(learner)"
		case pb.PeerRole_INCOMING_VOTER:
			s += "(incoming)"
		case pb.PeerRole_DEMOTING_VOTER:
			s += "(demoting)"
		}
		parts = append(parts, s)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// change closes region r's current segment at now and opens one changed
// by fn.
func (r *tlRegion) change(now time.Duration, fn func(s *tlSeg)) {
	next := r.cur
	fn(&next)
	if next == r.cur {
		return
	}
	if now > r.cur.from {
		done := r.cur
		done.to = now
		r.segs = append(r.segs, done)
	}
	next.from = now
	r.cur = next
}

// splitApplied records the first replica to apply a split: the left
// region shrinks, the right one appears.
func (t *Timeline) splitApplied(now time.Duration, left, right *pb.Region) {
	if t == nil {
		return
	}
	t.learnPeers(left)
	t.learnPeers(right)
	l := t.regions[left.GetId()]
	if l == nil || left.GetEpoch().GetVersion() <= l.version {
		return
	}
	l.version = left.GetEpoch().GetVersion()
	l.change(now, func(s *tlSeg) { s.start, s.end = string(left.GetStartKey()), string(left.GetEndKey()) })
	if _, ok := t.regions[right.GetId()]; !ok {
		t.regions[right.GetId()] = &tlRegion{id: right.GetId(), version: right.GetEpoch().GetVersion(), confVer: right.GetEpoch().GetConfVer(),
			cur: tlSeg{from: now, start: string(right.GetStartKey()), end: string(right.GetEndKey()), peers: peerList(right)}}
		t.order = append(t.order, right.GetId())
	}
	t.splits = append(t.splits, tlEvent{at: now, region: left.GetId(), key: string(right.GetStartKey()),
		text: fmt.Sprintf("split r%d at %q: r%d %s, r%d %s", left.GetId(), right.GetStartKey(),
			left.GetId(), left.Describe(), right.GetId(), right.Describe())})
}

// membershipChanged records the first replica to apply a membership change.
func (t *Timeline) membershipChanged(now time.Duration, region *pb.Region) {
	if t == nil {
		return
	}
	t.learnPeers(region)
	r := t.regions[region.GetId()]
	if r == nil || region.GetEpoch().GetConfVer() <= r.confVer {
		return
	}
	r.confVer = region.GetEpoch().GetConfVer()
	peers := peerList(region)
	r.change(now, func(s *tlSeg) { s.peers = peers })
	t.confs = append(t.confs, tlEvent{at: now, region: region.GetId(),
		text: fmt.Sprintf("r%d conf_ver %d: %s", region.GetId(), region.GetEpoch().GetConfVer(), peers)})
}

// leaderChanged records what a peer on store learned: the region's leader
// is the store whose peer last became leader, until that peer steps down
// or its store goes down.
func (t *Timeline) leaderChanged(now time.Duration, store, region, leaderPeer uint64) {
	if t == nil {
		return
	}
	r := t.regions[region]
	if r == nil {
		return
	}
	switch {
	case leaderPeer != 0 && t.peerStore[leaderPeer] == store:
		r.change(now, func(s *tlSeg) { s.leader = store })
	case r.cur.leader == store:
		r.change(now, func(s *tlSeg) { s.leader = 0 })
	}
}

// lane returns the lane of node, or nil.
func (t *Timeline) lane(node uint64) *tlLane {
	for _, l := range t.lanes {
		if l.node == node {
			return l
		}
	}
	return nil
}

func (l *tlLane) begin(kind spanKind, now time.Duration, label string) {
	if i, ok := l.open[kind]; ok {
		if l.spans[i].label == label {
			return
		}
		label = l.spans[i].label + "; " + label
		l.end(kind, now)
	}
	l.spans = append(l.spans, tlSpan{kind: kind, from: now, to: -1, label: label})
	l.open[kind] = len(l.spans) - 1
}

func (l *tlLane) end(kind spanKind, now time.Duration) {
	if i, ok := l.open[kind]; ok {
		l.spans[i].to = now
		delete(l.open, kind)
	}
}

// storeDown records a store going down; its disk faults end with it, and
// it leads nothing any more.
func (t *Timeline) storeDown(now time.Duration, id uint64, why string) {
	if t == nil {
		return
	}
	if l := t.lane(id); l != nil {
		l.end(spanDisk, now)
		l.begin(spanDown, now, why)
	}
	for _, rid := range t.order {
		if r := t.regions[rid]; r.cur.leader == id {
			r.change(now, func(s *tlSeg) { s.leader = 0 })
		}
	}
}

// storeUp records a store (re)started.
func (t *Timeline) storeUp(now time.Duration, id uint64) {
	if t == nil {
		return
	}
	if l := t.lane(id); l != nil {
		l.end(spanDown, now)
		l.end(spanNotStarted, now)
	}
}

// netFault records a network fault on nodes (those with a lane).
func (t *Timeline) netFault(now time.Duration, nodes []uint64, label string) {
	if t == nil {
		return
	}
	for _, n := range nodes {
		if l := t.lane(n); l != nil {
			l.begin(spanNet, now, label)
		}
	}
}

// netEnd ends the network fault of one node.
func (t *Timeline) netEnd(now time.Duration, node uint64) {
	if t == nil {
		return
	}
	if l := t.lane(node); l != nil {
		l.end(spanNet, now)
	}
}

// netHeal ends every network fault.
func (t *Timeline) netHeal(now time.Duration) {
	if t == nil {
		return
	}
	for _, l := range t.lanes {
		l.end(spanNet, now)
	}
}

// diskFault records an injected disk fault on store id.
func (t *Timeline) diskFault(now time.Duration, id uint64, label string) {
	if t == nil {
		return
	}
	if l := t.lane(id); l != nil {
		l.begin(spanDisk, now, label)
	}
}

// mark records an effect of a fault action.
func (t *Timeline) mark(now time.Duration, text string, ends bool) {
	if t == nil {
		return
	}
	t.marks = append(t.marks, tlMark{at: now, text: text, ends: ends})
}

// healed records the end of the workload: network and disks healed.
func (t *Timeline) healed(now time.Duration) {
	if t == nil {
		return
	}
	t.healAll = now
	t.netHeal(now)
	for _, l := range t.lanes {
		l.end(spanDisk, now)
	}
}

// finish takes what the picture needs from the checked run.
func (t *Timeline) finish(w *World, rep *Report) {
	if t == nil {
		return
	}
	t.done = true
	t.end = w.k.now
	t.workload = w.cfg.Duration
	t.report = rep
	t.history = w.checkedHistory()
	t.keys = w.keys
	t.failedKeys = rep.lin.FailedKeys
	t.actions = w.actions
	t.edits = w.cfg.FaultEdits
	t.clients = w.cfg.Clients
	for _, rid := range t.order {
		r := t.regions[rid]
		if t.end > r.cur.from {
			last := r.cur
			last.to = t.end
			r.segs = append(r.segs, last)
		}
	}
	for _, l := range t.lanes {
		for k := range l.open {
			l.spans[l.open[k]].to = t.end
		}
		clear(l.open)
	}
}
