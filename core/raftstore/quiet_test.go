package raftstore_test

import (
	"fmt"
	"testing"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// quietCluster starts 3 stores holding n regions, cut at k001, k002, ...,
// and runs until every replica of every region is quiet. It returns the
// region ids in key order.
func quietCluster(t *testing.T, n int) (*cluster, []uint64) {
	t.Helper()
	return quietClusterWith(t, defaultConfig(), n)
}

// quietClusterWith is quietCluster with the stores configured by cfg.
func quietClusterWith(t *testing.T, cfg raftstore.Config, n int) (*cluster, []uint64) {
	t.Helper()
	var keys []string
	for i := 1; i < n; i++ {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	c := newCluster(t, cfg, keys...)
	c.waitBootstrap()
	var rids []uint64
	for _, rs := range c.store(c.ids[0]).Regions() {
		rids = append(rids, rs.Region.GetId())
	}
	if len(rids) != n {
		t.Fatalf("store %d holds %d regions, want %d", c.ids[0], len(rids), n)
	}
	for _, rid := range rids {
		c.waitLeader(rid)
	}
	c.waitAllQuiet(rids)
	return c, rids
}

// waitAllQuiet runs until every running replica of regions rids is quiet.
func (c *cluster) waitAllQuiet(rids []uint64) {
	c.t.Helper()
	c.waitFor(600, "every replica to go quiet", func() bool {
		for _, id := range c.ids {
			if c.stores[id] == nil {
				continue
			}
			for _, rid := range rids {
				if rs := c.region(id, rid); rs == nil || !rs.Quiet {
					return false
				}
			}
		}
		return true
	})
}

// countRaft installs a filter that counts raft messages, returning the count.
func (c *cluster) countRaft() *int {
	n := new(int)
	c.filter = func(e *pb.Envelope) bool {
		if e.GetRaft() != nil {
			*n++
		}
		return false
	}
	return n
}

func TestIdleRegionsGoQuietAndSendNothing(t *testing.T) {
	c, rids := quietCluster(t, 20)
	sent := c.countRaft()
	for i := 0; i < 200; i++ { // 20 election timeouts
		c.step()
	}
	if *sent != 0 {
		t.Fatalf("quiet regions sent %d raft messages in 200 ticks, want 0\n%s", *sent, c.describe())
	}
	for _, id := range c.ids {
		for _, rid := range rids {
			if rs := c.region(id, rid); !rs.Quiet {
				t.Fatalf("store %d region %d woke up with nothing to do", id, rid)
			}
		}
	}
}

func TestQuietRegionWakesForARequest(t *testing.T) {
	c, rids := quietCluster(t, 5)
	woken := func() uint64 {
		return c.store(1).Stats().Woken + c.store(2).Stats().Woken + c.store(3).Stats().Woken
	}
	before := woken()
	third := rids[2] // ["k002", "k003")
	c.ok(third, put("k0025", "v"))
	c.mustGet(third, "k0025", "v", 1)
	if after := woken(); after < before+3 {
		t.Fatalf("a write to a quiet region woke %d peers, want its 3 replicas", after-before)
	}
	for _, id := range c.ids {
		for _, rid := range rids {
			if rid != third && !c.region(id, rid).Quiet {
				t.Fatalf("store %d region %d woke for another region's write", id, rid)
			}
		}
	}
	// Once idle again, the region goes back to sleep.
	c.waitAllQuiet(rids)
}

// A quiet follower hears no heartbeats: if its leader's store dies, it must
// still notice (the stores' pings stop) and elect a new leader.
func TestQuietRegionsElectWhenTheLeaderStoreDies(t *testing.T) {
	c, rids := quietCluster(t, 6)
	var led []uint64
	dead := c.waitLeader(rids[0])
	for i, rid := range rids {
		if l, _ := c.leaderOf(rid); l == dead {
			led = append(led, rid)
			defer func(i int) { c.mustGet(rids[i], fmt.Sprintf("k%03d-after", i), "v", 1) }(i)
		}
	}
	c.stop(dead)
	for i, rid := range rids {
		l := c.waitLeader(rid) // 200 ticks: QuietLeaderTimeout (30) plus elections
		if l == dead {
			t.Fatalf("region %d still led by the dead store %d", rid, dead)
		}
		c.ok(rid, put(fmt.Sprintf("k%03d-after", i), "v"))
	}
	c.start(dead)
	c.waitFor(400, "the restarted store to catch up on every region", func() bool {
		for _, rid := range led {
			l, ok := c.leaderOf(rid)
			if !ok {
				return false
			}
			if c.region(dead, rid).Applied != c.region(l, rid).Applied {
				return false
			}
		}
		return true
	})
}

// A quiet leader cut off from its followers cannot tell; the followers
// elect another leader, and the old one must not serve a read from its
// stale state.
func TestCutOffQuietLeaderServesNoStaleRead(t *testing.T) {
	c, rids := quietCluster(t, 1)
	c.ok(1, put("a", "old"))
	c.waitAllQuiet(rids)
	old := c.waitLeader(1)
	c.isolate(old, true)
	var fresh uint64
	c.waitFor(300, "the others to elect a new leader", func() bool {
		l, ok := c.leaderOf(1)
		fresh = l
		return ok && l != old
	})
	c.ok(1, put("a", "new"))
	// The old leader still believes it leads; clients still reach it.
	req := &pb.KvRequest{Header: c.header(old, 1)}
	get("a")(req)
	id := c.send(old, req)
	for i := 0; i < 100 && c.responses[id] == nil; i++ {
		c.step()
	}
	if resp := c.responses[id]; resp != nil && resp.GetRegionError() == nil {
		t.Fatalf("cut-off old leader (store %d) answered a read: %v (new leader is store %d)", old, resp, fresh)
	}
	c.isolate(old, false)
	c.waitFor(300, "the old leader to rejoin", func() bool {
		l, ok := c.leaderOf(1)
		return ok && l == fresh && c.region(old, 1).Applied == c.region(fresh, 1).Applied
	})
	c.mustGet(1, "a", "new", 2)
	c.waitAllQuiet(rids)
}

// A store that restarts starts its peers awake; a follower that hears no
// heartbeat from a quiet leader campaigns, and its pre-vote wakes the
// others rather than deposing a healthy leader for nothing or hanging.
func TestRestartedFollowerOfAQuietRegionRejoins(t *testing.T) {
	c, rids := quietCluster(t, 3)
	second := rids[1]
	leader := c.waitLeader(second)
	follower := c.ids[0]
	if follower == leader {
		follower = c.ids[1]
	}
	c.stop(follower)
	c.start(follower)
	c.waitFor(300, "the region to agree on a leader with the restarted follower", func() bool {
		_, ok := c.leaderOf(second)
		return ok && c.region(follower, second) != nil
	})
	c.ok(second, put("k001-x", "v"))
	c.waitAllQuiet(rids)
}

// A quiet leader reports to PD only every QuietHeartbeatFactor region
// heartbeat intervals (10 s here), and PD's orders ride on the answers to
// reports; so PD names the regions it has an operator for in its answers to
// store heartbeats (every second here), which wakes their leaders and makes
// them report at once: an operator on a sleeping region starts in about a
// store heartbeat, not a quiet report interval.
func TestOperatorOnAQuietRegionStartsAtOnce(t *testing.T) {
	c, rids := quietCluster(t, 2)
	rid := rids[1]
	leader := c.waitLeader(rid)
	to := c.ids[0]
	if to == leader {
		to = c.ids[1]
	}
	for i := 0; i < 30; i++ { // let the last reports of the boot go by
		c.step()
	}
	if _, err := c.pd.TransferLeader(rid, to); err != nil {
		t.Fatal(err)
	}
	c.waitFor(30, fmt.Sprintf("region %d led from store %d, 3 s after PD ordered it", rid, to), func() bool {
		l, ok := c.leaderOf(rid)
		return ok && l == to
	})
}

// A store that restarts brings its peers back awake and not leading. The
// quiet followers whose leader was there must not wait for its campaign
// (an election timeout, at least) to find out: the first ping of the
// store's new life wakes them, and a new leader is elected at once.
func TestQuietFollowersWakeWhenTheirLeaderStoreRestarts(t *testing.T) {
	c, rids := quietCluster(t, 1)
	rid := rids[0]
	leader := c.waitLeader(rid)
	c.stop(leader)
	c.start(leader)
	for i := 0; i < 3; i++ {
		c.step()
	}
	for _, id := range others(c, leader) {
		if c.region(id, rid).Quiet {
			t.Fatalf("store %d's follower still quiet 3 ticks after its leader's store %d restarted\n%s", id, leader, c.describe())
		}
	}
	c.waitLeader(rid)
	c.ok(rid, put("x", "1"))
	c.waitAllQuiet(rids)
}

// A ping of a store's previous life that arrives late (the network delays
// and reorders) is no restart: it wakes nothing.
func TestLatePingOfAStoresPreviousLifeWakesNothing(t *testing.T) {
	c, rids := quietCluster(t, 1)
	rid := rids[0]
	leader := c.waitLeader(rid)
	var old []*pb.Envelope
	c.filter = func(e *pb.Envelope) bool {
		if e.GetFrom() == leader && e.GetStorePing() != nil && len(old) < 2 {
			old = append(old, e)
		}
		return false
	}
	c.waitFor(20, "a ping", func() bool { return len(old) > 0 })
	c.filter = nil
	c.stop(leader)
	c.start(leader)
	c.waitLeader(rid)
	c.ok(rid, put("x", "1"))
	c.waitAllQuiet(rids)
	woken := func() (n uint64) {
		for _, id := range c.ids {
			n += c.store(id).Stats().Woken
		}
		return n
	}
	before := woken()
	for _, e := range old {
		c.net.Send(e)
	}
	for i := 0; i < 20; i++ {
		c.step()
	}
	if after := woken(); after != before {
		t.Fatalf("a late ping of store %d's previous life woke %d peers\n%s", leader, after-before, c.describe())
	}
}
