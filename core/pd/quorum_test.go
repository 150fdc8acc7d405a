package pd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// Quorum: no membership change PD orders may leave a region whose
// reachable voters are not a strict majority (quorum.go).

// mustKeepQuorum fails the test unless region id's true configuration (both
// halves of a joint one) has a strict majority of live voters.
func (c *cluster) mustKeepQuorum(id uint64) {
	c.t.Helper()
	r := c.regions[id].r
	for _, cfg := range []struct {
		name string
		in   func(pb.PeerRole) bool
	}{
		{"outgoing", func(role pb.PeerRole) bool { return role == pb.PeerRole_VOTER || role == pb.PeerRole_DEMOTING_VOTER }},
		{"incoming", func(role pb.PeerRole) bool { return role == pb.PeerRole_VOTER || role == pb.PeerRole_INCOMING_VOTER }},
	} {
		vs, alive := 0, 0
		for _, p := range r.GetPeers() {
			if cfg.in(p.GetRole()) {
				vs++
				if c.live(p) {
					alive++
				}
			}
		}
		if 2*alive <= vs {
			c.t.Fatalf("round %d: region %d's %s configuration has %d voters, %d reachable: no quorum (%s); orders applied: %v",
				c.round, id, cfg.name, vs, alive, peersOf(r), c.applied)
		}
	}
}

// runKeepingQuorum runs n rounds, checking region id's quorum after each.
func (c *cluster) runKeepingQuorum(id uint64, n int) {
	c.t.Helper()
	for range n {
		c.step()
		c.mustKeepQuorum(id)
	}
}

// removedStores returns the stores of the peers removed from region id by
// the orders applied, in order.
func (c *cluster) removedStores(id uint64) []string {
	var out []string
	for _, a := range c.applied {
		if strings.HasPrefix(a, fmt.Sprintf("region %d: remove-peer ", id)) {
			_, at, _ := strings.Cut(a, "@")
			out = append(out, strings.TrimSuffix(at, "]"))
		}
	}
	return out
}

// voterStores returns the stores of region r's voters, sorted.
func voterStores(r *pb.Region) []uint64 {
	var out []uint64
	for _, v := range votersOf(r) {
		out = append(out, v.GetStoreId())
	}
	slices.Sort(out)
	return out
}

// From the review of the moves: the replica checker removed an extra voter
// without looking at the others' health ("a dead one, else one on an
// Offline store, else the one on the store with the most regions"). A
// region with R+2 voters (two abandoned promotions) whose two newest stores
// went silent a few seconds ago (down, not yet dead) lost a live voter: the
// removal commits (3 of 5 alive) and leaves 4 voters of which 2 are
// unreachable, short of quorum, and then "dead voters are at least half"
// left the region alone for good. Now the checker removes the silent voters
// first, one at a time, each removal keeping three reachable voters, and
// the region ends on its three live stores.
func TestRemovingAnExtraVoterKeepsAQuorum(t *testing.T) {
	cfg := only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica")
	c := newCluster(t, cfg)
	voter := func(id, store uint64) *pb.Peer { return &pb.Peer{Id: id, StoreId: store} }
	r := c.regions[1].r
	c.setPeers(1, append(r.GetPeers(), voter(c.h.pd.alloc(), 4), voter(c.h.pd.alloc(), 5))...)
	c.run(1)
	c.stopped[4], c.stopped[5] = true, true
	c.runKeepingQuorum(1, 10)
	c.runKeepingQuorum(1, int(cfg.MaxStoreDownTime/time.Second))
	c.settle(30)
	c.mustKeepQuorum(1)
	c.healthy(3)
	if got := voterStores(c.regions[1].r); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("voters on stores %v, want the live 1, 2, 3; orders %v", got, c.applied)
	}
	if got := c.removedStores(1); !slices.Equal(got, []string{"4", "5"}) {
		t.Fatalf("removed the peers on stores %v, want 4 then 5; orders %v", got, c.applied)
	}
}

// R+2 voters of which two are already dead: each removal of a dead voter
// keeps the three live ones a majority (3 of 4, then 3 of 3), so both are
// shed. (Removing a live one instead would leave 2 of 4.)
func TestExtraDeadVotersAreShed(t *testing.T) {
	cfg := only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica")
	c := newCluster(t, cfg)
	c.h.pd.set.replicaChecker = false // until stores 4 and 5 count as dead
	voter := func(id, store uint64) *pb.Peer { return &pb.Peer{Id: id, StoreId: store} }
	r := c.regions[1].r
	c.setPeers(1, append(r.GetPeers(), voter(c.h.pd.alloc(), 4), voter(c.h.pd.alloc(), 5))...)
	c.run(1)
	c.stopped[4], c.stopped[5] = true, true
	c.run(int(cfg.MaxStoreDownTime/time.Second) + 1)
	e, h := c.h.pd.view.known(1), c.h.pd.health[1]
	for _, s := range []uint64{4, 5} {
		if !c.h.pd.dead(e.region.PeerOnStore(s), h) {
			t.Fatalf("the peer on store %d is not dead yet", s)
		}
	}
	c.h.pd.set.replicaChecker = true
	c.runKeepingQuorum(1, 10)
	c.settle(30)
	c.healthy(3)
	if got := voterStores(c.regions[1].r); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("voters on stores %v, orders %v", got, c.applied)
	}
	if s := c.h.pd.Stats().Operators[OpRemoveReplica]; s != (OperatorCounts{Started: 2, Finished: 2}) {
		t.Fatalf("remove stats %+v", s)
	}
}

// A region whose reachable voters are not a strict majority gets nothing:
// no change can commit, and none could give it back its quorum (removing a
// silent voter of four with two silent leaves two of three reachable only
// if the removal commits, which needs three of four). Its voters coming
// back is the only way out.
func TestNoReachableQuorumNoOperator(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  []uint64 // stores of extra voters added to the region on stores 1, 2, 3
		silent []uint64 // stores stopped
		rounds int      // rounds to run after stopping them
	}{
		{"3 voters, 2 down", nil, []uint64{2, 3}, 10},
		{"3 voters, 2 dead", nil, []uint64{2, 3}, 30},
		{"4 voters, 2 down", []uint64{4}, []uint64{3, 4}, 10},
		{"4 voters, 2 dead", []uint64{4}, []uint64{3, 4}, 30},
		{"5 voters, 3 down", []uint64{4, 5}, []uint64{2, 4, 5}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := only(spreadLayout(1, 3, 1, 2, 3, 4, 5, 6), "replica", "decommission")
			c := newCluster(t, cfg)
			c.step() // PD hears from the region's leader before anything goes wrong
			peers := c.regions[1].r.GetPeers()
			for _, s := range tc.extra {
				peers = append(peers, &pb.Peer{Id: c.h.pd.alloc(), StoreId: s})
			}
			c.setPeers(1, peers...)
			for _, s := range tc.silent {
				c.stopped[s] = true
			}
			c.run(tc.rounds)
			// Nor does a decommission of the live store move anything.
			if err := c.h.pd.DecommissionStore(1); err != nil {
				t.Fatal(err)
			}
			c.run(5)
			if n := started(c.h.pd); n != 0 {
				t.Fatalf("%d operators on a region without a reachable quorum: %+v; orders %v", n, c.h.pd.Operators(), c.applied)
			}
		})
	}
}

// R+1 voters: the one removed is never the leader, and never a healthy one
// while a down or pending one is there.
func TestExtraVoterChoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending []uint64 // stores whose voter stays behind
		broken  []uint64 // stores whose voter the leader lists as down
		want    uint64   // store whose voter goes
	}{
		// The leader's store 1 has as many regions as any and the lowest id:
		// it used to be picked (with a transfer first).
		{"all healthy: not the leader", nil, nil, 2},
		{"a pending one", []uint64{3}, nil, 3},
		{"a down one", nil, []uint64{4}, 4},
		{"down before pending", []uint64{2}, []uint64{3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, only(fourStores(), "replica"))
			c.step() // PD hears from the region's leader before anything goes wrong
			fr := c.regions[1]
			c.setPeers(1, append(fr.r.Peers, &pb.Peer{Id: c.h.pd.alloc(), StoreId: 4})...)
			for _, s := range tc.pending {
				fr.pending[fr.r.PeerOnStore(s).GetId()] = 1000
			}
			for _, s := range tc.broken {
				c.broken[fr.r.PeerOnStore(s).GetId()] = true
			}
			lead := fr.r.PeerByID(fr.leader).GetStoreId()
			c.runKeepingQuorum(1, 5)
			if got := c.removedStores(1); !slices.Equal(got, []string{fmt.Sprint(tc.want)}) {
				t.Fatalf("removed the peers on stores %v, want %d; orders %v", got, tc.want, c.applied)
			}
			if slices.ContainsFunc(kinds(c.applied), func(k string) bool { return k == "transfer-leader" }) {
				t.Fatalf("leadership moved: %v", c.applied)
			}
			if now := fr.r.PeerByID(fr.leader).GetStoreId(); now != lead {
				t.Fatalf("leader on store %d, was %d", now, lead)
			}
		})
	}
}

// A removal the checker started while the region was healthy is cancelled,
// not ordered, when a report shows that it would now leave no reachable
// quorum; the checker then picks again, from what the region looks like.
func TestRemovalCancelledWhenItWouldBreakQuorum(t *testing.T) {
	c := newCluster(t, only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica"))
	evs := events(c.h.pd)
	fr := c.regions[1]
	c.setPeers(1, append(fr.r.GetPeers(), &pb.Peer{Id: c.h.pd.alloc(), StoreId: 4},
		&pb.Peer{Id: c.h.pd.alloc(), StoreId: 5})...)
	c.stuck = true // leaders ignore orders: the removal stays unapplied
	c.step()
	ops := c.h.pd.Operators()
	if len(ops) != 1 || ops[0].Kind != OpRemoveReplica || ops[0].From != 2 {
		t.Fatalf("operators %+v", ops)
	}
	// Stores 4 and 5 go silent: removing the voter on store 2 now would
	// leave two reachable voters of four.
	c.stopped[4], c.stopped[5] = true, true
	c.stuck = false
	c.step()
	c.mustKeepQuorum(1)
	if s := c.h.pd.Stats().Operators[OpRemoveReplica]; s.Cancelled != 1 {
		t.Fatalf("remove stats %+v; orders %v", s, c.applied)
	}
	var cancelled OperatorEvent
	for _, e := range *evs {
		if e.Event == OpCancelled {
			cancelled = e
		}
	}
	if cancelled.Op.From != 2 || !strings.Contains(cancelled.Reason, "would leave no reachable quorum") {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	// The silent voters are the ones to go.
	c.runKeepingQuorum(1, 10)
	c.settle(30)
	if got := voterStores(fr.r); !slices.Equal(got, []uint64{1, 2, 3}) || len(fr.r.GetPeers()) != 3 {
		t.Fatalf("region %s, orders %v", peersOf(fr.r), c.applied)
	}
	if got := c.removedStores(1); !slices.Equal(got, []string{"4", "5"}) {
		t.Fatalf("removed the peers on stores %v, orders %v", got, c.applied)
	}
}

// A move does not swap its learner in while the new voters would have no
// reachable quorum: here the target and another voter went silent after the
// learner caught up. The swap waits, and goes on once the target is back.
func TestMoveHoldsTheSwapWithoutQuorum(t *testing.T) {
	c := newCluster(t, quietConfig(spreadLayout(1, 3, 1, 2, 3, 4, 5)))
	fr := c.regions[1]
	fr.leader = fr.r.PeerOnStore(2).GetId()
	c.step()
	if _, err := c.h.pd.MoveRegion(1, 1, 4); err != nil {
		t.Fatal(err)
	}
	c.step() // learner added on store 4
	c.stuck = true
	c.step() // caught up: PD orders the swap, the leader ignores it
	if op := c.h.pd.Operators()[0]; !strings.HasPrefix(op.Step, "promote-demote") {
		t.Fatalf("step %q", op.Step)
	}
	c.stopped[3], c.stopped[4] = true, true // {2, 3, 4} would have one reachable voter
	c.stuck = false
	holds := c.h.pd.Stats().QuorumHolds
	c.runKeepingQuorum(1, 8)
	if got := kinds(c.applied); !slices.Equal(got, []string{"add-learner"}) {
		t.Fatalf("orders %v", c.applied)
	}
	if c.h.pd.Stats().QuorumHolds == holds {
		t.Fatalf("no step held")
	}
	c.stopped[4] = false
	c.runKeepingQuorum(1, 10)
	if got := kinds(c.applied); !slices.Equal(got, []string{"add-learner", "promote-demote", "remove-peer"}) {
		t.Fatalf("orders %v", c.applied)
	}
	if got := voterStores(fr.r); !slices.Equal(got, []uint64{2, 3, 4}) || len(fr.r.GetPeers()) != 3 {
		t.Fatalf("region %s", peersOf(fr.r))
	}
}

// A single voter's move promotes its learner before anything else; with the
// learner's store silent, the promotion would leave one reachable voter of
// two. It waits, and the operator is cancelled when the target is down.
func TestSingleVoterMoveHoldsThePromotion(t *testing.T) {
	cfg := quietConfig(Layout{Ranges: []RangeSpec{{}}, Replicas: 1, Stores: []uint64{1, 2}})
	c := newCluster(t, cfg)
	evs := events(c.h.pd)
	c.step()
	if _, err := c.h.pd.MoveRegion(1, 1, 2); err != nil {
		t.Fatal(err)
	}
	c.step() // learner added
	c.stuck = true
	c.step() // caught up: PD orders the promotion, the leader ignores it
	if op := c.h.pd.Operators()[0]; !strings.HasPrefix(op.Step, "promote-learner") {
		t.Fatalf("step %q", op.Step)
	}
	c.stopped[2] = true
	c.stuck = false
	c.runKeepingQuorum(1, int(cfg.MaxStoreDownTime/time.Second)+1)
	if got := kinds(c.applied); !slices.Equal(got, []string{"add-learner"}) {
		t.Fatalf("orders %v", c.applied)
	}
	last := (*evs)[len(*evs)-1]
	if last.Event != OpCancelled || !strings.Contains(last.Reason, "target store 2 is down") {
		t.Fatalf("last event %+v", last)
	}
}

// Decommission moves a voter of a region with another voter silent: the
// swap keeps a reachable quorum (the new voter and the live old one, 2 of
// 3), so it goes on; the silent voter, once dead, is replaced.
func TestDecommissionWithADownVoterKeepsQuorum(t *testing.T) {
	cfg := only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica", "decommission")
	c := newCluster(t, cfg)
	c.run(1)
	c.stopped[3] = true
	c.run(2)
	if err := c.h.pd.DecommissionStore(1); err != nil {
		t.Fatal(err)
	}
	c.runKeepingQuorum(1, int(cfg.MaxStoreDownTime/time.Second))
	c.settle(60)
	c.mustKeepQuorum(1)
	c.healthy(3)
	if got := voterStores(c.regions[1].r); !slices.Equal(got, []uint64{2, 4, 5}) {
		t.Fatalf("voters on stores %v, orders %v", got, c.applied)
	}
	if st := c.h.pd.Stores()[0]; st.State != StoreTombstone {
		t.Fatalf("store 1 %+v", st)
	}
}

// A decommission waits while the region has no reachable quorum, and goes
// on once its voters are back.
func TestDecommissionWaitsForQuorum(t *testing.T) {
	c := newCluster(t, only(spreadLayout(1, 3, 1, 2, 3, 4, 5), "replica", "decommission"))
	c.run(1)
	c.stopped[2], c.stopped[3] = true, true
	c.run(2)
	if err := c.h.pd.DecommissionStore(1); err != nil {
		t.Fatal(err)
	}
	c.run(10)
	if n := started(c.h.pd); n != 0 {
		t.Fatalf("%d operators on a region without a reachable quorum: %+v", n, c.h.pd.Operators())
	}
	c.stopped[2], c.stopped[3] = false, false
	c.settle(60)
	c.healthy(3)
	if c.regions[1].r.PeerOnStore(1) != nil {
		t.Fatalf("region %s", peersOf(c.regions[1].r))
	}
}
