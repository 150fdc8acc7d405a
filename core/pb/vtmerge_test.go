package pb

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func twice(num protowire.Number, a, b proto.Message) []byte {
	var out []byte
	for _, m := range []proto.Message{a, b} {
		bs, _ := proto.Marshal(m)
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, bs)
	}
	return out
}

// TestVTMergesRepeatedRaftFields: a message field that comes twice is
// merged, as protobuf does, for raft's messages inside ours too.
func TestVTMergesRepeatedRaftFields(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		new  func() vtMessage
	}{
		{"raft message", twice(7,
			&raftpb.Message{Term: proto.Uint64(5), Entries: []*raftpb.Entry{{Index: proto.Uint64(1)}}},
			&raftpb.Message{To: proto.Uint64(2), Entries: []*raftpb.Entry{{Index: proto.Uint64(2)}}}),
			func() vtMessage { return &RaftMessage{} }},
		{"hard state", twice(6, &raftpb.HardState{Term: proto.Uint64(3)}, &raftpb.HardState{Commit: proto.Uint64(4)}),
			func() vtMessage { return &RegionCheckpoint{} }},
		{"conf state", twice(7, &raftpb.ConfState{Voters: []uint64{1}}, &raftpb.ConfState{Learners: []uint64{2}}),
			func() vtMessage { return &RegionCheckpoint{} }},
	}
	for _, c := range cases {
		want, got := c.new(), c.new()
		if err := proto.Unmarshal(c.b, want); err != nil {
			t.Fatal(err)
		}
		if err := got.UnmarshalVT(c.b); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: UnmarshalVT %v, protobuf %v", c.name, got, want)
		}
	}
}
