package raftstore_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// FuzzStoreReceive feeds an arbitrary envelope, from an arbitrary sender, to
// one store of a running two-region cluster. Whatever the bytes, no store
// may panic or fail its ready round, and the cluster must still commit a
// write afterwards. The seed corpus is the traffic of a short run (so the
// fuzzer mutates messages the stores really exchange) plus the crafted
// messages of testdata/fuzz/FuzzStoreReceive.
//
//	go test ./core/raftstore -run '^$' -fuzz FuzzStoreReceive -fuzztime 5m
func FuzzStoreReceive(f *testing.F) {
	for _, e := range sampleTraffic(f) {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(e.GetFrom()), byte(e.GetTo()))
	}
	f.Fuzz(func(t *testing.T, data []byte, sender, target byte) {
		env := &pb.Envelope{}
		if proto.Unmarshal(data, env) != nil {
			return
		}
		c := startTwoRegions(t, defaultConfig())
		c.waitLeader(left)
		c.waitLeader(right)
		to := c.ids[int(target)%len(c.ids)]
		env.From, env.To = uint64(sender), to
		c.net.Send(env)
		c.deliver()
		for i := 0; i < 5; i++ {
			c.step()
		}
		c.ok(left, put("after-fuzz", "1"))
		c.ok(right, put("z-after-fuzz", "1"))
	})
}

// sampleTraffic returns the envelopes exchanged while a two-region cluster
// bootstraps, elects, serves a few writes and reads, and splits.
func sampleTraffic(tb testing.TB) []*pb.Envelope {
	var out []*pb.Envelope
	c := startTwoRegions(tb.(*testing.F), defaultConfig())
	c.waitLeader(left)
	c.waitLeader(right)
	c.filter = func(e *pb.Envelope) bool {
		out = append(out, proto.Clone(e).(*pb.Envelope))
		return false
	}
	c.ok(left, put("a", "1"))
	c.ok(right, put("q", "2"))
	c.ok(left, get("a"))
	for i := 0; i < 10; i++ {
		c.step()
	}
	c.filter = nil
	// Keep it small: one of each kind of message per sender.
	seen := map[string]bool{}
	var kept []*pb.Envelope
	for _, e := range out {
		k := kindOf(e)
		if !seen[k] {
			seen[k] = true
			kept = append(kept, e)
		}
	}
	return kept
}

func kindOf(e *pb.Envelope) string {
	kind := string(e.ProtoReflect().WhichOneof(e.ProtoReflect().Descriptor().Oneofs().ByName("body")).Name())
	if m := e.GetRaft().GetMessage(); m != nil {
		kind += "/" + m.GetType().String()
	}
	return kind
}
