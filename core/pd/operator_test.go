package pd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

// quietConfig is testConfig with every scheduler off: only manual orders.
func quietConfig(l Layout) Config {
	cfg := testConfig(l)
	cfg.DisableReplicaChecker = true
	cfg.DisableBalanceRegion = true
	cfg.DisableBalanceLeader = true
	return cfg
}

// fourStores is one region ["", +inf) on stores 1, 2, 3 (peers 2, 3, 4),
// with a fourth store that holds nothing.
func fourStores() Layout {
	return Layout{Ranges: []RangeSpec{{}}, Replicas: 3, Stores: []uint64{1, 2, 3, 4}}
}

// events records the operator events PD emits.
func events(p *PD) *[]OperatorEvent {
	var evs []OperatorEvent
	p.SetHooks(Hooks{Operator: func(e OperatorEvent) { evs = append(evs, e) }})
	return &evs
}

// kinds renders the applied orders without their region and ids.
func kinds(applied []string) []string {
	var out []string
	for _, a := range applied {
		_, what, _ := strings.Cut(a, ": ")
		what, _, _ = strings.Cut(what, " ")
		out = append(out, what)
	}
	return out
}

func TestMoveGoesThroughEveryStep(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leader   uint64 // store of the leader at the start
		want     []string
		wantLead func(uint64) bool
	}{
		{"leader elsewhere", 2, []string{"add-learner", "promote-demote", "remove-peer"},
			func(s uint64) bool { return s == 2 }},
		{"leader on the source", 1, []string{"add-learner", "transfer-leader", "promote-demote", "remove-peer"},
			func(s uint64) bool { return s != 1 && s != 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, quietConfig(fourStores()))
			evs := events(c.h.pd)
			fr := c.regions[1]
			fr.leader = fr.r.PeerOnStore(tc.leader).GetId()
			c.step()
			resp := c.admin(&pb.MoveRegionRequest{RequestId: 7, RegionId: 1, FromStore: 1, ToStore: 4})
			if resp.GetError() != "" || resp.GetOperatorId() == 0 || resp.GetRequestId() != 7 {
				t.Fatalf("move refused: %v", resp)
			}
			ops := c.h.pd.Operators()
			if len(ops) != 1 || ops[0].Kind != OpMoveReplica || ops[0].Region != 1 || ops[0].From != 1 ||
				ops[0].To != 4 || ops[0].StepIndex != 0 || !strings.HasPrefix(ops[0].Step, "add-learner") {
				t.Fatalf("operators %+v", ops)
			}
			c.settle(30)
			if got := kinds(c.applied); !slices.Equal(got, tc.want) {
				t.Fatalf("orders applied %v, want %v", c.applied, tc.want)
			}
			c.healthy(3)
			r := fr.r
			if r.PeerOnStore(1) != nil || r.PeerOnStore(4).GetRole() != pb.PeerRole_VOTER {
				t.Fatalf("region after the move: %s", peersOf(r))
			}
			if want := uint64(1 + 4); r.GetEpoch().GetConfVer() != want { // add, enter joint, leave joint, remove
				t.Fatalf("conf_ver %d, want %d", r.GetEpoch().GetConfVer(), want)
			}
			if lead := r.PeerByID(fr.leader).GetStoreId(); !tc.wantLead(lead) {
				t.Fatalf("leader on store %d", lead)
			}
			// The operator passed each step in order and finished.
			var steps []string
			for _, e := range *evs {
				if e.Event == OpStepDone {
					kind, _, _ := strings.Cut(e.Reason, " ")
					steps = append(steps, kind)
				}
			}
			wantSteps := []string{"add-learner", "wait-catch-up", "transfer-leader", "promote-demote", "remove-peer"}
			if !slices.Equal(steps, wantSteps) {
				t.Fatalf("steps %v, want %v", steps, wantSteps)
			}
			last := (*evs)[len(*evs)-1]
			if last.Event != OpFinished || last.Op.ID != resp.GetOperatorId() {
				t.Fatalf("last event %+v", last)
			}
			if s := c.h.pd.Stats().Operators[OpMoveReplica]; s != (OperatorCounts{Started: 1, Finished: 1}) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// A region with a single voter cannot transfer its leadership before the
// new peer is a voter: promote, transfer, remove.
func TestMoveSingleReplica(t *testing.T) {
	c := newCluster(t, quietConfig(Layout{Ranges: []RangeSpec{{}}, Replicas: 1, Stores: []uint64{1, 2}}))
	c.step()
	if resp := c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 2}); resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	c.settle(30)
	want := []string{"add-learner", "promote-learner", "transfer-leader", "remove-peer"}
	if got := kinds(c.applied); !slices.Equal(got, want) {
		t.Fatalf("orders %v, want %v", c.applied, want)
	}
	c.healthy(1)
}

// PD waits while the learner is behind, and sends nothing while the
// region is joint.
func TestMoveWaitsForCatchUp(t *testing.T) {
	c := newCluster(t, quietConfig(fourStores()))
	c.catchUp = 5
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	c.step() // learner added
	if got := kinds(c.applied); !slices.Equal(got, []string{"add-learner"}) {
		t.Fatalf("orders %v", c.applied)
	}
	orders := c.h.pd.Stats().Orders
	c.run(3)
	if len(c.applied) != 1 || c.h.pd.Stats().Orders != orders {
		t.Fatalf("PD ordered while the learner was pending: %v", c.applied)
	}
	if op := c.h.pd.Operators()[0]; !strings.HasPrefix(op.Step, "wait-catch-up") {
		t.Fatalf("step %q", op.Step)
	}
	c.settle(30)
	c.healthy(3)
}

// Re-sending an order does not raise the region's conf_ver bound beyond
// what the change can produce.
func TestResentOrderDoesNotInflateBound(t *testing.T) {
	c := newCluster(t, quietConfig(fourStores()))
	c.stuck = true
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	c.run(10)
	if n := c.h.pd.Stats().Orders; n != 10 {
		t.Fatalf("%d orders sent in 10 rounds, want one per heartbeat", n)
	}
	if b := c.h.pd.bounds[1]; b.confVer != 2 {
		t.Fatalf("conf_ver bound %d after re-sending one add, want 2", b.confVer)
	}
}

func TestOperatorTimesOut(t *testing.T) {
	cfg := quietConfig(fourStores())
	c := newCluster(t, cfg)
	evs := events(c.h.pd)
	c.stuck = true
	c.step()
	resp := c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	c.run(int(cfg.OperatorTimeout/time.Second) - 1)
	if len(c.h.pd.Operators()) != 1 {
		t.Fatalf("operator ended early: %+v", *evs)
	}
	c.step()
	if len(c.h.pd.Operators()) != 0 {
		t.Fatalf("operator still running past its deadline")
	}
	last := (*evs)[len(*evs)-1]
	if last.Event != OpTimedOut || last.Op.ID != resp.GetOperatorId() {
		t.Fatalf("last event %+v", last)
	}
	if s := c.h.pd.Stats().Operators[OpMoveReplica]; s != (OperatorCounts{Started: 1, TimedOut: 1}) {
		t.Fatalf("stats %+v", s)
	}
	// The region is free for a new operator.
	c.stuck = false
	if resp := c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4}); resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	c.settle(30)
	c.healthy(3)
}

func TestOperatorCancelledWhenTargetDown(t *testing.T) {
	cfg := quietConfig(fourStores())
	c := newCluster(t, cfg)
	evs := events(c.h.pd)
	c.catchUp = 1000 // the learner never catches up: store 4 is about to die
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	c.step()
	c.stopped[4] = true
	c.run(int(cfg.MaxStoreDownTime/time.Second) + 1)
	if len(c.h.pd.Operators()) != 0 {
		t.Fatalf("operator still running: %+v", c.h.pd.Operators())
	}
	last := (*evs)[len(*evs)-1]
	if last.Event != OpCancelled || !strings.Contains(last.Reason, "target store 4 is down") {
		t.Fatalf("last event %+v", last)
	}
	if s := c.h.pd.Stats().Operators[OpMoveReplica]; s.Cancelled != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// An operator whose region changed under it in a way it cannot build on
// (its learner's store now holds another peer) is cancelled.
func TestOperatorCancelledOnForeignChange(t *testing.T) {
	c := newCluster(t, quietConfig(fourStores()))
	evs := events(c.h.pd)
	c.stuck = true
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	// A stale order of an earlier PD life adds another learner on store 4.
	fr := c.regions[1]
	id := c.h.pd.alloc()
	c.h.pd.allowConfChange(1, fr.r.GetEpoch(), 1)
	fr.r.Peers = append(fr.r.Peers, &pb.Peer{Id: id, StoreId: 4, Role: pb.PeerRole_LEARNER})
	fr.r.Epoch.ConfVer++
	c.step()
	if len(c.h.pd.Operators()) != 0 {
		t.Fatalf("operator still running")
	}
	if last := (*evs)[len(*evs)-1]; last.Event != OpCancelled || !strings.Contains(last.Reason, "another peer") {
		t.Fatalf("last event %+v", last)
	}
}

// A split of the region under a move does not stop it: the operator goes
// on with the left half (same id, same peers).
func TestMoveSurvivesSplit(t *testing.T) {
	c := newCluster(t, quietConfig(fourStores()))
	c.step()
	c.admin(&pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 4})
	c.step()
	fr := c.regions[1]
	ask := c.h.askSplit(t, fr.r)
	l, r := split(fr.r, "m", ask.GetNewRegionId(), ask.GetNewPeerIds())
	fr.r = l
	c.regions[r.GetId()] = &fakeRegion{r: r, leader: r.PeerOnStore(fr.r.PeerByID(fr.leader).GetStoreId()).GetId(),
		size: 100, pending: map[uint64]int{}}
	c.h.send(1, &pb.ReportSplit{Left: l, Right: r})
	c.settle(30)
	if got := c.h.pd.Stats().Operators[OpMoveReplica]; got.Finished != 1 {
		t.Fatalf("stats %+v", got)
	}
	if fr.r.PeerOnStore(1) != nil || fr.r.PeerOnStore(4).GetRole() != pb.PeerRole_VOTER {
		t.Fatalf("left half %s", peersOf(fr.r))
	}
	// The right half was born with a learner on store 4 that no operator
	// owns; with the replica checker off it stays.
	if right := c.regions[r.GetId()].r; right.PeerOnStore(4).GetRole() != pb.PeerRole_LEARNER {
		t.Fatalf("right half %s", peersOf(right))
	}
}

func TestTransferLeaderOrder(t *testing.T) {
	c := newCluster(t, quietConfig(fourStores()))
	c.step()
	resp := c.admin(&pb.TransferLeaderRequest{RequestId: 3, RegionId: 1, ToStore: 3})
	if resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	c.settle(10)
	if lead := c.regions[1].r.PeerByID(c.regions[1].leader).GetStoreId(); lead != 3 {
		t.Fatalf("leader on store %d", lead)
	}
	if s := c.h.pd.Stats().Operators[OpTransferLeader]; s != (OperatorCounts{Started: 1, Finished: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

// Orders go only to the heartbeat's sender, and only when the heartbeat
// names as leader a peer of the region on that store; a stale heartbeat
// gets none.
func TestOrdersGoToTheReportingLeader(t *testing.T) {
	h := newHarnessCfg(t, quietConfig(fourStores()))
	r := h.pd.Regions()[0]
	if _, err := h.pd.MoveRegion(1, 1, 4); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		from   uint64
		leader *pb.Peer
		region *pb.Region
		orders int
	}{
		{"sender is not the leader's store", 3, r.GetPeers()[0], r, 0},
		{"leader unknown", 1, nil, r, 0},
		{"leader not a peer", 4, &pb.Peer{Id: 3, StoreId: 4}, r, 0},
		{"the leader", 1, r.GetPeers()[0], r, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.send(tc.from, &pb.RegionHeartbeat{Region: tc.region, Leader: tc.leader})
			if len(h.net.sent) != tc.orders {
				t.Fatalf("%d replies, want %d", len(h.net.sent), tc.orders)
			}
			if tc.orders == 1 {
				m := h.net.take(t)
				o := m.GetRegionOrder()
				if m.GetTo() != tc.from || m.GetFrom() != pdID || o.GetRegionId() != 1 ||
					!o.GetRegionEpoch().Equal(r.GetEpoch()) || o.GetChangePeers().GetChanges()[0].GetType() != pb.ChangeType_ADD_LEARNER {
					t.Fatalf("order %v", m)
				}
			}
			h.net.sent = nil
		})
	}
}

// A learner the replica checker chose to remove (the leftover of a move, as
// PD last saw the region) is a voter by the next heartbeat: the move
// finished while PD did not hear, raft promoted it and demoted the voter it
// replaced. The removal is cancelled; removing the new voter would leave
// two voters and a learner (swarm seed 6973: a store lost later took the
// region's quorum with it). The checker then removes the real leftover.
func TestRemovalOfALearnerPromotedMeanwhileIsCancelled(t *testing.T) {
	h, evs, r, stale, ops := removalOnAStaleView(t, pb.PeerRole_LEARNER)
	if len(ops) != 1 || ops[0].Kind != OpRemoveReplica || ops[0].From != 4 {
		t.Fatalf("operators %+v, want the learner on store 4 removed", ops)
	}
	// The move finished meanwhile: the learner is a voter and the voter on
	// store 3 a learner, two conf changes later.
	h.pd.allowConfChange(r.GetId(), stale.GetEpoch(), 2)
	now := stale.CloneVT()
	now.Epoch.ConfVer += 2
	for _, p := range now.Peers {
		switch p.GetStoreId() {
		case 4:
			p.Role = pb.PeerRole_VOTER
		case 3:
			p.Role = pb.PeerRole_LEARNER
		}
	}
	h.heartbeat(now)
	removalCancelled(t, h, *evs, 4, "is a VOTER now")
	h.net.sent = nil
	h.clock.t = h.clock.t.Add(time.Second)
	h.pd.Tick()
	if ops := h.pd.Operators(); len(ops) != 1 || ops[0].Kind != OpRemoveReplica || ops[0].From != 3 {
		t.Fatalf("operators %+v, want the learner on store 3 removed", ops)
	}
}

// A voter the checker took for one too many (PD saw four voters) is not
// removed once the region has three: another change took one away
// meanwhile.
func TestRemovalOfAnExtraVoterIsCancelledWhenNoLongerExtra(t *testing.T) {
	h, evs, r, stale, ops := removalOnAStaleView(t, pb.PeerRole_VOTER)
	if len(ops) != 1 || ops[0].Kind != OpRemoveReplica {
		t.Fatalf("operators %+v, want one voter removed", ops)
	}
	chosen := ops[0].From
	// Another voter (not the leader, not the chosen one) is gone.
	h.pd.allowConfChange(r.GetId(), stale.GetEpoch(), 1)
	now := stale.CloneVT()
	now.Epoch.ConfVer++
	now.Peers = slices.DeleteFunc(now.Peers, func(p *pb.Peer) bool {
		return p.GetStoreId() != chosen && p.GetId() != now.Peers[0].GetId() && p.GetStoreId() == otherStore(chosen)
	})
	if voters(now) != 3 {
		t.Fatalf("test setup: %d voters in %s", voters(now), now.Describe())
	}
	h.heartbeat(now)
	removalCancelled(t, h, *evs, 0, "no more than 3")
}

// otherStore is a store of 2-4 that is not s (the leader is on store 1).
func otherStore(s uint64) uint64 {
	for _, o := range []uint64{2, 3, 4} {
		if o != s {
			return o
		}
	}
	return 0
}

// removalCancelled fails unless PD ordered no removal (of a peer on store,
// or of any peer when store is 0) in what it sent since the last reset,
// and cancelled an operator for a reason containing why.
func removalCancelled(t *testing.T, h *harness, evs []OperatorEvent, store uint64, why string) {
	t.Helper()
	for _, m := range h.net.sent {
		for _, c := range m.GetRegionOrder().GetChangePeers().GetChanges() {
			if c.GetType() == pb.ChangeType_REMOVE_PEER && (store == 0 || c.GetPeer().GetStoreId() == store) {
				t.Fatalf("PD ordered a removal: %v", m)
			}
		}
	}
	for _, e := range evs {
		if e.Event == OpCancelled && strings.Contains(e.Reason, why) {
			return
		}
	}
	t.Fatalf("no removal cancelled because %q: %+v", why, evs)
}

// removalOnAStaleView has PD see the region with a fourth peer, of role, on
// store 4, and its replica checker start what that view calls for: it
// returns the harness, PD's operator events, the region as PD began with it,
// the view with the fourth peer, and the operators running.
func removalOnAStaleView(t *testing.T, role pb.PeerRole) (*harness, *[]OperatorEvent, *pb.Region, *pb.Region, []OperatorInfo) {
	h := newHarnessCfg(t, only(fourStores(), "replica"))
	evs := events(h.pd)
	r := h.pd.Regions()[0]
	h.pd.allowConfChange(r.GetId(), r.GetEpoch(), 1)
	stale := r.CloneVT()
	stale.Peers = append(stale.Peers, &pb.Peer{Id: h.pd.alloc(), StoreId: 4, Role: role})
	stale.Epoch.ConfVer++
	h.heartbeat(stale)
	h.net.sent = nil
	h.clock.t = h.clock.t.Add(time.Second)
	h.pd.Tick()
	return h, evs, r, stale, h.pd.Operators()
}
