package raftstore_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// The layout every test starts from: PD cuts the keyspace at "m" and
// numbers region 1 ["", "m") with peers 2, 3, 4 and region 5 ["m", +inf)
// with peers 6, 7, 8, one peer per store.
const (
	left  = uint64(1)
	right = uint64(5)
)

func startTwoRegions(t testing.TB, cfg raftstore.Config) *cluster {
	t.Helper()
	c := newCluster(t, cfg, "m")
	init := c.pd.InitialRegions()
	if len(init) != 2 || init[0].GetId() != left || init[1].GetId() != right {
		t.Fatalf("PD's initial regions are %v, the tests assume ids %d and %d", init, left, right)
	}
	c.waitBootstrap(left, right)
	return c
}

func TestBootstrapFromPD(t *testing.T) {
	c := newCluster(t, defaultConfig(), "m")
	for _, id := range c.ids {
		if c.store(id).Bootstrapped() || len(c.store(id).Regions()) != 0 {
			t.Fatalf("store %d has regions before talking to PD", id)
		}
	}
	c.waitBootstrap(left, right)

	init := c.pd.InitialRegions()
	for _, id := range c.ids {
		got := c.store(id).Regions()
		if len(got) != len(init) {
			t.Fatalf("store %d hosts %d regions, PD's layout has %d\n%s", id, len(got), len(init), c.describe())
		}
		for i, want := range init {
			rs := got[i]
			r := rs.Region
			if r.GetId() != want.GetId() || !bytes.Equal(r.GetStartKey(), want.GetStartKey()) || !bytes.Equal(r.GetEndKey(), want.GetEndKey()) {
				t.Errorf("store %d region %d: [%q,%q), PD says region %d [%q,%q)", id, r.GetId(), r.GetStartKey(), r.GetEndKey(),
					want.GetId(), want.GetStartKey(), want.GetEndKey())
			}
			if r.GetEpoch().GetConfVer() != 1 || r.GetEpoch().GetVersion() != 1 {
				t.Errorf("store %d region %d: epoch %v, want {1,1}", id, r.GetId(), r.GetEpoch())
			}
			if len(r.GetPeers()) != 3 || !proto.Equal(r, want) {
				t.Errorf("store %d region %d: meta %v differs from PD's %v", id, r.GetId(), r, want)
			}
			if self := want.PeerOnStore(id); self == nil || rs.PeerID != self.GetId() || !rs.Initialized {
				t.Errorf("store %d region %d: runs peer %d (initialized %v), PD placed peer %v here", id, r.GetId(), rs.PeerID, rs.Initialized, self)
			}
		}
	}
	// Exactly one leader per region, and every replica names it.
	for _, rid := range []uint64{left, right} {
		leader, ok := c.leaderOf(rid)
		if !ok {
			t.Fatalf("region %d has no single agreed leader\n%s", rid, c.describe())
		}
		n := 0
		for _, id := range c.ids {
			if c.region(id, rid).IsLeader {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("region %d: %d stores claim leadership", rid, n)
		}
		// PD learns the leader from its heartbeat.
		lp := c.region(leader, rid).PeerID
		c.waitFor(30, fmt.Sprintf("PD to learn the leader of region %d", rid), func() bool {
			for _, ri := range c.pd.RegionInfos() {
				if ri.GetRegion().GetId() == rid {
					return ri.GetLeader().GetId() == lp && ri.GetLeader().GetStoreId() == leader
				}
			}
			return false
		})
	}
	if got := len(c.pd.Stores()); got != 3 {
		t.Fatalf("PD registered %d stores, want 3", got)
	}
}

func TestReadWriteThroughLeader(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())

	if v := c.ok(left, put("a", "1")).GetPut().GetVersion(); v != 1 {
		t.Fatalf("first put version = %d, want 1", v)
	}
	c.mustGet(left, "a", "1", 1)
	if v := c.ok(left, put("a", "2")).GetPut().GetVersion(); v != 2 {
		t.Fatalf("second put version = %d, want 2", v)
	}
	c.mustGet(left, "a", "2", 2)
	if g := c.ok(left, get("e")).GetGet(); g.GetFound() || g.GetVersion() != 0 || len(g.GetValue()) != 0 {
		t.Fatalf("get of a never written key = %v, want not found", g)
	}

	// CAS: success only on the exact version; 0 means "absent".
	if r := c.ok(left, cas("a", 1, "x")).GetCas(); r.GetSucceeded() || r.GetVersion() != 2 {
		t.Fatalf("cas on stale version = %v, want failure reporting version 2", r)
	}
	if r := c.ok(left, cas("a", 0, "x")).GetCas(); r.GetSucceeded() || r.GetVersion() != 2 {
		t.Fatalf("create-if-absent on a present key = %v, want failure reporting version 2", r)
	}
	c.mustGet(left, "a", "2", 2)
	if r := c.ok(left, cas("a", 2, "3")).GetCas(); !r.GetSucceeded() || r.GetVersion() != 3 {
		t.Fatalf("cas on current version = %v, want success with version 3", r)
	}
	c.mustGet(left, "a", "3", 3)
	if r := c.ok(left, cas("b", 0, "new")).GetCas(); !r.GetSucceeded() || r.GetVersion() != 1 {
		t.Fatalf("create-if-absent on an absent key = %v, want success with version 1", r)
	}

	// Delete reports existence and resets the version.
	if d := c.ok(left, del("a")).GetDelete(); !d.GetDeleted() {
		t.Fatal("delete of a present key reported not deleted")
	}
	if d := c.ok(left, del("a")).GetDelete(); d.GetDeleted() {
		t.Fatal("delete of an absent key reported deleted")
	}
	if g := c.ok(left, get("a")).GetGet(); g.GetFound() {
		t.Fatalf("get after delete = %v, want not found", g)
	}
	if v := c.ok(left, put("a", "again")).GetPut().GetVersion(); v != 1 {
		t.Fatalf("put after delete version = %d, want 1", v)
	}

	// Scan is clamped to the region that serves it.
	for _, k := range []string{"c", "l"} {
		c.ok(left, put(k, "v"+k))
	}
	for _, k := range []string{"m", "n", "z"} {
		c.ok(right, put(k, "v"+k))
	}
	scans := []struct {
		rid        uint64
		start, end string
		limit      uint32
		want       string
	}{
		{left, "", "", 0, "a,b,c,l"},
		{left, "b", "zzz", 0, "b,c,l"}, // end clamped to "m"
		{left, "b", "l", 0, "b,c"},
		{left, "", "", 2, "a,b"},
		{right, "m", "", 0, "m,n,z"},
		{right, "n", "", 0, "n,z"},
		{right, "m", "z", 1, "m"},
	}
	for _, s := range scans {
		resp := c.ok(s.rid, scan(s.start, s.end, s.limit))
		if got := scanKeys(resp); got != s.want {
			t.Errorf("scan region %d [%q,%q) limit %d = %q, want %q", s.rid, s.start, s.end, s.limit, got, s.want)
		}
	}
	for _, p := range c.ok(left, scan("", "", 0)).GetScan().GetPairs() {
		if string(p.GetKey()) == "c" && (string(p.GetValue()) != "vc" || p.GetVersion() != 1) {
			t.Errorf("scan pair %v, want c=vc@1", p)
		}
	}
	// Every replica applied the same writes.
	c.waitReplicas(left, "a,b,c,l")
	c.waitReplicas(right, "m,n,z")
}

// regionErr calls store with a request built by op and returns its region
// error, failing if there is none.
func (c *cluster) regionErr(store uint64, hdr *pb.RequestHeader, op func(*pb.KvRequest)) *pb.RegionError {
	c.t.Helper()
	req := &pb.KvRequest{Header: hdr}
	if op != nil {
		op(req)
	}
	resp := c.call(store, req)
	e := resp.GetRegionError()
	if e == nil {
		c.t.Fatalf("request %v to store %d was served (%v), want a region error", req, store, resp)
	}
	if e.GetMessage() == "" {
		c.t.Errorf("region error %v has no message", e)
	}
	if resp.GetResult() != nil {
		c.t.Errorf("response %v has both an error and a result", resp)
	}
	return e
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	c.ok(left, put("a", "orig"))
	leader := c.waitLeader(left)
	hdr := c.header(leader, left)
	before := c.totalStats()

	t.Run("unknown region", func(t *testing.T) {
		e := c.regionErr(leader, &pb.RequestHeader{RegionId: 999, RegionEpoch: hdr.GetRegionEpoch()}, get("a"))
		if e.GetRegionNotFound().GetRegionId() != 999 {
			t.Fatalf("got %v, want RegionNotFound{999}", e)
		}
	})
	t.Run("key not in region", func(t *testing.T) {
		for _, op := range []func(*pb.KvRequest){get("x"), put("x", "bad"), del("x"), cas("x", 0, "bad"), scan("x", "", 0)} {
			e := c.regionErr(leader, hdr, op)
			k := e.GetKeyNotInRegion()
			if k == nil || string(k.GetKey()) != "x" || k.GetRegionId() != left || len(k.GetStartKey()) != 0 || string(k.GetEndKey()) != "m" {
				t.Fatalf("got %v, want KeyNotInRegion{key x, region 1 [\"\",\"m\")}", e)
			}
		}
		rl := c.waitLeader(right)
		e := c.regionErr(rl, c.header(rl, right), put("a", "bad"))
		if k := e.GetKeyNotInRegion(); k == nil || k.GetRegionId() != right || string(k.GetStartKey()) != "m" || len(k.GetEndKey()) != 0 {
			t.Fatalf("got %v, want KeyNotInRegion{region 5 [\"m\",+inf)}", e)
		}
	})
	t.Run("wrong epoch", func(t *testing.T) {
		for _, ep := range []*pb.Epoch{{ConfVer: 1, Version: 2}, {ConfVer: 1, Version: 0}, {}} {
			e := c.regionErr(leader, &pb.RequestHeader{RegionId: left, RegionEpoch: ep}, put("a", "bad"))
			en := e.GetEpochNotMatch()
			if en == nil || len(en.GetCurrentRegions()) != 1 || !proto.Equal(en.GetCurrentRegions()[0], c.meta(leader, left)) {
				t.Fatalf("epoch %v: got %v, want EpochNotMatch listing region 1 as it is", ep, e)
			}
		}
	})
	t.Run("follower", func(t *testing.T) {
		lp := c.region(leader, left).PeerID
		for _, id := range c.ids {
			if id == leader {
				continue
			}
			for _, op := range []func(*pb.KvRequest){get("a"), put("a", "bad"), scan("", "", 0)} {
				e := c.regionErr(id, hdr, op)
				nl := e.GetNotLeader()
				if nl == nil || nl.GetRegionId() != left || nl.GetLeader().GetId() != lp || nl.GetLeader().GetStoreId() != leader {
					t.Fatalf("store %d: got %v, want NotLeader hinting peer %d on store %d", id, e, lp, leader)
				}
			}
		}
	})
	t.Run("invalid", func(t *testing.T) {
		cases := []struct {
			name string
			hdr  *pb.RequestHeader
			op   func(*pb.KvRequest)
		}{
			{"no header", nil, get("a")},
			{"no region id", &pb.RequestHeader{RegionEpoch: hdr.GetRegionEpoch()}, get("a")},
			{"no epoch", &pb.RequestHeader{RegionId: left}, get("a")},
			{"no operation", hdr, nil},
			{"get empty key", hdr, get("")},
			{"put empty key", hdr, put("", "bad")},
			{"delete empty key", hdr, del("")},
			{"cas empty key", hdr, cas("", 0, "bad")},
			{"reversed scan", hdr, scan("d", "b", 0)},
			{"empty scan range", hdr, scan("b", "b", 0)},
		}
		for _, tc := range cases {
			e := c.regionErr(leader, tc.hdr, tc.op)
			if e.GetInvalidRequest().GetReason() == "" {
				t.Errorf("%s: got %v, want InvalidRequest with a reason", tc.name, e)
			}
		}
	})

	after := c.totalStats()
	for _, d := range []struct {
		name      string
		got, want uint64
	}{
		{"RegionNotFound", after.RegionNotFound - before.RegionNotFound, 1},
		{"KeyNotInRegion", after.KeyNotInRegion - before.KeyNotInRegion, 6},
		{"EpochNotMatch", after.EpochNotMatch - before.EpochNotMatch, 3},
		{"NotLeader", after.NotLeader - before.NotLeader, 6},
		{"InvalidRequests", after.InvalidRequests - before.InvalidRequests, 10},
		{"Proposals", after.Proposals - before.Proposals, 0},
		{"ReadsServed", after.ReadsServed - before.ReadsServed, 0},
	} {
		if d.got != d.want {
			t.Errorf("Stats().%s summed over the stores grew by %d, want %d", d.name, d.got, d.want)
		}
	}
	// Nothing refused was applied anywhere.
	c.mustGet(left, "a", "orig", 1)
	c.waitReplicas(left, "a")
	c.waitReplicas(right, "")
}

// totalStats sums the refusal and work counters of the running stores.
func (c *cluster) totalStats() raftstore.Stats {
	var sum raftstore.Stats
	for _, id := range c.ids {
		if st := c.stores[id]; st != nil {
			s := st.Stats()
			sum.RegionNotFound += s.RegionNotFound
			sum.KeyNotInRegion += s.KeyNotInRegion
			sum.EpochNotMatch += s.EpochNotMatch
			sum.NotLeader += s.NotLeader
			sum.InvalidRequests += s.InvalidRequests
			sum.Proposals += s.Proposals
			sum.ReadsServed += s.ReadsServed
		}
	}
	return sum
}

// sendRaft delivers a hand-made raft message to store to.
func (c *cluster) sendRaft(from, to uint64, rm *pb.RaftMessage) {
	c.net.Send(&pb.Envelope{From: from, To: to, Body: &pb.Envelope_Raft{Raft: rm}})
	c.deliver()
}

func regionIDs(rs []raftstore.RegionStatus) string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, fmt.Sprint(r.Region.GetId()))
	}
	return strings.Join(ids, ",")
}

func TestUnknownRegionAndMalformedRaftMessages(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	const target = uint64(1)
	st := c.store(target)
	regionsBefore := regionIDs(st.Regions())

	msg := func(typ raftpb.MessageType, from, to uint64) *raftpb.Message {
		return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(50)}
	}
	from := &pb.Peer{Id: 901, StoreId: 2}
	to := &pb.Peer{Id: 902, StoreId: target}

	unknown := []struct {
		name string
		rm   *pb.RaftMessage
	}{
		{"response type", &pb.RaftMessage{RegionId: 900, FromPeer: from, ToPeer: to,
			RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 5}, StartKey: []byte("a"), EndKey: []byte("b"),
			Message: msg(raftpb.MessageType_MsgHeartbeatResp, 901, 902)}},
		{"no epoch", &pb.RaftMessage{RegionId: 900, FromPeer: from, ToPeer: to,
			Message: msg(raftpb.MessageType_MsgHeartbeat, 901, 902)}},
		{"whole keyspace (like the simulator's probe)", &pb.RaftMessage{RegionId: 900, FromPeer: from, ToPeer: to,
			RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}, Message: msg(raftpb.MessageType_MsgHeartbeat, 901, 902)}},
		{"vote overlapping a local region, newer epoch", &pb.RaftMessage{RegionId: 900, FromPeer: from, ToPeer: to,
			RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 2}, StartKey: []byte("c"), EndKey: []byte("d"),
			Message: msg(raftpb.MessageType_MsgVote, 901, 902)}},
		{"append overlapping a local region, older epoch", &pb.RaftMessage{RegionId: 900, FromPeer: from, ToPeer: to,
			RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}, StartKey: []byte("p"), EndKey: []byte("q"),
			Message: msg(raftpb.MessageType_MsgApp, 901, 902)}},
	}
	for i, u := range unknown {
		c.sendRaft(2, target, u.rm)
		if got := st.Stats().UnknownRegionMsgs; got != uint64(i+1) {
			t.Fatalf("%s: UnknownRegionMsgs = %d, want %d", u.name, got, i+1)
		}
		if got := regionIDs(st.Regions()); got != regionsBefore {
			t.Fatalf("%s: regions changed from %s to %s", u.name, regionsBefore, got)
		}
		if st.Stats().PlaceholderPeers != 0 {
			t.Fatalf("%s: a placeholder peer was created", u.name)
		}
	}
	if e := c.regionErr(target, &pb.RequestHeader{RegionId: 900, RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}}, get("c")); e.GetRegionNotFound() == nil {
		t.Fatalf("request for the unknown region: got %v, want RegionNotFound", e)
	}

	// Malformed: each is counted once and changes nothing.
	leaderPeer := c.meta(target, left).PeerOnStore(2)
	self := c.meta(target, left).PeerOnStore(target)
	malformed := []struct {
		name string
		env  *pb.Envelope
	}{
		{"nil raft message", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_Raft{Raft: &pb.RaftMessage{
			RegionId: left, FromPeer: leaderPeer, ToPeer: self, RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}}}}},
		{"to another store", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_Raft{Raft: &pb.RaftMessage{
			RegionId: left, FromPeer: leaderPeer, ToPeer: &pb.Peer{Id: self.GetId(), StoreId: 3},
			RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}, Message: msg(raftpb.MessageType_MsgHeartbeat, leaderPeer.GetId(), self.GetId())}}}},
		{"no region id", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_Raft{Raft: &pb.RaftMessage{
			FromPeer: leaderPeer, ToPeer: self, Message: msg(raftpb.MessageType_MsgHeartbeat, leaderPeer.GetId(), self.GetId())}}}},
		{"no from peer", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_Raft{Raft: &pb.RaftMessage{
			RegionId: left, ToPeer: self, Message: msg(raftpb.MessageType_MsgHeartbeat, leaderPeer.GetId(), self.GetId())}}}},
		{"nil raft body", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_Raft{}}},
		{"empty envelope", &pb.Envelope{From: 2, To: target}},
		{"a reply sent to a store", &pb.Envelope{From: 2, To: target, Body: &pb.Envelope_KvResponse{KvResponse: &pb.KvResponse{}}}},
	}
	base := st.Stats().MalformedMsgs
	term := c.region(target, left).Term
	for i, m := range malformed {
		c.net.Send(m.env)
		c.deliver()
		if got := st.Stats().MalformedMsgs - base; got != uint64(i+1) {
			t.Fatalf("%s: MalformedMsgs grew to %d, want %d", m.name, got, i+1)
		}
	}
	if got := regionIDs(st.Regions()); got != regionsBefore {
		t.Fatalf("malformed messages changed regions from %s to %s", regionsBefore, got)
	}
	if got := c.region(target, left).Term; got != term {
		t.Fatalf("malformed messages (term 50) moved region 1 from term %d to %d", term, got)
	}

	// A message for a known region but another peer id is stale, not stepped.
	c.sendRaft(2, target, &pb.RaftMessage{RegionId: left, FromPeer: leaderPeer, ToPeer: &pb.Peer{Id: 777, StoreId: target},
		RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}, Message: msg(raftpb.MessageType_MsgHeartbeat, leaderPeer.GetId(), 777)})
	if st.Stats().StalePeerMsgs != 1 {
		t.Fatalf("StalePeerMsgs = %d, want 1", st.Stats().StalePeerMsgs)
	}
	if got := c.region(target, left).Term; got != term {
		t.Fatalf("a message for another peer id moved region 1 from term %d to %d", term, got)
	}
	// The cluster still works.
	c.ok(left, put("after", "1"))
	c.waitReplicas(left, "after")
}

func TestAcknowledgedWritesSurviveRestart(t *testing.T) {
	cfg := defaultConfig()
	cfg.CheckpointBytes = 4 << 10 // recover through checkpoints and WAL tails
	c := startTwoRegions(t, cfg)

	c.ok(left, put("a", "1"))
	c.ok(left, put("a", "2"))
	c.ok(left, put("b", "1"))
	c.ok(right, put("n", "1"))

	// Stop the leader right after it acknowledged: the others take over.
	old := c.waitLeader(left)
	c.stop(old)
	next := c.waitLeader(left)
	if next == old {
		t.Fatalf("store %d is down but still the leader", old)
	}
	c.mustGet(left, "a", "2", 2)
	c.ok(left, put("c", "1"))
	c.ok(left, put("a", "3"))

	// The old leader comes back from its disk and catches up.
	c.start(old)
	if !c.store(old).Bootstrapped() {
		t.Fatalf("store %d forgot it was bootstrapped", old)
	}
	if rs := c.store(old).Regions(); len(rs) != 2 {
		t.Fatalf("restarted store %d recovered %d regions, want 2", old, len(rs))
	}
	c.waitReplicas(left, "a,b,c")
	c.waitReplicas(right, "n")

	// It serves reads once it leads again.
	c.leadFrom(old, left)
	c.mustGet(left, "a", "3", 3)
	c.mustGet(left, "c", "1", 1)

	// The whole cluster restarts.
	c.restartAll()
	c.mustGet(left, "a", "3", 3)
	c.mustGet(left, "b", "1", 1)
	c.mustGet(left, "c", "1", 1)
	c.mustGet(right, "n", "1", 1)
	if v := c.ok(left, put("a", "4")).GetPut().GetVersion(); v != 4 {
		t.Fatalf("put after restart got version %d, want 4", v)
	}
	c.waitReplicas(left, "a,b,c")
	if c.store(1).EngineStats().Checkpoints == 0 {
		t.Fatal("no checkpoint was written")
	}
}

func TestSplit(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	for _, k := range []string{"a", "c", "g", "h", "k"} {
		c.ok(left, put(k, "v"+k))
	}
	c.ok(right, put("x", "vx"))
	leader := c.waitLeader(left)
	before := c.meta(leader, left)

	// Watch the split go through raft; a write with the old epoch that
	// arrives after the split is proposed but before it applies is ordered
	// after the split and must be refused at apply.
	proposed := false
	c.store(leader).SetHooks(raftstore.Hooks{SplitProposed: func(rid uint64) {
		if rid == left {
			proposed = true
		}
	}})
	if err := c.store(leader).RequestSplit(left, []byte("g")); err != nil {
		t.Fatalf("RequestSplit: %v", err)
	}
	if err := c.store(leader).RequestSplit(left, []byte("zz")); err == nil {
		t.Fatal("RequestSplit accepted a key outside the region")
	}
	for round := 0; !proposed; round++ {
		if round > 10 {
			t.Fatalf("split not proposed after %d delivery rounds", round)
		}
		c.round()
	}
	if v := c.meta(leader, left).GetEpoch().GetVersion(); v != 1 {
		t.Fatalf("split already applied when proposed (version %d): cannot test the race", v)
	}
	// Both a write and a read of a key the split moves, routed by the old
	// epoch. The read's index may come before the split, but it is served
	// after the split applied: then it must be refused, not answered from
	// the shrunken region (which no longer holds "h").
	racer := &pb.KvRequest{Header: &pb.RequestHeader{RegionId: left, RegionEpoch: before.GetEpoch()}}
	put("h", "racer")(racer)
	reader := &pb.KvRequest{Header: &pb.RequestHeader{RegionId: left, RegionEpoch: before.GetEpoch()}}
	get("h")(reader)
	raceID, readID := c.send(leader, racer), c.send(leader, reader)
	raceResp, readResp := c.await(raceID), c.await(readID)
	if g := readResp.GetGet(); readResp.GetRegionError().GetEpochNotMatch() == nil &&
		(!g.GetFound() || string(g.GetValue()) != "vh" || g.GetVersion() != 1) {
		t.Fatalf("read of h racing the split: got %v, want EpochNotMatch or vh@1", readResp)
	}

	// The split applies on every store.
	var newID uint64
	c.waitFor(100, "the split to apply on all stores", func() bool {
		for _, id := range c.ids {
			if !sameRange(c.meta(id, left), "", "g") {
				return false
			}
		}
		for _, rs := range c.store(leader).Regions() {
			if sameRange(rs.Region, "g", "m") {
				newID = rs.Region.GetId()
			}
		}
		return newID != 0 && c.region(1, newID) != nil && c.region(2, newID) != nil && c.region(3, newID) != nil
	})
	if newID <= 8 {
		t.Fatalf("new region id %d reuses an id of the initial layout", newID)
	}
	if e := raceResp.GetRegionError().GetEpochNotMatch(); e == nil {
		t.Fatalf("write with the pre-split epoch ordered after the split: got %v, want EpochNotMatch", raceResp)
	}
	for _, id := range c.ids {
		l, r := c.meta(id, left), c.meta(id, newID)
		if l.GetEpoch().GetVersion() != 2 || l.GetEpoch().GetConfVer() != 1 || !proto.Equal(&pb.Region{Peers: l.GetPeers()}, &pb.Region{Peers: before.GetPeers()}) {
			t.Errorf("store %d: left region after split %v, want version 2, conf_ver 1, same peers as %v", id, l, before)
		}
		if !sameRange(r, "g", "m") || r.GetEpoch().GetVersion() != 2 || r.GetEpoch().GetConfVer() != 1 || len(r.GetPeers()) != 3 {
			t.Errorf("store %d: new region %v, want [g,m) version 2 conf_ver 1 with 3 peers", id, r)
		}
		for i, p := range r.GetPeers() {
			if p.GetStoreId() != before.GetPeers()[i].GetStoreId() || p.GetId() <= 8 {
				t.Errorf("store %d: new region peer %v, want a fresh id on store %d", id, p, before.GetPeers()[i].GetStoreId())
			}
		}
		if c.meta(id, right).GetEpoch().GetVersion() != 1 {
			t.Errorf("store %d: region 5 changed by a split of region 1: %v", id, c.meta(id, right))
		}
	}
	c.waitReplicas(left, "a,c")
	c.waitReplicas(newID, "g,h,k")
	c.waitLeader(left)
	c.waitLeader(newID)

	// Reads and writes route by the new ranges.
	c.mustGet(newID, "h", "vh", 1) // the racing write did not land
	c.mustGet(left, "a", "va", 1)
	if v := c.ok(newID, put("h", "2")).GetPut().GetVersion(); v != 2 {
		t.Fatalf("put in the new region: version %d, want 2 (versions move with the keys)", v)
	}
	c.ok(newID, put("l", "vl"))
	c.ok(left, put("b", "vb"))
	if got := scanKeys(c.ok(left, scan("", "", 0))); got != "a,b,c" {
		t.Fatalf("scan of the left region = %q, want a,b,c", got)
	}
	if got := scanKeys(c.ok(newID, scan("g", "", 0))); got != "g,h,k,l" {
		t.Fatalf("scan of the new region = %q, want g,h,k,l", got)
	}
	ll := c.waitLeader(left)
	if e := c.regionErr(ll, c.header(ll, left), put("h", "bad")); e.GetKeyNotInRegion() == nil || string(e.GetKeyNotInRegion().GetEndKey()) != "g" {
		t.Fatalf("put of a moved key to the left region: got %v, want KeyNotInRegion ending at g", e)
	}
	// The pre-split epoch is refused, with the current regions.
	oldHdr := &pb.RequestHeader{RegionId: left, RegionEpoch: before.GetEpoch()}
	e := c.regionErr(ll, oldHdr, get("a")).GetEpochNotMatch()
	if e == nil || len(e.GetCurrentRegions()) < 1 || !proto.Equal(e.GetCurrentRegions()[0], c.meta(ll, left)) {
		t.Fatalf("stale epoch: got %v, want EpochNotMatch listing region 1 first", e)
	}
	e = c.regionErr(ll, oldHdr, get("h")).GetEpochNotMatch()
	if e == nil || len(e.GetCurrentRegions()) != 2 || e.GetCurrentRegions()[1].GetId() != newID {
		t.Fatalf("stale epoch for a moved key: got %v, want EpochNotMatch listing region 1 and region %d", e, newID)
	}
	c.mustGet(newID, "h", "2", 2)

	// PD publishes the split.
	c.waitFor(50, "PD to publish the split", func() bool {
		rs := c.pd.Regions()
		return len(rs) == 3 && sameRange(rs[0], "", "g") && rs[1].GetId() == newID && sameRange(rs[1], "g", "m") && sameRange(rs[2], "m", "")
	})
	for _, id := range c.ids {
		if s := c.store(id).Stats().Splits; s != 1 {
			t.Errorf("store %d applied %d splits, want 1", id, s)
		}
	}
}

// The leader's log compaction keeps what an active follower close behind
// still needs: a follower whose appends were lost for a few dozen entries
// (it answered heartbeats all along) catches up by the log, not by a
// snapshot, though the leader compacts meanwhile.
func TestLeaderKeepsTheLogAFollowerCloseBehindNeeds(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	c := startTwoRegions(t, cfg)
	leader := c.waitLeader(left)
	behind := others(c, leader)[0]
	lost := true
	c.filter = func(e *pb.Envelope) bool {
		m := e.GetRaft().GetMessage()
		return lost && e.GetFrom() == leader && e.GetTo() == behind && e.GetRaft().GetRegionId() == left &&
			m.GetType() == raftpb.MessageType_MsgApp
	}
	compactions := c.store(leader).Stats().LogCompactions
	var keys []string
	for i := 0; i < 25; i++ {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		c.ok(left, put(k, "v"))
	}
	if c.store(leader).Stats().LogCompactions == compactions {
		t.Fatalf("store %d never compacted its log: the case is not tested", leader)
	}
	lost = false
	c.waitReplicas(left, strings.Join(keys, ","))
	if n := c.store(leader).Stats().SnapshotsStarted; n != 0 {
		t.Fatalf("store %d sent %d snapshots to its follower on store %d, 25 entries behind", leader, n, behind)
	}
}

// The same across check-quorum: raft clears every follower's RecentActive
// flag each election timeout, until it next hears from it. A follower close
// behind that is silent for a few ticks around that moment (its answers
// late, not lost for long) is still active: the leader, compacting
// meanwhile, keeps what it needs. (Found by the slow-follower scenario: a
// follower a dozen entries behind on a slow link got a snapshot.)
//
// The follower answers only heartbeats (its appends are lost), so what the
// leader hears of it is one answer per heartbeat that gets through. The
// silences are therefore measured as the leader sees them, from the last
// answer that reached it, not in ticks of deafness: silent for half an
// election timeout, then heard again at its next heartbeat answer, so no
// silence reaches an election timeout (one that did would make a snapshot
// the right answer, and the test a matter of the heartbeat's phase).
func TestLeaderKeepsTheLogAcrossCheckQuorum(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	c := startTwoRegions(t, cfg)
	leader := c.waitLeader(left)
	behind := others(c, leader)[0]
	behindPeer := c.region(behind, left).PeerID
	electionTimeout := time.Duration(cfg.ElectionTicks) * tick
	lost, deaf := true, false
	var heard time.Time // when the leader last heard from the follower
	var heardCount int  // how many of its messages reached the leader
	var maxSilence time.Duration
	c.filter = func(e *pb.Envelope) bool {
		if e.GetRaft().GetRegionId() != left {
			return false
		}
		if lost && e.GetFrom() == leader && e.GetTo() == behind && e.GetRaft().GetMessage().GetType() == raftpb.MessageType_MsgApp {
			return true
		}
		if e.GetFrom() != behind || e.GetTo() != leader {
			return false
		}
		if deaf {
			return true
		}
		if heardCount > 0 {
			maxSilence = max(maxSilence, c.clock.now.Sub(heard))
		}
		heard = c.clock.now
		heardCount++
		return false
	}
	hear := func() { // until the follower's next answer reaches the leader
		deaf = false
		h := heardCount
		c.waitFor(2*cfg.HeartbeatTicks, "the follower's answer to a heartbeat", func() bool { return heardCount > h })
	}
	var keys []string
	n := 0
	write := func() {
		k := fmt.Sprintf("k%03d", n)
		n++
		keys = append(keys, k)
		c.ok(left, put(k, "v"))
	}
	// spanned: a check-quorum fell in a silence (the leader's RecentActive
	// for the follower is cleared) while the follower was more than a
	// compaction window behind: a compaction then, unguarded, cuts into
	// what it needs.
	spanned := 0
	look := func() {
		match, active, ok := c.store(leader).Progress(left, behindPeer)
		if !ok {
			t.Fatalf("store %d no longer leads region %d\n%s", leader, left, c.describe())
		}
		if deaf && !active && c.region(leader, left).Applied > match+cfg.LogCompactEntries {
			spanned++
		}
	}
	for range 6 {
		write()
	}
	hear()
	for n < 30 { // within the guard's reach (4 compaction windows)
		deaf = true
		for c.clock.now.Sub(heard) < electionTimeout/2 {
			if n < 30 {
				write()
				look()
			}
			c.step()
			look()
		}
		hear()
	}
	if maxSilence >= electionTimeout {
		t.Fatalf("the leader did not hear from its follower for %v, an election timeout: the case is not tested", maxSilence)
	}
	if spanned == 0 {
		t.Fatalf("no check-quorum fell in a silence of the follower while it was a compaction window behind: the case is not tested")
	}
	lost = false
	c.waitReplicas(left, strings.Join(keys, ","))
	if n := c.store(leader).Stats().SnapshotsStarted; n != 0 {
		t.Fatalf("store %d sent %d snapshots to its follower on store %d, %d entries behind (silent at most %v)", leader, n, behind, len(keys), maxSilence)
	}
}

func TestLogCompactionAndSnapshotCatchUp(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 20
	cfg.LogKeepEntries = 5
	c := startTwoRegions(t, cfg)
	const down = uint64(3)
	c.stop(down)
	// Long enough for the leader to see store 3 silent: an active follower
	// would hold the log for itself.
	for i := 0; i < 2*cfg.ElectionTicks; i++ {
		c.step()
	}

	var keys []string
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		c.ok(left, put(k, "v"+k))
	}
	c.ok(right, put("x", "1"))
	leader := c.waitLeader(left)
	if c.store(leader).Stats().LogCompactions == 0 {
		t.Fatalf("store %d applied %d entries with LogCompactEntries=20 and never compacted", leader, c.region(leader, left).Applied)
	}

	c.start(down)
	want := strings.Join(keys, ",")
	c.waitReplicas(left, want)
	c.waitReplicas(right, "x")
	if n := c.store(down).Stats().SnapshotsApplied; n == 0 {
		t.Fatalf("store %d caught up without a snapshot though the log it missed was compacted", down)
	}
	if c.store(leader).Stats().SnapshotsSent == 0 {
		t.Fatalf("leader store %d sent no snapshot", leader)
	}
	// The log after the snapshot flows too.
	c.ok(left, put("k99", "after"))
	c.waitReplicas(left, want+",k99")
	// The follower serves what the snapshot brought once it leads.
	c.leadFrom(down, left)
	c.mustGet(left, "k00", "vk00", 1)
	c.mustGet(left, "k99", "after", 1)

	// The snapshot was made durable: a restart keeps its keys without help.
	c.stop(down)
	c.start(down)
	got := c.keysOf(down, left)
	if !strings.HasPrefix(got, want) {
		t.Fatalf("store %d after restart holds %q in region 1, want at least the snapshot's keys", down, got)
	}
	c.waitReplicas(left, want+",k99")
}

// splitAndWait splits region rid at key through its leader and waits until
// every running store holds the left half; it returns the new region's id.
func (c *cluster) splitAndWait(rid uint64, key string) uint64 {
	c.t.Helper()
	leader := c.waitLeader(rid)
	end := string(c.meta(leader, rid).GetEndKey())
	if err := c.store(leader).RequestSplit(rid, []byte(key)); err != nil {
		c.t.Fatalf("RequestSplit(%d, %q): %v", rid, key, err)
	}
	var newID uint64
	c.waitFor(100, fmt.Sprintf("region %d to split at %q", rid, key), func() bool {
		for _, rs := range c.store(leader).Regions() {
			if sameRange(rs.Region, key, end) {
				newID = rs.Region.GetId()
			}
		}
		if newID == 0 {
			return false
		}
		for _, id := range c.ids {
			if c.stores[id] != nil && (!sameRange(c.meta(id, rid), string(c.meta(id, rid).GetStartKey()), key) || c.region(id, newID) == nil) {
				return false
			}
		}
		return true
	})
	return newID
}

// A replica that is down while its region splits catches up afterwards:
// from the log (the split entry creates the new region there), or, when
// the log it missed is compacted, from snapshots of both halves. Either way
// it ends up with both regions, the right keys in each, and no key twice.
func TestSplitWhileReplicaDown(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			cfg := defaultConfig()
			if compact {
				cfg.LogCompactEntries = 10
				cfg.LogKeepEntries = 2
			}
			c := startTwoRegions(t, cfg)
			for _, k := range []string{"a", "h"} {
				c.ok(left, put(k, "before"))
			}
			const down = uint64(3)
			c.stop(down)
			newID := c.splitAndWait(left, "g")
			var lk, rk []string
			for i := 0; i < 25; i++ {
				l, r := fmt.Sprintf("b%02d", i), fmt.Sprintf("i%02d", i)
				c.ok(left, put(l, "x"))
				c.ok(newID, put(r, "y"))
				lk, rk = append(lk, l), append(rk, r)
			}
			c.ok(newID, put("h", "after"))
			if compact && (c.store(c.waitLeader(left)).Stats().LogCompactions == 0 || c.store(c.waitLeader(newID)).Stats().LogCompactions == 0) {
				t.Fatal("the logs were not compacted: this case would not test snapshots")
			}

			c.start(down)
			wantLeft := strings.Join(append([]string{"a"}, lk...), ",")
			wantRight := strings.Join(append([]string{"h"}, rk...), ",")
			c.waitReplicas(left, wantLeft)
			c.waitReplicas(newID, wantRight)
			for _, id := range c.ids {
				l, r := c.meta(id, left), c.meta(id, newID)
				if !sameRange(l, "", "g") || !sameRange(r, "g", "m") || l.GetEpoch().GetVersion() != 2 || r.GetEpoch().GetVersion() != 2 {
					t.Fatalf("store %d: regions %v and %v, want [\"\",g) and [g,m) at version 2", id, l, r)
				}
			}
			st := c.store(down).Stats()
			if compact && st.SnapshotsApplied == 0 {
				t.Fatalf("store %d caught up over compacted logs without a snapshot: %+v", down, st)
			}
			if !compact && st.Splits != 1 {
				t.Fatalf("store %d applied %d splits from the log, want 1: %+v", down, st.Splits, st)
			}
			// The caught-up replica serves the new region once it leads it.
			c.leadFrom(down, newID)
			c.mustGet(newID, "h", "after", 2)
			c.mustGet(newID, "i24", "y", 1)

			// And everything survives a full restart.
			c.restartAll()
			for _, id := range c.ids {
				if n := len(c.store(id).Regions()); n != 3 {
					t.Fatalf("store %d recovered %d regions, want 3\n%s", id, n, c.describe())
				}
			}
			c.mustGet(newID, "h", "after", 2)
			c.mustGet(left, "b24", "x", 1)
			c.waitReplicas(left, wantLeft)
			c.waitReplicas(newID, wantRight)
		})
	}
}

// A write proposed by a leader that is cut off never commits: the new
// leader's log replaces it. Once the old leader learns that, its client
// must be told (StaleCommand, safe to retry) without waiting for some later
// write to reach the region.
func TestProposalOverwrittenByNewLeaderIsAnswered(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	c.ok(left, put("a", "1"))
	old := c.waitLeader(left)
	oldTerm := c.region(old, left).Term
	c.isolate(old, true)
	id := c.send(old, func() *pb.KvRequest {
		r := &pb.KvRequest{Header: c.header(old, left)}
		put("a", "lost")(r)
		return r
	}())
	c.deliver()
	if c.responses[id] != nil {
		t.Fatalf("an isolated leader answered a write: %v", c.responses[id])
	}
	// The others elect a new leader in a later term.
	c.waitFor(200, "a new leader among the connected stores", func() bool {
		for _, s := range c.ids {
			if rs := c.region(s, left); s != old && rs.IsLeader && rs.Term > oldTerm {
				return true
			}
		}
		return false
	})
	c.isolate(old, false)
	c.waitFor(100, "the old leader to rejoin", func() bool {
		l, ok := c.leaderOf(left)
		return ok && l != old
	})
	resp := c.await(id)
	e := resp.GetRegionError()
	if e.GetStaleCommand() == nil && e.GetNotLeader() == nil {
		t.Fatalf("overwritten proposal answered %v, want StaleCommand or NotLeader", resp)
	}
	c.mustGet(left, "a", "1", 1)
}

// A leader's write reaches the followers, but their acks do not reach the
// leader, which steps down. The new leader commits the write and compacts
// its log, so the old leader catches up by snapshot: the snapshot contains
// the write, which the old leader never applies entry by entry. Its client
// must not be told the write failed (StaleCommand: "will never apply, safe
// to retry") — the write did apply. An answer, if any, must be success.
func TestProposalCommittedInsideSnapshotIsNotCalledStale(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	c := startTwoRegions(t, cfg)
	c.ok(left, put("a", "1"))
	old := c.waitLeader(left)
	req := &pb.KvRequest{Header: c.header(old, left)}
	put("f", "1")(req)
	id := c.send(old, req)
	c.round() // the leader proposes and sends the entry to the followers
	if c.responses[id] != nil {
		t.Fatalf("answered before replication: %v", c.responses[id])
	}
	c.deaf[old] = true // the followers' acks are lost
	c.waitFor(200, "a new leader among the other stores", func() bool {
		l, ok := c.leaderOf(left)
		return ok && l != old
	})
	c.mustGet(left, "f", "1", 1) // the new leader committed the write
	for i := 0; i < 30; i++ {
		c.ok(left, put(fmt.Sprintf("k%02d", i), "x"))
	}
	c.deaf[old] = false
	c.waitFor(100, "the old leader to catch up", func() bool {
		return strings.HasPrefix(c.keysOf(old, left), "a,f,k00") && strings.Contains(c.keysOf(old, left), "k29")
	})
	c.ok(left, put("l0", "after")) // entries after the snapshot apply on the old leader
	c.waitReplicas(left, "a,f,k00,k01,k02,k03,k04,k05,k06,k07,k08,k09,k10,k11,k12,k13,k14,k15,k16,k17,k18,k19,k20,k21,k22,k23,k24,k25,k26,k27,k28,k29,l0")
	if c.store(old).Stats().SnapshotsApplied == 0 {
		t.Fatalf("store %d caught up without a snapshot: the case is not tested", old)
	}
	if resp := c.responses[id]; resp != nil && resp.GetPut().GetVersion() != 1 {
		t.Fatalf("the write applied (f=1 v1) but its client was told %v", resp)
	}
}
