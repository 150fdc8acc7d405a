package client

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// FuzzClientReceive gives a client with a get, a put and a scan in flight a
// few arbitrary replies, after PD told it the regions. Whatever the bytes:
// no panic, and every op completes exactly once, with a well-formed outcome,
// by its deadline.
//
//	go test ./core/client -run '^$' -fuzz FuzzClientReceive -fuzztime 5m
func FuzzClientReceive(f *testing.F) {
	rs := threeRegions()
	for _, body := range []pb.Body{
		&pb.GetRegionResponse{RequestId: 1, Region: rs[0], Leader: rs[0].GetPeers()[0]},
		&pb.KvResponse{RequestId: 4, Result: &pb.KvResponse_Get{Get: &pb.GetResponse{Found: true, Value: []byte("v"), Version: 3}}},
		&pb.KvResponse{RequestId: 5, Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: 4}}},
		&pb.KvResponse{RequestId: 6, Result: &pb.KvResponse_Scan{Scan: &pb.ScanResponse{Pairs: []*pb.KvPair{{Key: []byte("zz"), Value: []byte("x")}}}}},
		&pb.KvResponse{RequestId: 5, RegionError: &pb.RegionError{EpochNotMatch: &pb.EpochNotMatch{CurrentRegions: []*pb.Region{rs[1]}}}},
		&pb.KvResponse{RequestId: 4, RegionError: &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 1, Leader: &pb.Peer{Id: 99, StoreId: 77}}}},
	} {
		b, err := proto.Marshal(pb.NewEnvelope(1, clientID, body))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b, byte(1))
	}
	f.Fuzz(func(t *testing.T, a, b []byte, from byte) {
		h := newHarness(t, testConfig(), 1)
		for _, r := range threeRegions() {
			h.c.cache.insert(r, r.GetPeers()[0], nil)
		}
		ids := map[uint64]bool{
			h.c.Submit(Op{Kind: Get, Key: []byte("a")}):                       true,
			h.c.Submit(Op{Kind: Put, Key: []byte("h"), Value: []byte("v")}):   true,
			h.c.Submit(Op{Kind: Scan, Start: []byte("b"), End: []byte("zz")}): true,
		}
		for _, data := range [][]byte{a, b} {
			env := &pb.Envelope{}
			if proto.Unmarshal(data, env) != nil {
				continue
			}
			env.From, env.To = uint64(from), clientID
			h.c.Receive(env)
		}
		h.run(h.c.Config().OpTimeout+time.Second, false)
		for _, c := range h.c.Completed() {
			if !ids[c.ID] {
				t.Fatalf("completion of op %d, which is not in flight (twice?): %+v", c.ID, c)
			}
			delete(ids, c.ID)
			if c.Outcome != OK && c.Outcome != Failed && c.Outcome != Ambiguous {
				t.Fatalf("op %d: outcome %v", c.ID, c.Outcome)
			}
			if c.Outcome != OK && c.Err == nil {
				t.Fatalf("op %d: %v without a reason", c.ID, c.Outcome)
			}
		}
		if len(ids) != 0 || h.c.Pending() != 0 {
			t.Fatalf("ops %v never completed (%d pending)", ids, h.c.Pending())
		}
	})
}
