package pd

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// cluster is a fake multiraft cluster of well-behaved stores around a real
// PD. It holds the true state of every region and plays the store side of
// the protocol: every round each live store sends a StoreHeartbeat, each
// region's leader a RegionHeartbeat, and an order PD answers with is
// applied exactly as a store would (only at the current epoch, by the
// leader), followed by a prompt heartbeat. Raft leaves a joint
// configuration on the round after it entered it. An order the protocol
// does not allow fails the test.
type cluster struct {
	t       tb
	h       *harness
	regions map[uint64]*fakeRegion
	stores  []uint64        // every store that said hello, sorted
	stopped map[uint64]bool // crashed stores: they send nothing and never lead
	broken  map[uint64]bool // peers (by id) that are listed down although their store lives
	stuck   bool            // leaders ignore every order
	noDown  bool            // leaders report no down_peers
	catchUp int             // rounds a new learner stays pending
	round   int
	applied []string // every order applied: "region 1: add-learner 10@4"
}

// fakeRegion is the true state of one region.
type fakeRegion struct {
	r       *pb.Region
	leader  uint64 // peer id; 0 = none
	size    uint64
	pending map[uint64]int // peer id -> rounds it stays behind
}

// testConfig is a PD config on a test's time scale: one round is a second.
func testConfig(l Layout) Config {
	return Config{
		ID:                  pdID,
		Layout:              l,
		HeartbeatInterval:   time.Second,
		StoreDisconnectTime: 3 * time.Second,
		MaxStoreDownTime:    20 * time.Second,
		OperatorTimeout:     60 * time.Second,
		ScheduleInterval:    time.Second,
	}
}

// newCluster starts PD with cfg, says hello from every layout store and
// makes each region's first voter its leader.
func newCluster(t tb, cfg Config) *cluster {
	t.Helper()
	c := &cluster{t: t, h: newHarnessCfg(t, cfg), regions: map[uint64]*fakeRegion{},
		stopped: map[uint64]bool{}, broken: map[uint64]bool{}, catchUp: 1}
	for _, s := range cfg.Layout.Stores {
		c.h.send(s, &pb.StoreHello{StoreId: s})
		c.stores = append(c.stores, s)
	}
	slices.Sort(c.stores)
	c.h.net.sent = nil
	for _, r := range c.h.pd.Regions() {
		c.regions[r.GetId()] = &fakeRegion{r: r, leader: r.GetPeers()[0].GetId(), size: 100, pending: map[uint64]int{}}
	}
	return c
}

// join brings a new store into the cluster.
func (c *cluster) join(s uint64) {
	c.t.Helper()
	c.h.send(s, &pb.StoreHello{StoreId: s, Join: true})
	b := c.h.net.take(c.t).GetBootstrap()
	if b.GetError() != "" || len(b.GetRegions()) != 0 {
		c.t.Fatalf("join of store %d: %v", s, b)
	}
	c.stores = append(c.stores, s)
	slices.Sort(c.stores)
}

// ids returns the region ids, sorted.
func (c *cluster) ids() []uint64 {
	ids := make([]uint64, 0, len(c.regions))
	for id := range c.regions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// admin sends a manual order and returns PD's answer.
func (c *cluster) admin(body pb.Body) *pb.AdminResponse {
	c.t.Helper()
	c.h.send(50, body)
	resp := c.h.net.take(c.t).GetAdminResponse()
	if resp == nil {
		c.t.Fatalf("no admin response")
	}
	return resp
}

// step runs one round: a second passes, stores heartbeat, regions
// heartbeat (and apply orders), PD ticks.
func (c *cluster) step() {
	c.t.Helper()
	c.round++
	c.h.clock.t = c.h.clock.t.Add(time.Second)
	for _, s := range c.stores {
		if !c.stopped[s] {
			c.h.send(s, &pb.StoreHeartbeat{StoreId: s})
		}
	}
	for _, id := range c.ids() {
		c.regionRound(c.regions[id])
	}
	c.h.pd.Tick()
	if len(c.h.net.sent) != 0 {
		c.t.Fatalf("round %d: PD sent %d unexpected messages", c.round, len(c.h.net.sent))
	}
}

// run runs n rounds.
func (c *cluster) run(n int) {
	c.t.Helper()
	for range n {
		c.step()
	}
}

// settle runs rounds until PD has had no operator for three rounds in a
// row, at most max rounds; it returns the rounds run.
func (c *cluster) settle(max int) int {
	c.t.Helper()
	quiet := 0
	for i := 1; i <= max; i++ {
		c.step()
		if len(c.h.pd.Operators()) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == 3 {
			return i
		}
	}
	c.t.Fatalf("not settled after %d rounds; operators %+v", max, c.h.pd.Operators())
	return max
}

func (c *cluster) live(peer *pb.Peer) bool {
	return !c.stopped[peer.GetStoreId()] && !c.broken[peer.GetId()]
}

// split cuts region id at key through PD's AskSplit, as its leader would,
// reports both halves and returns the right one.
func (c *cluster) split(id uint64, key string) *fakeRegion {
	c.t.Helper()
	fr := c.regions[id]
	ask := c.h.askSplit(c.t, fr.r)
	if ask.GetError() != "" {
		c.t.Fatalf("ask split: %s", ask.GetError())
	}
	l, r := split(fr.r, key, ask.GetNewRegionId(), ask.GetNewPeerIds())
	fr.r = l
	right := &fakeRegion{r: r, size: fr.size / 2, pending: map[uint64]int{}}
	fr.size -= right.size
	if lead := fr.r.PeerByID(fr.leader); lead != nil {
		right.leader = r.PeerOnStore(lead.GetStoreId()).GetId()
	}
	c.regions[r.GetId()] = right
	c.h.send(1, &pb.ReportSplit{Left: l, Right: r})
	return right
}

// regionRound is one round of one region.
func (c *cluster) regionRound(fr *fakeRegion) {
	c.t.Helper()
	if fr.r.InJointConfig() { // raft leaves the joint configuration on its own
		for _, p := range fr.r.Peers {
			switch p.Role {
			case pb.PeerRole_INCOMING_VOTER:
				p.Role = pb.PeerRole_VOTER
			case pb.PeerRole_DEMOTING_VOTER:
				p.Role = pb.PeerRole_LEARNER
			}
		}
		fr.r.Epoch.ConfVer++
	}
	for _, id := range sortedKeys(fr.pending) {
		if p := fr.r.PeerByID(id); p == nil || c.live(p) {
			if fr.pending[id]--; fr.pending[id] <= 0 {
				delete(fr.pending, id)
			}
		}
	}
	leader := fr.r.PeerByID(fr.leader)
	if leader == nil || !c.live(leader) || leader.GetRole() != pb.PeerRole_VOTER {
		fr.leader = 0
		var vs, live []*pb.Peer
		for _, p := range fr.r.Peers {
			if p.Role == pb.PeerRole_VOTER {
				vs = append(vs, p)
				if c.live(p) {
					live = append(live, p)
				}
			}
		}
		if 2*len(live) <= len(vs) {
			return // no quorum: no leader, no heartbeat
		}
		fr.leader = live[0].GetId()
	}
	for range 8 {
		if !c.heartbeat(fr) {
			return
		}
	}
	c.t.Fatalf("region %d: PD keeps ordering", fr.r.GetId())
}

func sortedKeys(m map[uint64]int) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// heartbeat sends fr's heartbeat from its leader and applies what PD
// orders; it reports whether an order changed the region (so the leader
// heartbeats again at once).
func (c *cluster) heartbeat(fr *fakeRegion) bool {
	c.t.Helper()
	leader := fr.r.PeerByID(fr.leader)
	hb := &pb.RegionHeartbeat{Region: proto.Clone(fr.r).(*pb.Region), Leader: proto.Clone(leader).(*pb.Peer),
		ApproximateSize: fr.size}
	for _, p := range fr.r.Peers {
		if _, ok := fr.pending[p.GetId()]; ok {
			hb.PendingPeers = append(hb.PendingPeers, proto.Clone(p).(*pb.Peer))
		}
		if !c.live(p) && !c.noDown {
			hb.DownPeers = append(hb.DownPeers, proto.Clone(p).(*pb.Peer))
		}
	}
	c.h.send(leader.GetStoreId(), hb)
	sent := c.h.net.sent
	c.h.net.sent = nil
	changed := false
	for _, m := range sent {
		o := m.GetRegionOrder()
		if o == nil || m.GetTo() != leader.GetStoreId() || m.GetFrom() != pdID || o.GetRegionId() != fr.r.GetId() {
			c.t.Fatalf("region %d: unexpected reply to a heartbeat: to %d %T", fr.r.GetId(), m.GetTo(), m.GetBody())
		}
		if c.apply(fr, o) {
			changed = true
		}
	}
	return changed
}

// apply executes order o on fr as its leader would, and reports whether
// it changed anything.
func (c *cluster) apply(fr *fakeRegion, o *pb.RegionOrder) bool {
	c.t.Helper()
	r := fr.r
	if c.stuck || !o.GetRegionEpoch().Equal(r.GetEpoch()) {
		return false
	}
	fail := func(format string, args ...any) {
		c.t.Fatalf("round %d: region %d: invalid order: %s", c.round, r.GetId(), fmt.Sprintf(format, args...))
	}
	if tl := o.GetTransferLeader(); tl != nil {
		if o.GetChangePeers() != nil {
			fail("both a change and a transfer")
		}
		p := r.PeerByID(tl.GetId())
		if p == nil || p.GetStoreId() != tl.GetStoreId() || p.GetRole() != pb.PeerRole_VOTER {
			fail("transfer to %d@%d, not a voter", tl.GetId(), tl.GetStoreId())
		}
		if !c.live(p) || p.GetId() == fr.leader {
			return false
		}
		fr.leader = p.GetId()
		c.applied = append(c.applied, fmt.Sprintf("region %d: transfer-leader %d@%d", r.GetId(), p.GetId(), p.GetStoreId()))
		return true
	}
	cp := o.GetChangePeers()
	if cp == nil || cp.GetHeader().GetRegionId() != r.GetId() || !cp.GetHeader().GetRegionEpoch().Equal(r.GetEpoch()) {
		fail("no change, or a header for another region or epoch")
	}
	ch := cp.GetChanges()
	peer := func(i int) *pb.Peer {
		p := r.PeerByID(ch[i].GetPeer().GetId())
		if p != nil && p.GetStoreId() != ch[i].GetPeer().GetStoreId() {
			fail("peer %d named on store %d, is on %d", p.GetId(), ch[i].GetPeer().GetStoreId(), p.GetStoreId())
		}
		return p
	}
	var what string
	switch {
	case len(ch) == 1 && ch[0].GetType() == pb.ChangeType_ADD_LEARNER:
		np := ch[0].GetPeer()
		if peer(0) != nil || r.PeerOnStore(np.GetStoreId()) != nil || np.GetId() == 0 {
			fail("add learner %d@%d: store or id taken", np.GetId(), np.GetStoreId())
		}
		r.Peers = append(r.Peers, &pb.Peer{Id: np.GetId(), StoreId: np.GetStoreId(), Role: pb.PeerRole_LEARNER})
		if c.catchUp > 0 {
			fr.pending[np.GetId()] = c.catchUp
		}
		what = "add-learner"
	case len(ch) == 1 && ch[0].GetType() == pb.ChangeType_PROMOTE_LEARNER:
		p := peer(0)
		if p == nil || p.GetRole() != pb.PeerRole_LEARNER {
			fail("promote: %d is not a learner", ch[0].GetPeer().GetId())
		}
		p.Role = pb.PeerRole_VOTER
		what = "promote-learner"
	case len(ch) == 1 && ch[0].GetType() == pb.ChangeType_REMOVE_PEER:
		p := peer(0)
		if p == nil {
			fail("remove: %d is not a peer", ch[0].GetPeer().GetId())
		}
		if p.GetId() == fr.leader {
			fail("remove of the leader %d", p.GetId())
		}
		r.Peers = slices.DeleteFunc(r.Peers, func(q *pb.Peer) bool { return q.GetId() == p.GetId() })
		delete(fr.pending, p.GetId())
		what = "remove-peer"
	case len(ch) == 2 && ch[0].GetType() == pb.ChangeType_PROMOTE_LEARNER && ch[1].GetType() == pb.ChangeType_DEMOTE_VOTER:
		in, out := peer(0), peer(1)
		if in == nil || in.GetRole() != pb.PeerRole_LEARNER || out == nil || out.GetRole() != pb.PeerRole_VOTER {
			fail("joint change: %d not a learner or %d not a voter", ch[0].GetPeer().GetId(), ch[1].GetPeer().GetId())
		}
		if out.GetId() == fr.leader {
			fail("demotion of the leader %d", out.GetId())
		}
		in.Role, out.Role = pb.PeerRole_INCOMING_VOTER, pb.PeerRole_DEMOTING_VOTER
		what = "promote-demote"
	default:
		fail("change set of %d changes is not one the protocol allows", len(ch))
	}
	slices.SortFunc(r.Peers, func(a, b *pb.Peer) int { return cmpUint(a.GetStoreId(), b.GetStoreId()) })
	r.Epoch.ConfVer++
	var names []string
	for _, x := range ch {
		names = append(names, fmt.Sprintf("%d@%d", x.GetPeer().GetId(), x.GetPeer().GetStoreId()))
	}
	c.applied = append(c.applied, fmt.Sprintf("region %d: %s %v", r.GetId(), what, names))
	return true
}

// counts returns, per store, the regions with a peer there and the regions
// it leads, in the true state.
func (c *cluster) counts() (regions, leaders map[uint64]int) {
	regions, leaders = map[uint64]int{}, map[uint64]int{}
	for _, fr := range c.regions {
		for _, p := range fr.r.Peers {
			regions[p.GetStoreId()]++
			if p.GetId() == fr.leader {
				leaders[p.GetStoreId()]++
			}
		}
	}
	return regions, leaders
}

// spreadOf returns max-min of m over stores.
func spreadOf(m map[uint64]int, stores []uint64) int {
	lo, hi := spread(stores, func(s uint64) int { return m[s] })
	return hi - lo
}

// healthy fails the test unless every region has exactly want voters, no
// learner and no joint role, and PD's view equals the truth.
func (c *cluster) healthy(want int) {
	c.t.Helper()
	view := map[uint64]*pb.Region{}
	for _, r := range c.h.pd.Regions() {
		view[r.GetId()] = r
	}
	for _, id := range c.ids() {
		r := c.regions[id].r
		if voters(r) != want || len(r.GetPeers()) != want {
			c.t.Fatalf("region %d has %d voters of %d peers, want %d: %s", id, voters(r), len(r.GetPeers()), want, peersOf(r))
		}
		if !proto.Equal(view[id], r) {
			c.t.Fatalf("PD's view of region %d: %s %s, truth %s %s", id, view[id].Describe(), peersOf(view[id]),
				r.Describe(), peersOf(r))
		}
	}
}

// peersOf renders a region's peers as id@store(role).
func peersOf(r *pb.Region) string {
	var s []string
	for _, p := range r.GetPeers() {
		s = append(s, fmt.Sprintf("%d@%d(%s)", p.GetId(), p.GetStoreId(), p.GetRole()))
	}
	return fmt.Sprint(s)
}
