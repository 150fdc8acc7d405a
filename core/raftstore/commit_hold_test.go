package raftstore_test

import (
	"testing"

	"github.com/multiraft/multiraft/core/pb"
	raftpb "go.etcd.io/raft/v3/raftpb"
)

// putAt sends a put of k=v to the leader of region 1, l, and delivers until
// the network is quiet, without a tick: the answer comes back, and whatever
// the leader held for its tick stays held.
func (c *cluster) putAt(l uint64, k, v string) {
	c.t.Helper()
	req := &pb.KvRequest{Header: c.header(l, 1)}
	put(k, v)(req)
	id := c.send(l, req)
	c.deliver()
	resp := c.responses[id]
	if resp == nil || resp.GetRegionError() != nil {
		c.t.Fatalf("put %s: %v\n%s", k, resp, c.describe())
	}
	delete(c.responses, id)
}

// A leader does not send a follower an append that only moves its commit
// index: the next append or heartbeat carries the commit, or the next tick
// sends the held append. Followers apply a write one append later, and by
// the next tick at the latest.
func TestCommitRidesOnTheNextAppendOrTheTick(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	l := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	c.step()
	leaderAt := func() uint64 { return c.region(l, 1).Applied }
	var followers []uint64
	for _, id := range c.ids {
		if id != l {
			followers = append(followers, id)
		}
	}
	for _, f := range followers {
		if got, want := c.region(f, 1).Applied, leaderAt(); got != want {
			t.Fatalf("store %d applied %d after a tick, the leader %d", f, got, want)
		}
	}

	// A put: the followers hold the entry, and do not know it committed.
	var commitOnly int
	c.filter = func(e *pb.Envelope) bool {
		m := e.GetRaft().GetMessage()
		if e.GetFrom() == l && m.GetType() == raftpb.MessageType_MsgApp && len(m.GetEntries()) == 0 {
			commitOnly++
		}
		return false
	}
	held := c.store(l).Stats().CommitsHeld
	c.putAt(l, "b", "2")
	first := leaderAt()
	if commitOnly != 0 {
		t.Errorf("the leader sent %d appends without entries for one put", commitOnly)
	}
	if n := c.store(l).Stats().CommitsHeld - held; n != uint64(len(followers)) {
		t.Errorf("%d commit-only appends held for one put, want one per follower (%d)", n, len(followers))
	}
	for _, f := range followers {
		if got := c.region(f, 1).Applied; got >= first {
			t.Errorf("store %d applied %d before hearing the commit of %d", f, got, first)
		}
	}

	// The next put's append carries the first one's commit.
	c.putAt(l, "c", "3")
	second := leaderAt()
	for _, f := range followers {
		if got := c.region(f, 1).Applied; got < first || got >= second {
			t.Errorf("store %d applied %d after the second put; want the first (%d), not the second (%d)", f, got, first, second)
		}
	}

	// The tick sends what is held; nothing more is held after it.
	sent := c.store(l).Stats().HeldCommitsSent
	c.step()
	if c.store(l).Stats().HeldCommitsSent == sent {
		t.Error("the tick sent no held append")
	}
	for _, f := range followers {
		if got := c.region(f, 1).Applied; got != second {
			t.Errorf("store %d applied %d after a tick; want %d", f, got, second)
		}
	}
	if commitOnly != len(followers) {
		t.Errorf("%d appends without entries in all, want one per follower, sent at the tick", commitOnly)
	}
}

// A leader that steps down drops what it held: nothing of its old term
// leaves it at the next tick.
func TestHeldCommitsOfADeposedLeaderAreDropped(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	old := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	c.step()
	c.putAt(old, "b", "2") // held for the followers
	term := c.region(old, 1).Term
	// Freeze the leader and let the others elect a new one.
	c.isolate(old, true)
	hidden := c.stores[old]
	c.stores[old] = nil
	c.waitFor(200, "a new leader", func() bool {
		nl, ok := c.leaderOf(1)
		return ok && nl != old
	})
	c.stores[old] = hidden
	c.isolate(old, false)
	// The new leader's heartbeat deposes the old one before its next tick.
	dropped := hidden.Stats().HeldCommitsDropped
	for i := 0; i < 20 && c.region(old, 1).IsLeader; i++ {
		for _, id := range c.ids {
			if st := c.stores[id]; st != nil && id != old {
				st.Tick()
			}
		}
		c.flushAll()
		c.deliver()
	}
	if c.region(old, 1).IsLeader {
		t.Fatal("the old leader was not deposed")
	}
	c.net.q = nil
	hidden.Tick()
	if err := hidden.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, e := range c.net.q {
		if m := e.GetRaft().GetMessage(); m != nil && m.GetTerm() != 0 && m.GetTerm() <= term && m.GetType() == raftpb.MessageType_MsgApp {
			t.Errorf("the deposed leader sent an append of its old term %d: %v", term, m)
		}
	}
	if hidden.Stats().HeldCommitsDropped == dropped {
		t.Error("the deposed leader dropped nothing it held: the test no longer reaches the case")
	}
}
