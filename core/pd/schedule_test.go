package pd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// only returns testConfig(l) with just the named schedulers on.
func only(l Layout, schedulers ...string) Config {
	cfg := testConfig(l)
	cfg.DisableReplicaChecker = !slices.Contains(schedulers, "replica")
	cfg.DisableBalanceRegion = !slices.Contains(schedulers, "region")
	cfg.DisableBalanceLeader = !slices.Contains(schedulers, "leader")
	cfg.DisableDecommission = !slices.Contains(schedulers, "decommission")
	return cfg
}

// spreadLayout is n regions with replicas each over stores.
func spreadLayout(n, replicas int, stores ...uint64) Layout {
	var keys [][]byte
	for i := 1; i < n; i++ {
		keys = append(keys, fmt.Appendf(nil, "k%03d", i))
	}
	return LayoutFromSplitKeys(keys, replicas, stores)
}

// started sums the operators started, over every kind.
func started(p *PD) uint64 {
	var n uint64
	for _, c := range p.Stats().Operators {
		n += c.Started
	}
	return n
}

// mustStayQuiet runs n more rounds and fails if PD starts any operator.
func (c *cluster) mustStayQuiet(n int) {
	c.t.Helper()
	before := started(c.h.pd)
	c.run(n)
	if got := started(c.h.pd); got != before {
		c.t.Fatalf("%d operators started on a settled cluster: %+v", got-before, c.h.pd.Operators())
	}
}

func TestReplicaCheckerReplacesDownStore(t *testing.T) {
	cfg := only(spreadLayout(4, 3, 1, 2, 3, 4), "replica")
	c := newCluster(t, cfg)
	c.run(2)
	c.stopped[3] = true
	c.run(int(cfg.MaxStoreDownTime/time.Second) - 2)
	if n := started(c.h.pd); n != 0 {
		t.Fatalf("%d operators before the store is down", n)
	}
	c.settle(200)
	for _, id := range c.ids() {
		r := c.regions[id].r
		if r.PeerOnStore(3) != nil || voters(r) != 3 || len(r.GetPeers()) != 3 {
			t.Fatalf("region %d after repair: %s", id, peersOf(r))
		}
	}
	if st := c.h.pd.Stores()[2]; st.ID != 3 || st.State != StoreDown || st.Regions != 0 {
		t.Fatalf("store 3: %+v", st)
	}
	if s := c.h.pd.Stats().Operators[OpReplaceReplica]; s.Started != 3 || s.Finished != 3 {
		t.Fatalf("replace stats %+v", s) // the 3 regions of 4 with a peer on store 3
	}
	c.mustStayQuiet(20)
}

// A peer its leader lists as down for the max store down time is replaced,
// though its store still heartbeats.
func TestReplicaCheckerReplacesDownPeer(t *testing.T) {
	cfg := only(spreadLayout(1, 3, 1, 2, 3, 4), "replica")
	c := newCluster(t, cfg)
	fr := c.regions[1]
	bad := fr.r.PeerOnStore(2)
	c.broken[bad.GetId()] = true
	c.run(int(cfg.MaxStoreDownTime/time.Second) - 1)
	if n := started(c.h.pd); n != 0 {
		t.Fatalf("%d operators before the peer was down for long", n)
	}
	c.settle(50)
	if fr.r.PeerByID(bad.GetId()) != nil || fr.r.PeerOnStore(4) == nil {
		t.Fatalf("region %s", peersOf(fr.r))
	}
	c.healthy(3)
}

// setPeers makes region id's truth and PD's view the given peers: a
// membership change PD did not order (an abandoned operator's work).
func (c *cluster) setPeers(id uint64, peers ...*pb.Peer) {
	fr := c.regions[id]
	c.h.pd.allowConfChange(id, fr.r.GetEpoch(), 1)
	fr.r.Peers = peers
	fr.r.Epoch.ConfVer++
}

func TestReplicaCheckerFixesCounts(t *testing.T) {
	voter := func(id, store uint64) *pb.Peer { return &pb.Peer{Id: id, StoreId: store} }
	learner := func(id, store uint64) *pb.Peer {
		return &pb.Peer{Id: id, StoreId: store, Role: pb.PeerRole_LEARNER}
	}
	for _, tc := range []struct {
		name  string
		peers func(c *cluster) []*pb.Peer
		kind  OpKind
		gone  uint64 // store that must hold no peer afterwards (0: none)
	}{
		{"too few voters", func(c *cluster) []*pb.Peer {
			return []*pb.Peer{voter(2, 1), voter(3, 2)}
		}, OpAddReplica, 0},
		{"too many voters", func(c *cluster) []*pb.Peer {
			return []*pb.Peer{voter(2, 1), voter(3, 2), voter(4, 3), voter(c.h.pd.alloc(), 4)}
		}, OpRemoveReplica, 0},
		{"orphan learner", func(c *cluster) []*pb.Peer {
			return []*pb.Peer{voter(2, 1), voter(3, 2), voter(4, 3), learner(c.h.pd.alloc(), 4)}
		}, OpRemoveReplica, 4},
		{"abandoned move", func(c *cluster) []*pb.Peer { // joint done, remove never ordered
			return []*pb.Peer{learner(2, 1), voter(3, 2), voter(4, 3), voter(c.h.pd.alloc(), 4)}
		}, OpRemoveReplica, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, only(fourStores(), "replica"))
			c.setPeers(1, tc.peers(c)...)
			c.settle(30)
			c.healthy(3)
			if s := c.h.pd.Stats().Operators[tc.kind]; s.Started != 1 || s.Finished != 1 {
				t.Fatalf("%s stats %+v, all %+v", tc.kind, s, c.h.pd.Stats().Operators)
			}
			if tc.gone != 0 && c.regions[1].r.PeerOnStore(tc.gone) != nil {
				t.Fatalf("peer on store %d kept: %s", tc.gone, peersOf(c.regions[1].r))
			}
		})
	}
}

// A region with a dead voter and a learner no operator owns on the only
// store that could take a new replica (a split during a move copies the
// move's learner into the new region; then a store dies): the replacement
// has nowhere to go until the learner is removed. The checker stood still
// (swarm seed 44: region 43 kept a voter on a store killed for good).
func TestReplicaCheckerRemovesALearnerInTheWayOfARepair(t *testing.T) {
	cfg := only(fourStores(), "replica")
	c := newCluster(t, cfg)
	c.run(2)
	c.stopped[3] = true
	c.run(int(cfg.MaxStoreDownTime / time.Second))
	// The learner turns up as store 3 is counted down (here it cancels the
	// replacement PD had just started onto store 4).
	c.setPeers(1, &pb.Peer{Id: 2, StoreId: 1}, &pb.Peer{Id: 3, StoreId: 2}, &pb.Peer{Id: 4, StoreId: 3},
		&pb.Peer{Id: c.h.pd.alloc(), StoreId: 4, Role: pb.PeerRole_LEARNER})
	c.settle(200)
	c.healthy(3)
	if r := c.regions[1].r; r.PeerOnStore(3) != nil || r.PeerOnStore(4) == nil {
		t.Fatalf("region after repair: %s", peersOf(r))
	}
}

// A region in a joint configuration that no operator owns gets nothing:
// raft leaves it on its own.
func TestReplicaCheckerLeavesJointAlone(t *testing.T) {
	h := newHarnessCfg(t, only(fourStores(), "replica"))
	r := h.pd.Regions()[0]
	id := h.pd.alloc()
	h.pd.allowConfChange(1, r.GetEpoch(), 2)
	r.Peers[0].Role = pb.PeerRole_DEMOTING_VOTER
	r.Peers = append(r.Peers, &pb.Peer{Id: id, StoreId: 4, Role: pb.PeerRole_INCOMING_VOTER})
	r.Epoch.ConfVer++
	h.heartbeat(r)
	h.clock.t = h.clock.t.Add(time.Second)
	h.pd.Tick()
	if ops := h.pd.Operators(); len(ops) != 0 {
		t.Fatalf("operators on a joint region: %+v", ops)
	}
}

// A region that lost its quorum gets nothing either: no change can commit.
func TestReplicaCheckerSkipsLostQuorum(t *testing.T) {
	cfg := only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica")
	c := newCluster(t, cfg)
	c.run(1)
	c.stopped[2], c.stopped[3] = true, true
	c.run(int(cfg.MaxStoreDownTime/time.Second) + 5)
	if n := started(c.h.pd); n != 0 {
		t.Fatalf("%d operators on a region without quorum: %+v", n, c.h.pd.Operators())
	}
}

func TestDecommission(t *testing.T) {
	c := newCluster(t, only(spreadLayout(8, 3, 1, 2, 3, 4), "replica", "decommission"))
	c.run(2)
	for _, tc := range []struct {
		store uint64
		want  string
	}{
		{9, "store 9 is unknown"},
	} {
		if resp := c.admin(&pb.DecommissionStoreRequest{RequestId: 4, StoreId: tc.store}); !strings.Contains(resp.GetError(), tc.want) {
			t.Fatalf("decommission %d: %q, want %q", tc.store, resp.GetError(), tc.want)
		}
	}
	resp := c.admin(&pb.DecommissionStoreRequest{RequestId: 5, StoreId: 1})
	if resp.GetError() != "" || resp.GetRequestId() != 5 {
		t.Fatalf("decommission refused: %v", resp)
	}
	if resp := c.admin(&pb.DecommissionStoreRequest{StoreId: 1}); !strings.Contains(resp.GetError(), "already being decommissioned") {
		t.Fatalf("second decommission: %q", resp.GetError())
	}
	// Three usable stores are left for three replicas: no more.
	if resp := c.admin(&pb.DecommissionStoreRequest{StoreId: 2}); !strings.Contains(resp.GetError(), "only 2 usable stores") {
		t.Fatalf("decommission below the replica count: %q", resp.GetError())
	}
	if st := c.h.pd.Stores()[0]; st.State != StoreOffline {
		t.Fatalf("store 1: %+v", st)
	}
	c.settle(200)
	c.healthy(3)
	for _, id := range c.ids() {
		if c.regions[id].r.PeerOnStore(1) != nil {
			t.Fatalf("region %d still on store 1: %s", id, peersOf(c.regions[id].r))
		}
	}
	if st := c.h.pd.Stores()[0]; st.State != StoreTombstone || st.Regions != 0 {
		t.Fatalf("store 1: %+v", st)
	}
	if s := c.h.pd.Stats(); s.Tombstones != 1 || s.Operators[OpMoveReplica].Finished != 6 {
		t.Fatalf("stats %+v", s) // 6 of the 8 regions had a peer on store 1
	}
	// A tombstone is refused from then on.
	c.h.send(1, &pb.StoreHello{StoreId: 1})
	if b := c.h.net.take(t).GetBootstrap(); !strings.Contains(b.GetError(), "tombstone") {
		t.Fatalf("hello from a tombstone: %v", b)
	}
	if resp := c.admin(&pb.DecommissionStoreRequest{StoreId: 1}); !strings.Contains(resp.GetError(), "already a tombstone") {
		t.Fatalf("decommission of a tombstone: %q", resp.GetError())
	}
	if resp := c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 2, ToStore: 1}); !strings.Contains(resp.GetError(), "store 1 is tombstone") {
		t.Fatalf("move to a tombstone: %q", resp.GetError())
	}
}

// Operators moving replicas onto a store that is decommissioned are
// cancelled.
func TestDecommissionCancelsMovesOnto(t *testing.T) {
	c := newCluster(t, quietConfig(Layout{Ranges: []RangeSpec{{}}, Replicas: 3, Stores: []uint64{1, 2, 3, 4, 5}}))
	c.stuck = true
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	if resp := c.admin(&pb.DecommissionStoreRequest{StoreId: 4}); resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	if ops := c.h.pd.Operators(); len(ops) != 0 {
		t.Fatalf("move onto an offline store still runs: %+v", ops)
	}
	if s := c.h.pd.Stats().Operators[OpMoveReplica]; s.Cancelled != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBalanceJoinedStores(t *testing.T) {
	c := newCluster(t, only(spreadLayout(10, 3, 1, 2, 3), "replica", "region", "leader"))
	c.run(2)
	c.mustStayQuiet(5) // balanced from the start: every store holds every region
	c.join(4)
	c.join(5)
	c.settle(400)
	c.healthy(3)
	regions, leaders := c.counts()
	all := []uint64{1, 2, 3, 4, 5}
	if spreadOf(regions, all) > 1 || spreadOf(leaders, all) > 1 {
		t.Fatalf("not balanced: regions %v leaders %v", regions, leaders)
	}
	if regions[4] < 5 || regions[5] < 5 {
		t.Fatalf("joined stores got too little: %v", regions)
	}
	c.mustStayQuiet(30)
}

// Splits on three of five stores skew the counts; the balancer evens them.
func TestBalanceSkewedStart(t *testing.T) {
	c := newCluster(t, only(Layout{Ranges: []RangeSpec{{}}, Replicas: 3, Stores: []uint64{1, 2, 3, 4, 5}}, "replica", "region"))
	c.run(1)
	cfgKeys := []string{"b", "d", "f", "h", "j", "l", "n", "p", "r"}
	for _, k := range cfgKeys {
		right := c.split(c.ids()[len(c.ids())-1], k)
		_ = right
	}
	regions, _ := c.counts()
	if regions[4] != 0 || regions[1] != 10 {
		t.Fatalf("start %v", regions)
	}
	c.settle(400)
	c.healthy(3)
	regions, _ = c.counts()
	if spreadOf(regions, []uint64{1, 2, 3, 4, 5}) > 1 {
		t.Fatalf("not balanced: %v", regions)
	}
	c.mustStayQuiet(30)
}

func TestBalanceLeaders(t *testing.T) {
	c := newCluster(t, only(spreadLayout(9, 3, 1, 2, 3), "leader"))
	for _, fr := range c.regions {
		fr.leader = fr.r.PeerOnStore(1).GetId()
	}
	c.settle(100)
	_, leaders := c.counts()
	if leaders[1] != 3 || leaders[2] != 3 || leaders[3] != 3 {
		t.Fatalf("leaders %v", leaders)
	}
	if s := c.h.pd.Stats().Operators[OpTransferLeader]; s.Started != 6 || s.Finished != 6 {
		t.Fatalf("stats %+v", s) // exactly the transfers needed: no ping-pong
	}
	c.mustStayQuiet(30)
}

// Once counts are within one, bytes are balanced with moves that keep
// counts within one and shrink the gap they close.
func TestBalanceSize(t *testing.T) {
	// One replica: region i on store i%4+1, so store 1 holds 3 regions,
	// the others 2; store 1's regions are big.
	c := newCluster(t, only(spreadLayout(9, 1, 1, 2, 3, 4), "region"))
	for _, fr := range c.regions {
		fr.size = 100
		if fr.r.PeerOnStore(1) != nil {
			fr.size = 300
		}
	}
	bytesOf := func() map[uint64]int {
		out := map[uint64]int{}
		for _, fr := range c.regions {
			out[fr.r.GetPeers()[0].GetStoreId()] += int(fr.size)
		}
		return out
	}
	all := []uint64{1, 2, 3, 4}
	before := spreadOf(bytesOf(), all)
	c.settle(100)
	c.healthy(1)
	after := spreadOf(bytesOf(), all)
	regions, _ := c.counts()
	if after >= before || spreadOf(regions, all) > 1 {
		t.Fatalf("bytes spread %d -> %d (%v), counts %v", before, after, bytesOf(), regions)
	}
	if s := c.h.pd.Stats().Operators[OpMoveReplica]; s.Started == 0 || s.Started != s.Finished {
		t.Fatalf("stats %+v", s)
	}
	c.mustStayQuiet(30)
}

// limitCheck fails unless every store is involved in at most limit
// running operators.
func limitCheck(t tb, p *PD, limit int) {
	t.Helper()
	per := map[uint64]int{}
	for _, op := range p.Operators() {
		per[op.To]++
		if op.Kind != OpReplaceReplica && op.Kind != OpTransferLeader {
			per[op.From]++
		}
	}
	delete(per, 0)
	for s, n := range per {
		if n > limit {
			t.Fatalf("store %d in %d operators, limit %d: %+v", s, n, limit, p.Operators())
		}
	}
}

func TestStoreLimit(t *testing.T) {
	cfg := only(spreadLayout(12, 3, 1, 2, 3), "region")
	cfg.StoreLimit = 2
	c := newCluster(t, cfg)
	c.catchUp = 4 // moves take a while: they pile up if nothing holds them
	c.run(2)
	c.join(4)
	peak := 0
	for range 200 {
		c.step()
		limitCheck(t, c.h.pd, 2)
		peak = max(peak, len(c.h.pd.Operators()))
	}
	if peak != 2 {
		t.Fatalf("at most %d operators at once, want the limit 2", peak)
	}
	regions, _ := c.counts()
	if spreadOf(regions, []uint64{1, 2, 3, 4}) > 1 {
		t.Fatalf("not balanced: %v", regions)
	}
}

// The same script twice gives the same messages from PD.
func TestSchedulingDeterministic(t *testing.T) {
	run := func() ([]*pb.Envelope, []string) {
		cfg := testConfig(spreadLayout(12, 3, 1, 2, 3, 4))
		c := newCluster(t, cfg)
		c.run(2)
		c.join(5)
		c.admin(&pb.TransferLeaderRequest{RegionId: 1, ToStore: 2})
		c.run(10)
		c.stopped[3] = true
		c.run(int(cfg.MaxStoreDownTime / time.Second))
		c.admin(&pb.DecommissionStoreRequest{StoreId: 2})
		c.settle(500)
		c.healthy(3)
		return c.h.net.all, c.applied
	}
	a, aa := run()
	b, bb := run()
	if !slices.Equal(aa, bb) {
		t.Fatalf("orders applied differ:\n%v\n%v", aa, bb)
	}
	if len(a) != len(b) {
		t.Fatalf("%d vs %d messages", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Fatalf("message %d differs:\n%v\n%v", i, a[i], b[i])
		}
	}
	if len(aa) < 20 {
		t.Fatalf("only %d orders applied: the script did little", len(aa))
	}
}

// A store that is Offline and silent too has dead voters: with the
// decommission scheduler off, the replica checker still replaces them (here
// from the store's silence alone: leaders report no down peers).
func TestReplicaCheckerReplacesOfflineDownStore(t *testing.T) {
	cfg := only(spreadLayout(4, 3, 1, 2, 3, 4, 5), "replica")
	c := newCluster(t, cfg)
	c.noDown = true
	c.run(1)
	if resp := c.admin(&pb.DecommissionStoreRequest{StoreId: 3}); resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	c.stopped[3] = true
	c.run(int(cfg.MaxStoreDownTime / time.Second))
	c.settle(100)
	c.healthy(3)
	for _, id := range c.ids() {
		if c.regions[id].r.PeerOnStore(3) != nil {
			t.Fatalf("region %d keeps its dead peer: %s", id, peersOf(c.regions[id].r))
		}
	}
	if st := c.h.pd.Stores()[2]; st.State != StoreOffline {
		t.Fatalf("store 3 %+v (decommission is off: no tombstone)", st)
	}
}
