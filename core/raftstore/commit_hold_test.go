package raftstore_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
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

// A region written between every two ticks is never idle at a tick: the
// tick sends the last write's held commit, and a region that just sent
// one does not go quiet. When the writes stop it goes quiet, and its
// followers with it, even when their answers to the leader's last round
// are lost. (Found in review: the leader counted its idle time from its
// first idle tick, writes between ticks unseen, and went quiet in the tick
// that sent a held commit. Its followers stepped the commit, ignored the
// quiet notice right behind it with a round still to run, and woke the
// leader, or, their answers lost, elected a new one.)
func TestRegionWrittenEveryTickQuiescesWithItsFollowers(t *testing.T) {
	c, rids := quietCluster(t, 1)
	rid := rids[0]
	c.ok(rid, put("a", "0")) // wake the region
	l := c.waitLeader(rid)
	quiesced := func() (n []uint64) {
		for _, id := range c.ids {
			n = append(n, c.store(id).Stats().Quiesced)
		}
		return n
	}
	q0 := quiesced()
	for i := 0; i < 150; i++ { // 15 s, one write per tick (QuietAfter is 10 s)
		c.putAt(l, fmt.Sprintf("k%04d", i), "v")
		c.step()
	}
	if q := quiesced(); !slices.Equal(q, q0) {
		t.Fatalf("a region written every tick went quiet: times quiesced per store %v, before %v", q, q0)
	}
	term := c.region(l, rid).Term
	dropped := 0
	for i := 0; c.store(l).Stats().Quiesced == q0[slices.Index(c.ids, l)]; i++ {
		if i > 300 {
			t.Fatalf("the leader did not go quiet after the writes stopped\n%s", c.describe())
		}
		c.tickOnce()
		if c.store(l).Stats().Quiesced != q0[slices.Index(c.ids, l)] {
			// The round it went quiet in: every answer to it is lost.
			c.filter = func(e *pb.Envelope) bool {
				if e.GetTo() == l && e.GetRaft() != nil {
					dropped++
					return true
				}
				return false
			}
		}
		c.deliver()
		c.filter = nil
	}
	for i := 0; i < 40; i++ {
		c.step()
	}
	for i, id := range c.ids {
		if got := c.store(id).Stats().Quiesced - q0[i]; got != 1 {
			t.Errorf("store %d went quiet %d times after the writes, want once (with its leader)", id, got)
		}
		if !c.region(id, rid).Quiet {
			t.Errorf("store %d is not quiet", id)
		}
	}
	if nl, _ := c.leaderOf(rid); nl != l || c.region(l, rid).Term != term {
		t.Errorf("the idle region elected: leader store %d term %d, was store %d term %d (%d answers lost)\n%s",
			nl, c.region(nl, rid).Term, l, term, dropped, c.describe())
	}
}

// Only an append to a follower that holds all of the leader's log and can
// take more is held. A follower whose appends were lost, with raft's
// window of appends in flight full, gets an empty append on each heartbeat
// answer to find out where it stands: that one goes out at once.
func TestThrottledFollowersRecoveryAppendIsNotHeld(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxInflightMsgs = 2
	heldBehind, ticks := heldAfterLostAppends(t, cfg, func(c *cluster, l, f uint64) bool {
		next, last := c.store(l).NextIndex(1, c.region(f, 1).PeerID)
		return next != last+1
	})
	if heldBehind > 0 {
		t.Errorf("%d empty appends held for a follower behind the leader's log", heldBehind)
	}
	if ticks > 2 {
		t.Errorf("the writes committed %d ticks after the lost appends, want 2 at most", ticks)
	}
}

// heldAfterLostAppends makes the leader of region 1 lose three appends with
// entries to the only follower that can make a quorum with it, then ticks
// until the three writes commit. It returns how many commit-only appends
// the leader held while behind(c, leader, follower) said the follower was
// behind, and how many ticks the writes took.
func heldAfterLostAppends(t *testing.T, cfg raftstore.Config, behind func(c *cluster, l, f uint64) bool) (heldBehind, ticks int) {
	t.Helper()
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	l := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	c.step()
	var fs []uint64
	for _, id := range c.ids {
		if id != l {
			fs = append(fs, id)
		}
	}
	f1 := fs[0]
	c.isolate(fs[1], true) // f1 alone makes the quorum
	lost := true
	c.filter = func(e *pb.Envelope) bool {
		m := e.GetRaft().GetMessage()
		return lost && e.GetTo() == f1 && m.GetType() == raftpb.MessageType_MsgApp && len(m.GetEntries()) > 0
	}
	var ids []uint64
	for i := 0; i < 3; i++ {
		req := &pb.KvRequest{Header: c.header(l, 1)}
		put(fmt.Sprintf("k%d", i), "v")(req)
		ids = append(ids, c.send(l, req))
		c.deliver()
	}
	lost = false
	for ; ticks < 50; ticks++ {
		done := true
		for _, id := range ids {
			done = done && c.responses[id] != nil
		}
		if done {
			return heldBehind, ticks
		}
		c.tickOnce()
		for r := 0; r < maxRounds && len(c.net.q) > 0; r++ {
			before := c.store(l).Stats().CommitsHeld
			c.round()
			if c.store(l).Stats().CommitsHeld > before && behind(c, l, f1) {
				heldBehind++
			}
		}
	}
	t.Fatalf("the writes never committed\n%s", c.describe())
	return 0, 0
}

// A split's followers hear of its commit at once, not at the next tick:
// the new region's first leader is elected in the round the split
// applies, without a tick.
func TestNewRegionElectsWithoutWaitingForATick(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	old := c.waitLeader(left)
	c.ok(left, put("a", "1"))
	c.step()
	if err := c.store(old).RequestSplit(left, []byte("g")); err != nil {
		t.Fatalf("RequestSplit: %v", err)
	}
	c.deliver() // no tick: PD answers; the split is proposed, committed and applied
	newID := uint64(0)
	for _, rs := range c.store(old).Regions() {
		if id := rs.Region.GetId(); id != left && id != right {
			newID = id
		}
	}
	if newID == 0 {
		t.Fatalf("the leader did not apply the split without a tick\n%s", c.describe())
	}
	if _, ok := c.leaderOf(newID); !ok {
		t.Errorf("region %d has no leader all replicas agree on before a tick\n%s", newID, c.describe())
	}
}

// A follower whose appends were lost, raft's window of appends in flight
// still open, gets an empty append on each heartbeat answer to find out
// where it stands. It repeats a commit the follower was told: it goes out
// at once, and the writes commit at the first heartbeat answer.
func TestLostAppendsRecoveryAppendIsNotHeld(t *testing.T) {
	heldBehind, ticks := heldAfterLostAppends(t, defaultConfig(), func(c *cluster, l, f uint64) bool {
		match, _, _ := c.store(l).Progress(1, c.region(f, 1).PeerID)
		_, last := c.store(l).NextIndex(1, c.region(f, 1).PeerID)
		return match != last
	})
	if heldBehind > 0 {
		t.Errorf("%d empty appends held for a follower that does not hold the leader's log", heldBehind)
	}
	if ticks > 2 {
		t.Errorf("the writes committed %d ticks after the lost appends, want 2 at most", ticks)
	}
}

// A region written and read between every two ticks: the read's heartbeat
// carries the write's commit and replaces the held append, so the tick
// sends nothing; the region is still not idle, and never goes quiet.
func TestRegionWrittenAndReadEveryTickStaysAwake(t *testing.T) {
	c, rids := quietCluster(t, 1)
	rid := rids[0]
	c.ok(rid, put("a", "0")) // wake the region
	l := c.waitLeader(rid)
	q0 := c.store(l).Stats().Quiesced
	for i := 0; i < 150; i++ { // 15 s, a write and a read per tick (QuietAfter is 10 s)
		c.putAt(l, fmt.Sprintf("k%04d", i), "v")
		req := &pb.KvRequest{Header: c.header(l, rid)}
		get("a")(req)
		id := c.send(l, req)
		c.deliver()
		if r := c.responses[id]; r == nil || r.GetRegionError() != nil {
			t.Fatalf("get: %v", r)
		}
		delete(c.responses, id)
		c.step()
	}
	if q := c.store(l).Stats().Quiesced; q != q0 {
		t.Errorf("a region written and read every tick went quiet %d times", q-q0)
	}
}
