package pd

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// FuzzPDReceive feeds PD a few arbitrary envelopes after a realistic prefix
// (stores registered, heartbeats, a split asked for and reported), then
// ticks it (its schedulers run) and heartbeats both halves of the split
// (any operator gets to order). Whatever the bytes: no panic, the routing
// view still tiles the keyspace, no epoch in it goes down, and the
// allocator still hands out fresh ids.
//
//	go test ./core/pd -run '^$' -fuzz FuzzPDReceive -fuzztime 5m
func FuzzPDReceive(f *testing.F) {
	h := newHarness(f, layout("m"))
	r0 := h.pd.Regions()[0]
	ask := h.askSplit(f, r0)
	l, r := split(r0, "f", ask.GetNewRegionId(), ask.GetNewPeerIds())
	for _, body := range []pb.Body{
		&pb.StoreHello{StoreId: 1},
		&pb.StoreHeartbeat{StoreId: 2, RegionCount: 2},
		&pb.RegionHeartbeat{Region: r0, Leader: r0.GetPeers()[0], ApproximateSize: 10},
		&pb.RegionHeartbeat{Region: l, Leader: l.GetPeers()[0]},
		&pb.ReportSplit{Left: l, Right: r},
		&pb.GetRegionRequest{RequestId: 1, Key: []byte("g")},
		&pb.ListRegionsRequest{RequestId: 2},
		&pb.AskSplitRequest{RequestId: 3, Region: r0},
		&pb.StoreHello{StoreId: 4, Join: true},
		&pb.RegionByIDRequest{RequestId: 4, RegionId: r0.GetId()},
		&pb.MoveRegionRequest{RequestId: 5, RegionId: r0.GetId(), FromStore: 1, ToStore: 4},
		&pb.TransferLeaderRequest{RequestId: 6, RegionId: r0.GetId(), ToStore: 2},
		&pb.DecommissionStoreRequest{RequestId: 7, StoreId: 3},
		&pb.RegionHeartbeat{Region: l, Leader: l.GetPeers()[0], PendingPeers: l.GetPeers()[1:2],
			DownPeers: l.GetPeers()[2:]},
	} {
		b, err := proto.Marshal(pb.NewEnvelope(1, pdID, body))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil))
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		h := newHarness(t, layout("m"))
		r0 := h.pd.Regions()[0]
		ask := h.askSplit(t, r0)
		l, r := split(r0, "f", ask.GetNewRegionId(), ask.GetNewPeerIds())
		h.heartbeat(l)
		before := map[uint64]*pb.Epoch{}
		for _, reg := range h.pd.Regions() {
			before[reg.GetId()] = reg.GetEpoch()
		}
		for _, data := range [][]byte{first, second} {
			env := &pb.Envelope{}
			if proto.Unmarshal(data, env) != nil {
				continue
			}
			env.To = pdID
			h.pd.Receive(env)
		}
		h.pd.Tick()
		h.heartbeat(r)
		h.heartbeat(l)
		mustTile(t, h.pd)
		for _, reg := range h.pd.Regions() {
			if e := before[reg.GetId()]; e != nil && reg.GetEpoch().Older(e) {
				t.Fatalf("region %d went back from %v to %v", reg.GetId(), e.Describe(), reg.GetEpoch().Describe())
			}
		}
		h.net.sent = nil
		id, _ := h.pd.allocSplit(l)
		if id <= ask.GetNewPeerIds()[len(ask.GetNewPeerIds())-1] {
			t.Fatalf("allocator handed out %d, not above the ids of the split", id)
		}
	})
}
