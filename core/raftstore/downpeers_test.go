package raftstore_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// hbLog records the region heartbeats the stores send PD.
type hbLog struct {
	hbs []*pb.RegionHeartbeat
}

// recordHeartbeats installs a filter that keeps every RegionHeartbeat (and
// drops nothing).
func (c *cluster) recordHeartbeats() *hbLog {
	l := &hbLog{}
	c.filter = func(e *pb.Envelope) bool {
		if hb := e.GetRegionHeartbeat(); hb != nil {
			l.hbs = append(l.hbs, hb)
		}
		return false
	}
	return l
}

// downStores returns the stores of the down peers a heartbeat lists, sorted.
func downStores(hb *pb.RegionHeartbeat) []uint64 {
	var out []uint64
	for _, p := range hb.GetDownPeers() {
		out = append(out, p.GetStoreId())
	}
	slices.Sort(out)
	return out
}

// mustListNoDown fails if a heartbeat recorded from index from on lists a
// down peer other than those on the stores allowed.
func (l *hbLog) mustListNoDown(t *testing.T, from int, what string, allowed ...uint64) {
	t.Helper()
	for i, hb := range l.hbs[from:] {
		for _, s := range downStores(hb) {
			if !slices.Contains(allowed, s) {
				t.Fatalf("%s: heartbeat %d (leader on store %d, term %d) lists the peer on store %d down: %v",
					what, from+i, hb.GetLeader().GetStoreId(), hb.GetTerm(), s, downStores(hb))
			}
		}
	}
}

// A leader lists as down the peers it has not heard from for an election
// timeout, and only those: not every follower in the heartbeat it sends
// when it is elected (raft has heard from none of them yet), nor at every
// check-quorum (raft clears its recent-activity flags then). PD counts a
// down peer out of its region's quorum.
func TestDownPeersAreThoseSilentForAnElectionTimeout(t *testing.T) {
	c := newCluster(t, defaultConfig())
	log := c.recordHeartbeats()
	c.waitBootstrap(1)
	first := c.waitLeader(1)
	for i := 0; i < 60; i++ { // six election timeouts, six region heartbeats, some writes
		if i%7 == 0 {
			c.ok(1, put("k", "v"))
		}
		c.step()
	}
	if len(log.hbs) < 5 {
		t.Fatalf("%d region heartbeats", len(log.hbs))
	}
	log.mustListNoDown(t, 0, "every store up")

	// The leader's store dies: the new leader does not list it down at once
	// (it has just been elected), but does after an election timeout; it
	// never lists the live follower.
	c.stop(first)
	from := len(log.hbs)
	second := c.waitLeader(1)
	c.waitFor(50, "the dead store's peer listed down", func() bool {
		last := log.hbs[len(log.hbs)-1]
		return last.GetLeader().GetStoreId() == second && slices.Equal(downStores(last), []uint64{first})
	})
	log.mustListNoDown(t, from, "one store dead", first)
	elected := slices.IndexFunc(log.hbs[from:], func(hb *pb.RegionHeartbeat) bool {
		return hb.GetLeader().GetStoreId() == second
	})
	if hb := log.hbs[from+elected]; len(hb.GetDownPeers()) != 0 {
		t.Fatalf("the new leader's first heartbeat lists %v down", downStores(hb))
	}
	for i := 0; i < 30; i++ {
		c.step()
	}
	log.mustListNoDown(t, from, "one store dead", first)
}

// A quiet leader hears nothing from its quiet followers: it lists none down
// while their stores ping, and lists one once its store has gone silent.
func TestQuietLeaderListsDownOnlySilentStores(t *testing.T) {
	cfg := defaultConfig()
	cfg.QuietHeartbeatFactor = 1 // a report every second, quiet or not
	c, rids := quietClusterWith(t, cfg, 1)
	log := c.recordHeartbeats()
	for i := 0; i < 100; i++ { // ten region heartbeats, all quiet
		c.step()
	}
	if len(log.hbs) < 5 {
		t.Fatalf("%d region heartbeats from a quiet leader", len(log.hbs))
	}
	log.mustListNoDown(t, 0, "quiet, every store up")
	if !c.region(c.waitLeader(rids[0]), rids[0]).Quiet {
		t.Fatalf("the leader woke up")
	}
	leader, _ := c.leaderOf(rids[0])
	var follower uint64
	for _, id := range c.ids {
		if id != leader {
			follower = id
		}
	}
	from := len(log.hbs)
	c.stop(follower)
	start := c.clock.now
	c.waitFor(100, "the silent store's peer listed down", func() bool {
		last := log.hbs[len(log.hbs)-1]
		return slices.Equal(downStores(last), []uint64{follower})
	})
	log.mustListNoDown(t, from, "quiet, one store dead", follower)
	// Silent means no ping for QuietLeaderTimeout (three election timeouts,
	// 3 s), and the store last pinged at most an election timeout before it
	// stopped.
	if d := c.clock.now.Sub(start); d < 2*time.Second {
		t.Fatalf("listed down %v after its store stopped, before its store could be silent", d)
	}
}

// A quiet leader heard nothing from its quiet followers while it slept. When
// it wakes, its next report must not list them down before they could
// answer: while their stores ping, they are as alive as the quiet rule
// said a moment before. (It listed both: their last raft message was from
// before the region went quiet.) PD counts a down peer out of the quorum,
// so the order the leader was woken for could be held.
func TestWokenLeaderDoesNotListLiveFollowersDown(t *testing.T) {
	cfg := defaultConfig()
	c, rids := quietClusterWith(t, cfg, 1)
	rid := rids[0]
	leader := c.waitLeader(rid)
	for i := 0; i < 50; i++ { // five election timeouts asleep
		c.step()
	}
	if !c.region(leader, rid).Quiet {
		t.Fatal("the leader woke up")
	}
	// The followers' answers are late: none arrives before the leader's
	// next tick.
	log := &hbLog{}
	late := true
	c.filter = func(e *pb.Envelope) bool {
		if hb := e.GetRegionHeartbeat(); hb != nil {
			log.hbs = append(log.hbs, hb)
		}
		return late && e.GetTo() == leader && e.GetRaft().GetMessage() != nil
	}
	c.wakeFromPD(leader, rid)
	c.step()
	late = false
	if len(log.hbs) == 0 {
		t.Fatal("the woken leader did not report")
	}
	log.mustListNoDown(t, 0, "woken, every store up")
	// A follower whose store has gone silent is still listed.
	for i := 0; i < 100; i++ {
		c.step()
	}
	if !c.region(leader, rid).Quiet {
		t.Fatal("the region did not go back to sleep")
	}
	f := others(c, leader)[0]
	c.stop(f)
	for i := 0; i < 40; i++ { // four election timeouts: its store is silent
		c.step()
	}
	from := len(log.hbs)
	late = true
	c.wakeFromPD(leader, rid)
	c.step()
	late = false
	if len(log.hbs) == from || !slices.Equal(downStores(log.hbs[len(log.hbs)-1]), []uint64{f}) {
		t.Fatalf("woken leader's report after store %d went silent: %v", f, log.hbs[from:])
	}
}

// wakeFromPD delivers to store id PD's answer to a store heartbeat naming
// region rid (its leader there wakes and reports at its next tick).
func (c *cluster) wakeFromPD(id, rid uint64) {
	c.net.Send(pb.NewEnvelope(pdNode, id, &pb.StoreHeartbeatResponse{StoreIds: c.ids, WakeRegions: []uint64{rid}}))
	c.deliver()
}

// A quiet leader takes a silent follower for alive while the follower's
// store pings. When that store restarts, the follower may not come back
// (here its raft messages never arrive, while its store pings): the leader
// must list it down, and keep listing it once the region sleeps again.
// (It did not: the quiet leader never woke and never listed it, so PD
// could never replace it.) A follower that does come back is not listed.
func TestQuietLeaderListsDownAReplicaThatDidNotComeBackFromARestart(t *testing.T) {
	cfg := defaultConfig()
	cfg.QuietHeartbeatFactor = 1 // a report every second, quiet or not
	c, rids := quietClusterWith(t, cfg, 1)
	rid := rids[0]
	leader := c.waitLeader(rid)
	f := others(c, leader)[0]
	log := &hbLog{}
	dead := false
	c.filter = func(e *pb.Envelope) bool {
		if hb := e.GetRegionHeartbeat(); hb != nil {
			log.hbs = append(log.hbs, hb)
		}
		return dead && e.GetFrom() == f && e.GetRaft() != nil
	}
	// A restart it comes back from.
	c.stop(f)
	c.start(f)
	for i := 0; i < 200; i++ {
		c.step()
	}
	log.mustListNoDown(t, 0, "the follower came back")
	c.waitAllQuiet(rids)
	// A restart it does not come back from.
	from := len(log.hbs)
	c.stop(f)
	c.start(f)
	dead = true
	c.waitFor(100, fmt.Sprintf("the peer on store %d listed down", f), func() bool {
		return len(log.hbs) > from && slices.Equal(downStores(log.hbs[len(log.hbs)-1]), []uint64{f})
	})
	log.mustListNoDown(t, from, "one replica gone", f)
	c.waitFor(300, "the leader asleep again", func() bool { return c.region(leader, rid).Quiet })
	from = len(log.hbs)
	for i := 0; i < 50; i++ {
		c.step()
	}
	if len(log.hbs) == from {
		t.Fatal("the quiet leader did not report")
	}
	for _, hb := range log.hbs[from:] {
		if !slices.Equal(downStores(hb), []uint64{f}) {
			t.Fatalf("the quiet leader's report lists %v down, want [%d]", downStores(hb), f)
		}
	}
}
