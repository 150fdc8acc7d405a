package raftstore_test

import (
	"hash/fnv"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
)

// Regressions for bugs found in review. Each test failed before its fix.

// A store whose Bootstrap answer is late receives raft traffic first. It
// must still bootstrap, host its regions, and keep them across a restart
// (placeholders created from early traffic once blocked its bootstrap).
func TestLateStoreBootstrapsDespiteEarlyRaftTraffic(t *testing.T) {
	c := newCluster(t, defaultConfig())
	// Store 3 hears nothing from PD for a while; stores 1 and 2 elect.
	c.filter = func(e *pb.Envelope) bool { return e.GetFrom() == pdNode && e.GetTo() == 3 }
	c.waitFor(100, "leaders on stores 1 and 2", func() bool {
		l, ok := c.leaderOf(1)
		return ok && l != 3
	})
	c.waitFor(20, "raft traffic to reach store 3", func() bool { return c.store(3).Stats().UnknownRegionMsgs > 0 })
	if c.store(3).Bootstrapped() || len(c.store(3).Regions()) != 0 {
		t.Fatalf("store 3 created state before its bootstrap: %s", c.describe())
	}
	c.filter = nil
	c.waitFor(100, "store 3 to bootstrap and catch up", func() bool {
		st := c.store(3)
		return st.Bootstrapped() && len(st.Regions()) == 1 && st.Regions()[0].Initialized
	})
	c.ok(1, put("k", "v"))
	c.waitReplicas(1, "k")
	c.stop(3)
	c.start(3)
	c.waitReplicas(1, "k")
}

// PD answers a split with repeated peer ids: the leader must refuse it
// before proposing (a split applied with them would panic every replica,
// on every restart).
func TestSplitWithBadIDsIsRefused(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	c.ok(1, put("a", "1"))
	leader := c.waitLeader(1)
	before := c.store(leader).Stats().MalformedMsgs
	if err := c.store(leader).RequestSplit(1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	// Hold the AskSplit back and answer it with bad ids instead of PD.
	var reqID uint64
	c.filter = func(e *pb.Envelope) bool {
		if r := e.GetAskSplit(); r != nil {
			reqID = r.GetRequestId()
			return true
		}
		return false
	}
	c.deliver()
	if reqID == 0 {
		t.Fatal("no AskSplit was sent")
	}
	c.store(leader).Receive(&pb.Envelope{From: pdNode, To: leader, Body: &pb.Envelope_AskSplitResponse{
		AskSplitResponse: &pb.AskSplitResponse{RequestId: reqID, NewRegionId: 50, NewPeerIds: []uint64{77, 77, 77}},
	}})
	c.filter = nil
	for i := 0; i < 10; i++ {
		c.step()
	}
	if got := c.store(leader).Stats().MalformedMsgs; got != before+1 {
		t.Fatalf("bad split answer not refused: MalformedMsgs %d -> %d", before, got)
	}
	for _, id := range c.ids {
		if n := len(c.store(id).Regions()); n != 1 {
			t.Fatalf("store %d holds %d regions after a refused split", id, n)
		}
	}
	c.stop(2)
	c.start(2)
	c.ok(1, put("b", "2"))
}

// A proposal that a newer leader's append truncates before it ever reached
// a Ready must be answered (StaleCommand), not left to time out.
func TestProposalCutBeforeReadyIsAnswered(t *testing.T) {
	c, old, req, _ := cutProposalBeforeReady(t)
	c.isolate(old, false)
	c.waitFor(50, "an answer to the cut proposal", func() bool { return c.responses[req.RequestId] != nil })
	if re := c.responses[req.RequestId].GetRegionError(); re.GetStaleCommand() == nil {
		t.Fatalf("want StaleCommand, got %v", c.responses[req.RequestId])
	}
}

// The ready round after the cut must not send the raft messages queued at
// the old term: they carry the cut entry, which the client was told will
// never apply. With five voters two peers may still be at the old term,
// accept it, and one of them can win the next term and commit it.
func TestNoRaftMessageOfAnOlderTermLeaves(t *testing.T) {
	c, old, _, term := cutProposalBeforeReady(t)
	c.net.q = nil
	if err := c.store(old).Flush(); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, e := range c.net.q {
		m := e.GetRaft().GetMessage()
		if m == nil {
			continue
		}
		sent++
		if m.GetTerm() != 0 && m.GetTerm() < term {
			t.Errorf("store %d sent %v of term %d to peer %d after moving to term %d", old, m.GetType(), m.GetTerm(), m.GetTo(), term)
		}
	}
	if sent == 0 {
		t.Fatal("the old leader sent no raft message at all: the test no longer reaches the case")
	}
	if n := c.store(old).Stats().StaleTermMsgsDropped; n == 0 {
		t.Fatal("no stale-term message was dropped")
	}
}

// cutProposalBeforeReady makes the leader of region 1 (frozen behind a
// partition, still believing it leads) receive a client put and then, before
// its next ready round, an append from the new leader that cuts the index
// the put took. It returns the put and the new leader's term.
func cutProposalBeforeReady(t *testing.T) (c *cluster, old uint64, req *pb.KvRequest, term uint64) {
	c = newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	old = c.waitLeader(1)
	c.isolate(old, true)
	hidden := c.stores[old]
	c.stores[old] = nil // freeze it: it keeps believing it leads
	var nl uint64
	c.waitFor(200, "a new leader", func() bool {
		var ok bool
		nl, ok = c.leaderOf(1)
		return ok && nl != old
	})
	st := c.region(nl, 1)
	c.stores[old] = hidden
	os := c.region(old, 1)
	// A client put reaches the old leader and, before its next ready round,
	// the new leader's first append overwrites the index it took.
	req = &pb.KvRequest{Header: c.header(old, 1)}
	put("k", "lost")(req)
	c.nextReq++
	req.RequestId = c.nextReq
	hidden.Receive(&pb.Envelope{From: clientNode, To: old, Body: &pb.Envelope_KvRequest{KvRequest: req}})
	last := os.Applied
	m := &raftpb.Message{
		Type: raftpb.MessageType_MsgApp.Enum(), To: proto.Uint64(os.PeerID), From: proto.Uint64(st.PeerID),
		Term: proto.Uint64(st.Term), Index: proto.Uint64(last), LogTerm: proto.Uint64(os.Term), Commit: proto.Uint64(last),
		Entries: []*raftpb.Entry{{Index: proto.Uint64(last + 1), Term: proto.Uint64(st.Term), Type: raftpb.EntryType_EntryNormal.Enum()}},
	}
	meta := c.meta(old, 1)
	var from, to *pb.Peer
	for _, p := range meta.GetPeers() {
		if p.GetId() == st.PeerID {
			from = p
		}
		if p.GetId() == os.PeerID {
			to = p
		}
	}
	hidden.Receive(&pb.Envelope{From: nl, To: old, Body: &pb.Envelope_Raft{Raft: &pb.RaftMessage{
		RegionId: 1, FromPeer: from, ToPeer: to, RegionEpoch: meta.GetEpoch(), Message: m,
	}}})
	return c, old, req, st.Term
}

// A store configured without heartbeat intervals heartbeats at the interval
// PD names at bootstrap, and keeps it across a restart.
func TestHeartbeatIntervalFromPD(t *testing.T) {
	cfg := defaultConfig()
	cfg.RegionHeartbeatInterval, cfg.StoreHeartbeatInterval = 0, 0
	c := newCluster(t, cfg) // PD asks for 1 s
	c.waitBootstrap(1)
	count := func() int {
		n := 0
		for _, id := range c.ids {
			if st := c.stores[id]; st != nil {
				n += int(st.Stats().RegionHeartbeatsOut)
			}
		}
		return n
	}
	for round := 0; round < 2; round++ {
		before := count()
		for i := 0; i < 50; i++ { // 5 s of fake time
			c.step()
		}
		// One leader heartbeating every second: about 5, never the 0 a
		// 30 s default would give over 5 s.
		if got := count() - before; got < 3 || got > 8 {
			t.Fatalf("round %d: %d region heartbeats in 5 s, want about 5", round, got)
		}
		c.restartAll()
	}
}

// Crafted raft messages from the review: each once panicked a store, was
// appended and committed bypassing the KV checks, or left state behind. Each
// must now be dropped at the store boundary (counted as malformed), create
// nothing, and leave the region serving, also across a restart of every
// store (a committed conf change once made every replica fail on replay).
func TestCraftedRaftMessagesAreDropped(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	leader := c.waitLeader(left)
	c.step() // the followers hear the last commit
	follower := c.ids[0]
	if follower == leader {
		follower = c.ids[1]
	}
	meta := c.meta(leader, left)
	lp, fp := meta.PeerOnStore(leader), meta.PeerOnStore(follower)
	term := c.region(leader, left).Term
	cc, err := proto.Marshal(&raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(fp.GetId())})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := proto.Marshal(&pb.RaftCommand{Header: &pb.RequestHeader{RegionId: left, RegionEpoch: meta.GetEpoch()},
		Cmd: &pb.RaftCommand_Put{Put: &pb.PutRequest{Key: []byte("bypass"), Value: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(typ raftpb.MessageType, from, to, term uint64) *raftpb.Message {
		return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term)}
	}
	toLeader := func(m *raftpb.Message) *pb.RaftMessage {
		return &pb.RaftMessage{RegionId: left, FromPeer: fp, ToPeer: lp, RegionEpoch: meta.GetEpoch(),
			StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(), Message: m}
	}
	toFollower := func(m *raftpb.Message) *pb.RaftMessage {
		return &pb.RaftMessage{RegionId: left, FromPeer: lp, ToPeer: fp, RegionEpoch: meta.GetEpoch(),
			StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(), Message: m}
	}
	with := func(m *raftpb.Message, f func(*raftpb.Message)) *raftpb.Message { f(m); return m }
	badSnap, err := proto.Marshal(&pb.RegionSnapshot{Region: meta})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		from, to uint64 // transport sender, receiver
		rm       *pb.RaftMessage
	}{
		{"empty MsgProp to the leader", follower, leader, toLeader(msg(raftpb.MessageType_MsgProp, fp.GetId(), lp.GetId(), 0))},
		{"remote MsgProp with a conf change", follower, leader, toLeader(with(msg(raftpb.MessageType_MsgProp, fp.GetId(), lp.GetId(), term), func(m *raftpb.Message) {
			m.Entries = []*raftpb.Entry{{Type: raftpb.EntryType_EntryConfChange.Enum(), Data: cc}}
		}))},
		{"remote MsgProp with a raft command", follower, leader, toLeader(with(msg(raftpb.MessageType_MsgProp, fp.GetId(), lp.GetId(), term), func(m *raftpb.Message) {
			m.Entries = []*raftpb.Entry{{Type: raftpb.EntryType_EntryNormal.Enum(), Data: cmd}}
		}))},
		{"heartbeat committing 2^40", leader, follower, toFollower(with(msg(raftpb.MessageType_MsgHeartbeat, lp.GetId(), fp.GetId(), term), func(m *raftpb.Message) {
			m.Commit = proto.Uint64(1 << 40)
		}))},
		{"self-addressed MsgReadIndex", leader, leader, &pb.RaftMessage{RegionId: left, FromPeer: lp, ToPeer: lp, RegionEpoch: meta.GetEpoch(),
			Message: msg(raftpb.MessageType_MsgReadIndex, lp.GetId(), lp.GetId(), term)}},
		{"append without a term (taken as local)", leader, follower, toFollower(with(msg(raftpb.MessageType_MsgApp, lp.GetId(), fp.GetId(), 0), func(m *raftpb.Message) {
			m.Index = proto.Uint64(c.region(follower, left).Applied)
			m.Entries = []*raftpb.Entry{{Index: proto.Uint64(c.region(follower, left).Applied + 1), Data: cmd}}
		}))},
		{"append rewriting a committed entry", leader, follower, toFollower(with(msg(raftpb.MessageType_MsgApp, lp.GetId(), fp.GetId(), term+1), func(m *raftpb.Message) {
			m.Index = proto.Uint64(raftstore.InitLogIndex)
			m.LogTerm = proto.Uint64(raftstore.InitLogTerm)
			m.Entries = []*raftpb.Entry{{Index: proto.Uint64(raftstore.InitLogIndex + 1), Term: proto.Uint64(term + 1), Data: cmd}}
		}))},
		{"sender forged as another store", 3, follower, toFollower(msg(raftpb.MessageType_MsgHeartbeat, lp.GetId(), fp.GetId(), term))},
		{"snapshot whose membership names no voter", leader, follower, toFollower(with(msg(raftpb.MessageType_MsgSnap, lp.GetId(), fp.GetId(), term), func(m *raftpb.Message) {
			m.Snapshot = &raftpb.Snapshot{Data: badSnap, Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1000), Term: proto.Uint64(term), ConfState: &raftpb.ConfState{}}}
		}))},
		{"MsgTimeoutNow from a follower", follower, leader, toLeader(msg(raftpb.MessageType_MsgTimeoutNow, fp.GetId(), lp.GetId(), term))},
		{"reversed range for an unknown region", leader, follower, &pb.RaftMessage{RegionId: 900, FromPeer: &pb.Peer{Id: 901, StoreId: leader},
			ToPeer: &pb.Peer{Id: 902, StoreId: follower}, RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 9}, StartKey: []byte("zz"), EndKey: []byte("a"),
			Message: msg(raftpb.MessageType_MsgVote, 901, 902, 50)}},
	}
	regions := map[uint64]string{}
	for _, id := range c.ids {
		regions[id] = regionIDs(c.store(id).Regions())
	}
	for _, tc := range cases {
		if tc.from == 3 && (leader == 3 || follower == 3) {
			tc.from = 6 - leader - follower // a store that is neither
		}
		st := c.store(tc.to)
		before := st.Stats().MalformedMsgs
		c.sendRaft(tc.from, tc.to, tc.rm)
		if st.Stats().MalformedMsgs != before+1 {
			t.Errorf("%s: not counted as malformed", tc.name)
		}
		if got := regionIDs(st.Regions()); got != regions[tc.to] {
			t.Errorf("%s: store %d regions changed from %s to %s", tc.name, tc.to, regions[tc.to], got)
		}
	}
	if l, _ := c.leaderOf(left); l != leader {
		t.Errorf("leadership moved from store %d to %d", leader, l)
	}
	c.ok(left, put("after", "1"))
	c.restartAll()
	c.waitReplicas(left, "after")
	if r := c.ok(left, get("bypass")); r.GetGet().GetFound() {
		t.Fatal("a remote proposal was applied")
	}
}

// Keys and values over the configured limits are refused with an
// InvalidRequest that names the limit; at the limit they are served.
func TestSizeLimits(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxKeyBytes, cfg.MaxValueBytes = 64, 1024
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	key := strings.Repeat("k", 64)
	c.ok(1, put(key, strings.Repeat("v", 1024)))
	for _, tc := range []struct {
		name string
		op   func(*pb.KvRequest)
		want string
	}{
		{"key", put(key+"k", "v"), "limit of 64 bytes"},
		{"value", put("k", strings.Repeat("v", 1025)), "limit of 1024 bytes"},
		{"get key", get(key + "k"), "limit of 64 bytes"},
	} {
		e := c.regionErr(leader, c.header(leader, 1), tc.op)
		if e.GetInvalidRequest() == nil || !strings.Contains(e.GetMessage(), tc.want) {
			t.Errorf("%s over the limit: got %v, want InvalidRequest naming %q", tc.name, e, tc.want)
		}
	}
}

// A store whose random source is seeded the same way on every start (as a
// careless runtime's would be) still gets a new proposal incarnation on each
// open: uniqueness comes from a durable counter, not from randomness, so a
// restarted store never answers a new proposal with an old entry's result.
func TestProposalIncarnationIsUniqueAcrossRestarts(t *testing.T) {
	fs := vfs.NewMem()
	var seen []uint64
	for i := 0; i < 3; i++ {
		env := core.Env{Clock: &fakeClock{}, Net: &fakeNet{hash: fnv.New64a()}, FS: fs, Dir: "/s", Rand: rng.New(7)}
		st, err := raftstore.Open(env, raftstore.Config{StoreID: 1, PD: pdNode})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, st.Incarnation())
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if seen[0] == seen[1] || seen[1] == seen[2] || seen[0] == seen[2] {
		t.Fatalf("incarnations %v repeat across restarts with the same random seed", seen)
	}
}

// Two stores may use the same proposal id in the same incarnation number
// (each counts from 1 on its first open): an entry proposed on one store
// must never answer a proposal of another. The put sent to the cut-off old
// leader never applies; its client must not be told it did when the new
// leader's first proposal (same id, same incarnation) applies there.
func TestProposalsOfTwoStoresAreNotConfused(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	old := c.waitLeader(1)
	c.isolate(old, true)
	lost := &pb.KvRequest{Header: c.header(old, 1)}
	put("k", "lost")(lost)
	lostID := c.send(old, lost)
	c.deliver()
	var nl uint64
	c.waitFor(200, "a new leader", func() bool {
		var ok bool
		nl, ok = c.leaderOf(1)
		return ok && nl != old
	})
	if r := c.ok(1, put("k", "kept")); r.GetPut().GetVersion() != 1 {
		t.Fatalf("put on the new leader: %v", r)
	}
	c.isolate(old, false)
	c.waitReplicas(1, "k")
	if r := c.responses[lostID]; r != nil && r.GetRegionError() == nil {
		t.Fatalf("the cut-off leader answered the lost put with another store's result: %v", r)
	}
	if r := c.ok(1, get("k")); string(r.GetGet().GetValue()) != "kept" {
		t.Fatalf("k = %q", r.GetGet().GetValue())
	}
}

// A scan's answer is bounded by the store (pairs and bytes), whatever the
// client's limit; an answer cut short says so.
func TestScanAnswerIsBounded(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxScanPairs = 3
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		c.ok(1, put(k, "v"))
	}
	scanOp := func(start string, limit uint32) func(*pb.KvRequest) {
		return func(r *pb.KvRequest) {
			r.Op = &pb.KvRequest_Scan{Scan: &pb.ScanRequest{StartKey: []byte(start), Limit: limit}}
		}
	}
	r := c.ok(1, scanOp("a", 0)).GetScan()
	if len(r.GetPairs()) != 3 || !r.GetMore() {
		t.Fatalf("unlimited scan: %d pairs, more %v; want 3 and more", len(r.GetPairs()), r.GetMore())
	}
	if r := c.ok(1, scanOp("c", 0)).GetScan(); len(r.GetPairs()) != 3 || r.GetMore() {
		t.Fatalf("scan of the last 3: %d pairs, more %v", len(r.GetPairs()), r.GetMore())
	}
	if r := c.ok(1, scanOp("a", 2)).GetScan(); len(r.GetPairs()) != 2 || r.GetMore() {
		t.Fatalf("scan limited to 2: %d pairs, more %v (the client's own limit is no cut)", len(r.GetPairs()), r.GetMore())
	}
}
