package pd

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// Manual orders that cannot start are refused with the reason, and change
// nothing: no operator, no id allocated, no bound raised.
func TestManualOrderErrors(t *testing.T) {
	l := LayoutFromSplitKeys([][]byte{[]byte("m")}, 3, []uint64{1, 2, 3, 4, 5, 6})
	c := newCluster(t, quietConfig(l))
	c.stopped[6] = true
	c.run(int(testConfig(l).StoreDisconnectTime/time.Second) + 1)
	// Region 1 is on stores 1, 2, 3; region 5 on 2, 3, 4. Put an operator
	// on region 5, and a learner on store 5 of region 1.
	if resp := c.admin(&pb.TransferLeaderRequest{RegionId: 5, ToStore: 3}); resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	c.setPeers(1, append(c.regions[1].r.GetPeers(), &pb.Peer{Id: c.h.pd.alloc(), StoreId: 5, Role: pb.PeerRole_LEARNER})...)
	c.stuck = true
	c.step()
	for _, tc := range []struct {
		name string
		body pb.Body
		want string
	}{
		{"move: unknown region", &pb.MoveRegionRequest{RegionId: 99, FromStore: 1, ToStore: 4}, "region 99 is unknown"},
		{"move: busy region", &pb.MoveRegionRequest{RegionId: 5, FromStore: 2, ToStore: 1}, "region 5 is busy with operator 1 (transfer-leader of region 5)"},
		{"move: same store", &pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 1}, "from and to are both store 1"},
		{"move: unknown from", &pb.MoveRegionRequest{RegionId: 1, FromStore: 9, ToStore: 4}, "store 9 is unknown"},
		{"move: from holds nothing", &pb.MoveRegionRequest{RegionId: 1, FromStore: 4, ToStore: 6}, "store 4 holds no peer of it"},
		{"move: from holds a learner", &pb.MoveRegionRequest{RegionId: 1, FromStore: 5, ToStore: 4}, "is a LEARNER, not a voter"},
		{"move: unknown to", &pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 9}, "store 9 is unknown"},
		{"move: to already holds one", &pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 2}, "store 2 already holds its peer"},
		{"move: to is disconnected", &pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 6}, "store 6 is disconnected"},
		{"move: to holds a learner", &pb.MoveRegionRequest{RegionId: 1, FromStore: 1, ToStore: 5}, "store 5 already holds its peer"},
		{"transfer: unknown region", &pb.TransferLeaderRequest{RegionId: 99, ToStore: 2}, "region 99 is unknown"},
		{"transfer: busy", &pb.TransferLeaderRequest{RegionId: 5, ToStore: 4}, "busy"},
		{"transfer: no peer", &pb.TransferLeaderRequest{RegionId: 1, ToStore: 4}, "store 4 holds no peer of it"},
		{"transfer: learner", &pb.TransferLeaderRequest{RegionId: 1, ToStore: 5}, "is a LEARNER, not a voter"},
		{"transfer: already leads", &pb.TransferLeaderRequest{RegionId: 1, ToStore: 1}, "store 1 already leads it"},
		{"transfer: unknown store", &pb.TransferLeaderRequest{RegionId: 1, ToStore: 9}, "store 9 is unknown"},
		{"transfer: store disconnected", &pb.TransferLeaderRequest{RegionId: 1, ToStore: 6}, "store 6 is disconnected"},
		{"decommission: unknown", &pb.DecommissionStoreRequest{StoreId: 9}, "store 9 is unknown"},
		{"decommission: id 0", &pb.DecommissionStoreRequest{}, "store 0 is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, bounds, ops := c.h.pd.nextID, c.h.pd.bounds[1], len(c.h.pd.Operators())
			resp := c.admin(tc.body)
			if !strings.Contains(resp.GetError(), tc.want) || resp.GetOperatorId() != 0 {
				t.Fatalf("got %q (op %d), want %q", resp.GetError(), resp.GetOperatorId(), tc.want)
			}
			if c.h.pd.nextID != next || c.h.pd.bounds[1] != bounds || len(c.h.pd.Operators()) != ops {
				t.Fatalf("a refused order changed PD")
			}
		})
	}
	if s := c.h.pd.Stats(); s.AdminErrors != 19 || s.AdminRequests != 20 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRegionByID(t *testing.T) {
	h := newHarness(t, layout("m"))
	r := h.pd.Regions()[1]
	h.heartbeat(r)
	h.send(1, &pb.RegionByIDRequest{RequestId: 4, RegionId: r.GetId()})
	resp := h.net.take(t).GetRegionByIdResponse()
	if resp.GetRequestId() != 4 || !proto.Equal(resp.GetRegion(), r) || !proto.Equal(resp.GetLeader(), r.GetPeers()[0]) {
		t.Fatalf("region by id %v", resp)
	}
	// A pending state (left half of a split whose right half is unknown)
	// is newer than the published one: it is the answer.
	r0 := h.pd.Regions()[0]
	ask := h.askSplit(t, r0)
	l, _ := split(r0, "f", ask.GetNewRegionId(), ask.GetNewPeerIds())
	h.heartbeat(l)
	h.send(1, &pb.RegionByIDRequest{RequestId: 5, RegionId: r0.GetId()})
	if got := h.net.take(t).GetRegionByIdResponse(); !proto.Equal(got.GetRegion(), l) {
		t.Fatalf("want the pending left half, got %v", got.GetRegion().Describe())
	}
	h.send(1, &pb.RegionByIDRequest{RequestId: 6, RegionId: 999})
	if got := h.net.take(t).GetRegionByIdResponse(); got.GetRequestId() != 6 || got.GetRegion() != nil || got.GetLeader() != nil {
		t.Fatalf("unknown region: %v", got)
	}
	if h.pd.Stats().RegionByIDs != 3 {
		t.Fatalf("stats %+v", h.pd.Stats())
	}
}

func TestStoreJoin(t *testing.T) {
	h := newHarness(t, layout("m"))
	for _, tc := range []struct {
		name  string
		hello *pb.StoreHello
		want  string // error, "" = accepted
		nregs int
	}{
		{"unknown without join", &pb.StoreHello{StoreId: 7}, "store 7 is not in the cluster layout", 0},
		{"join id 0", &pb.StoreHello{StoreId: 0, Join: true}, "cannot join", 0},
		{"join as PD", &pb.StoreHello{StoreId: pdID, Join: true}, "cannot join", 0},
		{"join", &pb.StoreHello{StoreId: 7, Join: true, Address: "s7"}, "", 0},
		{"joined store says hello again", &pb.StoreHello{StoreId: 7, Address: "s7"}, "", 0},
		{"layout store with join set", &pb.StoreHello{StoreId: 1, Join: true}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.send(tc.hello.GetStoreId(), tc.hello)
			b := h.net.take(t).GetBootstrap()
			if (tc.want == "") != (b.GetError() == "") || !strings.Contains(b.GetError(), tc.want) {
				t.Fatalf("error %q, want %q", b.GetError(), tc.want)
			}
			if len(b.GetRegions()) != tc.nregs || b.GetStoreId() != tc.hello.GetStoreId() {
				t.Fatalf("bootstrap %v", b)
			}
			if tc.want == "" && b.GetHeartbeatIntervalMs() != uint64(DefaultHeartbeatInterval/time.Millisecond) {
				t.Fatalf("interval %d", b.GetHeartbeatIntervalMs())
			}
		})
	}
	st := h.pd.Stores()
	if len(st) != 4 || st[3].ID != 7 || !st[3].Joined || st[3].State != StoreUp || st[3].Address != "s7" {
		t.Fatalf("stores %+v", st)
	}
	if s := h.pd.Stats(); s.Joins != 1 || s.UnknownStores != 3 || s.Hellos != 3 {
		t.Fatalf("stats %+v", s)
	}
	// A joined store's heartbeats count; a report naming a store PD does
	// not know is refused.
	h.send(7, &pb.StoreHeartbeat{StoreId: 7, RegionCount: 0})
	r := h.pd.Regions()[0]
	r.Peers[0].StoreId = 8
	h.heartbeat(r)
	if s := h.pd.Stats(); s.StoreHeartbeats != 1 || s.RejectedHeartbeats != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStoreStates(t *testing.T) {
	cfg := testConfig(layout("m"))
	cfg.DisableReplicaChecker, cfg.DisableBalanceRegion, cfg.DisableBalanceLeader = true, true, true
	h := newHarnessCfg(t, cfg)
	state := func(id uint64) StoreState { return h.pd.Stores()[id-1].State }
	for _, s := range []uint64{1, 2, 3} {
		h.send(s, &pb.StoreHello{StoreId: s})
	}
	h.net.sent = nil
	if state(1) != StoreUp {
		t.Fatalf("state %v", state(1))
	}
	for i := 0; i < 25; i++ {
		h.clock.t = h.clock.t.Add(time.Second)
		h.send(1, &pb.StoreHeartbeat{StoreId: 1})
		h.send(2, &pb.StoreHeartbeat{StoreId: 2})
		switch {
		case i == 1 && state(3) != StoreUp,
			i == 2 && state(3) != StoreDisconnected, // 3 s silent
			i == 18 && state(3) != StoreDisconnected,
			i == 19 && state(3) != StoreDown: // 20 s silent
			t.Fatalf("after %d s: store 3 %v", i+1, state(3))
		}
	}
	if state(1) != StoreUp || state(2) != StoreUp {
		t.Fatalf("states %v %v", state(1), state(2))
	}
	// Heard from again: up.
	h.send(3, &pb.StoreHeartbeat{StoreId: 3})
	if state(3) != StoreUp {
		t.Fatalf("store 3 %v after a heartbeat", state(3))
	}
	// Counts come from PD's view.
	r := h.pd.Regions()[0]
	h.send(r.GetPeers()[1].GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: r.GetPeers()[1], ApproximateSize: 500})
	st := h.pd.Stores()[1]
	if st.Regions != 2 || st.Leaders != 1 || st.RegionBytes != 500 {
		t.Fatalf("store 2 %+v", st)
	}
}
