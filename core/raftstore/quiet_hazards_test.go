package raftstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// Hazards of quiescence (quiet.go) that an adversarial review found, one
// test each; every one failed before its fix.

// A quiet follower that is cut off for less than QuietLeaderTimeout while
// the group removes it misses its removal: the group sends a removed peer
// nothing, the leader's GC notice is lost in the cut, and its leader's
// store keeps pinging. It must still find out (it asks PD every
// QuietStaleCheck while quiet) and destroy itself; otherwise the stale
// replica keeps its range on the store for good (a snapshot of any region
// overlapping it is refused there) and counts in the store's region count.
func TestQuietRemovedFollowerIsCollected(t *testing.T) {
	c, victim, leader := staleQuietFollower(t, cutStore)
	// QuietStaleCheck is 10 s here (StalePeerCheck, 10 election
	// timeouts; 10 region heartbeat intervals); give it 6 times that.
	for i := 0; i < 600; i++ {
		c.step()
	}
	if rs := c.region(victim, 1); rs != nil {
		t.Fatalf("store %d still holds removed peer %d of region 1 after 60 s (quiet=%v, conf_ver %d, members now %s)\n%s",
			victim, rs.PeerID, rs.Quiet, rs.Region.GetEpoch().GetConfVer(), describePeers(c.meta(leader, 1)), c.describe())
	}
}

// A quiet follower that misses the raft messages of its removal (the entry,
// or the commit: once the leader has applied the removal it sends the
// removed peer nothing more) is told at once all the same: the leader that
// applies a removal sends the removed peer a GC notice.
func TestQuietRemovedFollowerIsToldAtOnce(t *testing.T) {
	c, victim, leader := staleQuietFollower(t, loseRaft)
	var why string
	c.store(victim).SetHooks(raftstore.Hooks{PeerDestroyed: func(_ *pb.Region, _ uint64, w string) { why = w }})
	c.waitFor(20, fmt.Sprintf("store %d to destroy its removed peer of region 1", victim), func() bool {
		return c.region(victim, 1) == nil
	})
	if n := c.store(leader).Stats().GCNoticesSent; n == 0 {
		t.Fatalf("the leader sent no GC notice (peer destroyed: %s)", why)
	}
}

// The harm of a stale quiet replica: its range stays taken on its store.
// Region 1 splits; PD then places the new right half on the victim's store.
// The new region's messages overlap the stale replica there (an
// initialized, older region: they are held for a split that will never
// come), so the learner is created only once the stale replica is gone;
// then the move completes.
func TestQuietStaleReplicaDoesNotBlockPlacement(t *testing.T) {
	c, victim, leader := staleQuietFollower(t, cutStore)
	for i := 0; i < 100; i++ {
		c.step()
	}
	if err := c.store(leader).RequestSplit(1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	var right uint64
	c.waitFor(200, "the split at m on the members", func() bool {
		right = c.splitSeen(1, "", "m", "", others(c, victim)...)
		return right != 0
	})
	from := others(c, victim)[0]
	if from == leader {
		from = others(c, victim)[1]
	}
	if _, err := c.pd.MoveRegion(right, from, victim); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, r := range c.pd.Regions() {
				t.Logf("PD: region %d %s conf_ver %d peers %s", r.GetId(), r.RangeString(), r.GetEpoch().GetConfVer(), describePeers(r))
			}
			for _, o := range c.pd.Operators() {
				t.Logf("PD operator: %+v", o)
			}
			for _, id := range c.ids {
				st := c.store(id).Stats()
				t.Logf("store %d: unknown-region msgs %d, snapshots refused %d, placeholders %d", id, st.UnknownRegionMsgs, st.SnapshotsRefused, st.PlaceholderPeers)
			}
		}
	}()
	c.waitFor(600, fmt.Sprintf("region %d's replica moved from store %d to store %d", right, from, victim), func() bool {
		rs := c.region(victim, right)
		return rs != nil && rs.Initialized && c.region(from, right) == nil
	})
}

// What the victim of staleQuietFollower misses while it is removed.
const (
	cutStore = iota // everything: its store is cut off
	loseRaft        // the raft messages sent to it
)

// staleQuietFollower starts stores 1-4 with region 1 on 1-3 and has PD move
// a follower's replica to store 4. PD's last step (remove the demoted
// source) is held until every replica is quiet; then the source's store
// misses what lose says while the removal goes through (for less than
// QuietLeaderTimeout, 3 s), and the cut heals. It returns the cluster, the
// source's store (the victim) and the leader's.
func staleQuietFollower(t *testing.T, lose int) (c *cluster, victim, leader uint64) {
	t.Helper()
	c = newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	leader = c.waitLeader(1)
	c.ok(1, put("a", "1"))
	c.ok(1, put("z", "1"))
	for _, id := range []uint64{1, 2, 3} {
		if id != leader {
			victim = id
			break
		}
	}
	hold := true
	c.filter = func(e *pb.Envelope) bool {
		if o := e.GetRegionOrder(); o != nil && hold {
			for _, ch := range o.GetChangePeers().GetChanges() {
				if ch.GetType() == pb.ChangeType_REMOVE_PEER {
					return true
				}
			}
		}
		return false
	}
	if _, err := c.pd.MoveRegion(1, victim, 4); err != nil {
		t.Fatal(err)
	}
	c.waitFor(300, "the source demoted to a learner, store 4 a voter", func() bool {
		rs := c.region(leader, 1)
		v := rs.Region.PeerOnStore(victim)
		n := rs.Region.PeerOnStore(4)
		return v != nil && v.GetRole() == pb.PeerRole_LEARNER && n != nil && n.GetRole() == pb.PeerRole_VOTER &&
			len(rs.Region.GetPeers()) == 4
	})
	c.waitAllQuiet([]uint64{1})
	base := c.meta(leader, 1).GetEpoch().GetConfVer()
	if lose == cutStore {
		c.isolate(victim, true)
	} else {
		c.filter = func(e *pb.Envelope) bool { return e.GetTo() == victim && e.GetRaft().GetMessage() != nil }
	}
	start := c.clock.now
	hold = false
	c.waitFor(25, "the removal to apply on the other stores", func() bool {
		for _, id := range others(c, victim) {
			if c.region(id, 1).Region.GetEpoch().GetConfVer() != base+1 {
				return false
			}
		}
		return true
	})
	t.Logf("removal applied %v after the order was let through", c.clock.now.Sub(start))
	if rs := c.region(victim, 1); lose == cutStore && (c.clock.now.Sub(start) >= 3*time.Second || rs == nil || !rs.Quiet) {
		t.Skipf("the victim woke during the cut (%v): no hazard on this seed", c.clock.now.Sub(start))
	}
	c.isolate(victim, false)
	c.filter = nil
	return c, victim, leader
}

// A quiet leader cut off from its group stays quiet and believes it leads
// (it cannot know). Its followers elect another leader, and PD moves the
// replica away from its store. When the cut heals nobody talks to it (it is
// no member) and its reports to PD are stale: it must still find out, by
// asking PD every QuietStaleCheck, and destroy itself.
func TestQuietLeaderDeposedAndRemovedIsCollected(t *testing.T) {
	c := newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	old := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	c.waitFor(600, "region 1 quiet on stores 1-3", func() bool {
		for _, id := range []uint64{1, 2, 3} {
			if !c.region(id, 1).Quiet {
				return false
			}
		}
		return true
	})
	c.isolate(old, true)
	var next uint64
	c.waitFor(100, "another leader", func() bool {
		l, ok := c.leaderOf(1)
		next = l
		return ok && l != old
	})
	if _, err := c.pd.MoveRegion(1, old, 4); err != nil {
		t.Fatal(err)
	}
	c.waitFor(300, fmt.Sprintf("the replica moved from store %d to store 4", old), func() bool {
		m := c.meta(next, 1)
		return m.PeerOnStore(old) == nil && m.PeerOnStore(4).GetRole() == pb.PeerRole_VOTER
	})
	if rs := c.region(old, 1); rs == nil || !rs.Quiet || !rs.IsLeader {
		t.Skipf("the old leader is not a quiet leader any more: no hazard on this seed")
	}
	c.isolate(old, false)
	for i := 0; i < 600; i++ {
		c.step()
	}
	if rs := c.region(old, 1); rs != nil {
		t.Fatalf("store %d still holds removed peer %d of region 1 after 60 s (quiet=%v, leader=%v)\n%s",
			old, rs.PeerID, rs.Quiet, rs.IsLeader, c.describe())
	}
	if _, ok := c.leaderOf(1); !ok {
		t.Fatalf("region 1 has no agreed leader\n%s", c.describe())
	}
}

// PD's move waits for the learner to catch up (stepWaitCatchUp: the
// leader's heartbeat must not list it pending) before it promotes the
// learner and removes the source. A learner that has acknowledged nothing
// yet (raft's progress: probe, match 0) is pending, even in a region whose
// commit index is under pendingLag (16; every young region: bootstrap and
// split start the log at a small index). Here the learner's snapshot never
// gets through (store 4 drops every chunk): the source must stay a voter.
// (It did not: PD promoted the learner at the leader's first report and
// removed the source, leaving two voters that hold the region's data and
// one that holds nothing, while PD believed it had three replicas.)
func TestMoveDoesNotPromoteALearnerThatHoldsNothing(t *testing.T) {
	c := newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	source := others(c, leader)[0]
	c.filter = func(e *pb.Envelope) bool { return e.GetSnapshotChunk() != nil && e.GetTo() == 4 }
	commit := c.region(leader, 1).Commit
	if _, err := c.pd.MoveRegion(1, source, 4); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		c.step()
		rs := c.region(leader, 1)
		if rs.Region.PeerOnStore(source) == nil || rs.Region.PeerOnStore(source).GetRole() != pb.PeerRole_VOTER {
			in := rs.Region.PeerOnStore(4)
			got := c.region(4, 1)
			t.Fatalf("commit index %d at the start: after %v, the source (store %d) is no longer a voter (%s) although the learner %v on store 4 holds nothing (store 4: %v)",
				commit, time.Duration(i+1)*tick, source, describePeers(rs.Region), in, got != nil && got.Initialized)
		}
	}
	// Once snapshots get through, the move completes (the operator may
	// have timed out meanwhile: order it again).
	c.filter = nil
	if len(c.pd.Operators()) == 0 {
		if _, err := c.pd.MoveRegion(1, source, 4); err != nil {
			t.Fatal(err)
		}
	}
	c.waitFor(300, "the move to complete", func() bool {
		m := c.meta(leader, 1)
		rs := c.region(4, 1)
		return m.PeerOnStore(source) == nil && m.PeerOnStore(4).GetRole() == pb.PeerRole_VOTER && rs != nil && rs.Initialized
	})
	c.waitReplicasOn(1, "a", others(c, source)...)
}

// A store of the cluster that holds no replica of the region (store 4 here)
// sends each follower a QuietNotice "from" the leader's peer id on store 4.
// The followers must ignore it: the leader's peer does not live on store 4
// by their meta. (They took it: onQuietNotice checked only the peer id, and
// checkNotice only that the notice's from-peer store is the sender; they
// went quiet watching store 4's contact record as their leader's, ignored
// the real leader's notices, and when the leader's store died, store 4
// kept pinging: the region had no leader, for good.) The real leader then
// goes quiet, its store dies, and the followers elect a new one.
func TestForgedQuietNoticeFromANonMemberStoreIsIgnored(t *testing.T) {
	c := newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	for i := 0; i < 20; i++ { // stores learn PD's store list (store 4 included)
		c.step()
	}
	meta := c.meta(leader, 1)
	lp := meta.PeerOnStore(leader)
	rs := c.region(leader, 1)
	for _, f := range others(c, leader) {
		fp := meta.PeerOnStore(f)
		if fp == nil {
			continue
		}
		c.net.Send(pb.NewEnvelope(4, f, &pb.RaftMessage{
			RegionId: 1, FromPeer: &pb.Peer{Id: lp.GetId(), StoreId: 4}, ToPeer: fp,
			RegionEpoch: meta.GetEpoch(), StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
			Quiet: &pb.QuietNotice{Term: rs.Term, Index: rs.Applied},
		}))
	}
	c.deliver()
	for _, f := range others(c, leader) {
		if f == 4 {
			continue
		}
		if c.region(f, 1).Quiet {
			t.Fatalf("store %d took the forged notice\n%s", f, c.describe())
		}
		if n := c.store(f).Stats().QuietNoticesIgnored; n != 1 {
			t.Fatalf("store %d counted %d ignored quiet notices, want 1", f, n)
		}
	}
	c.waitFor(300, "the leader to go quiet", func() bool { return c.region(leader, 1).Quiet })
	c.stop(leader)
	c.waitFor(300, fmt.Sprintf("a new leader of region 1 after store %d (the leader) died", leader), func() bool {
		_, ok := c.leaderOf(1)
		return ok
	})
}

// A store that comes back with the same id on an empty disk (the operator
// "restarts" a lost store on a new data directory) is refused by PD and
// stops: it must not ping. (PD answered a layout store's hello with the
// initial regions, whatever had happened since, and the store pinged again
// within a tick. A quiet follower takes the pings as its leader's life;
// here the leader of region [m, +inf), created by a split, so not in the
// store's initial layout, was on that store, and nothing of that region
// existed there any more: its followers never woke, and the region was
// leaderless for good.)
func TestStoreReusedOnAnEmptyDiskLeavesNoQuietRegionLeaderless(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries, cfg.LogKeepEntries = 10, 2 // the split entry leaves the log
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	if err := c.store(leader).RequestSplit(1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	var right uint64
	c.waitFor(100, "the split", func() bool {
		right = c.splitSeen(1, "", "m", "")
		return right != 0
	})
	c.leadFrom(leader, right)
	for i := 0; i < 30; i++ {
		c.ok(1, put(fmt.Sprintf("a%02d", i), "v"))
	}
	c.waitAllQuiet([]uint64{1, right})
	c.stop(leader)
	c.fs[leader] = vfs.NewMem()
	c.start(leader)
	// Clients that find no leader ask the followers: a follower answers
	// NotLeader (naming the gone peer) without waking.
	ask := func() {
		for _, id := range others(c, leader) {
			req := &pb.KvRequest{Header: c.header(id, right)}
			get("x")(req)
			c.send(id, req)
		}
	}
	for i := 0; i < 300; i++ {
		if i%10 == 0 {
			ask()
		}
		c.step()
	}
	if _, ok := c.leaderOf(right); !ok {
		t.Fatalf("region %d has no leader 30 s after store %d came back empty, clients asking its followers every second\n%s", right, leader, c.describe())
	}
	st := c.store(leader)
	if st.Err() == nil || st.Bootstrapped() || len(st.Regions()) != 0 {
		t.Fatalf("store %d on an empty disk: err %v, bootstrapped %v, %d regions; want it refused, with none",
			leader, st.Err(), st.Bootstrapped(), len(st.Regions()))
	}
}

// The same store id back on an empty disk is also a raft durability
// hazard: re-created from the initial layout with their old peer ids and an
// empty log, its voters forget what they acknowledged, and a quorum that
// committed a write may no longer hold it. So PD refuses a store id that
// has bootstrapped when it says hello from an empty disk, and the store
// stops (Err) without creating a replica. Here C acknowledges k=v with the
// leader A while B is cut off, then comes back empty: it is refused. (It
// was bootstrapped again; A died, B, which never had k, won with C's vote,
// and the committed write was gone.) Back on its own disk, C rejoins; A
// dies and k is still there.
func TestStoreReusedOnAnEmptyDiskIsRefused(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	a := c.waitLeader(1)
	c.ok(1, put("before", "1"))
	b, cc := others(c, a)[0], others(c, a)[1]
	c.deaf[b] = true
	c.ok(1, put("k", "v")) // committed by a and cc
	c.stop(cc)
	disk := c.fs[cc]
	c.fs[cc] = vfs.NewMem()
	c.start(cc)
	c.waitFor(50, "PD to refuse the empty store", func() bool { return c.store(cc).Err() != nil })
	if err := c.store(cc).Err(); !strings.Contains(err.Error(), "bootstrapped before") {
		t.Fatalf("refused with %v", err)
	}
	for i := 0; i < 30; i++ {
		c.step()
	}
	if st := c.store(cc); st.Bootstrapped() || len(st.Regions()) != 0 {
		t.Fatalf("the refused store bootstrapped (%v) or holds %d regions", st.Bootstrapped(), len(st.Regions()))
	}
	if n := c.pd.Stats().EmptyDiskStores; n == 0 {
		t.Fatal("PD counted no refusal")
	}
	c.stop(cc)
	c.fs[cc] = disk
	c.start(cc)
	c.waitFor(50, "the store back on its own disk", func() bool { return c.store(cc).Bootstrapped() })
	c.stop(a)
	c.deaf[b] = false
	g := c.ok(1, get("k")).GetGet()
	if !g.GetFound() {
		t.Fatalf("the acknowledged write k=v is lost; store %d leads now\n%s", c.waitLeader(1), c.describe())
	}
}
