package raftstore_test

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
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

// A network duplicate of a write must not apply again after later writes
// (or after the original was refused).
func TestDuplicateWriteIsDropped(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	req := &pb.KvRequest{Header: c.header(leader, 1)}
	put("k", "v1")(req)
	id := c.send(leader, req)
	dup := proto.Clone(c.net.q[len(c.net.q)-1]).(*pb.Envelope)
	if r := c.await(id); r.GetRegionError() != nil {
		t.Fatalf("put: %v", r.GetRegionError())
	}
	c.ok(1, put("k", "v2"))
	before := c.store(leader).Stats().DuplicateRequests
	c.net.Send(dup)
	c.deliver()
	if got := c.store(leader).Stats().DuplicateRequests; got != before+1 {
		t.Fatalf("duplicate not detected: DuplicateRequests %d -> %d", before, got)
	}
	c.mustGet(1, "k", "v2", 2)
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
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	old := c.waitLeader(1)
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
	req := &pb.KvRequest{Header: c.header(old, 1)}
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
	c.isolate(old, false)
	c.waitFor(50, "an answer to the cut proposal", func() bool { return c.responses[req.RequestId] != nil })
	if re := c.responses[req.RequestId].GetRegionError(); re.GetStaleCommand() == nil {
		t.Fatalf("want StaleCommand, got %v", c.responses[req.RequestId])
	}
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
