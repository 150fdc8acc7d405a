package pb

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// The hard state helpers write what protobuf writes and copy what it
// copies, set-but-zero fields and unknown fields included.
func TestHardStateCodecMatchesProtobuf(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hs := &raftpb.HardState{Term: optUint64(t, "term"), Vote: optUint64(t, "vote"), Commit: optUint64(t, "commit")}
		if rapid.Bool().Draw(t, "unknown") {
			hs.ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01}) // field 100, varint 1
		}
		want, err := proto.Marshal(hs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalHardState(hs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("marshalHardState = %x, protobuf %x", got, want)
		}
		if n := sizeHardState(hs); n != len(want) {
			t.Fatalf("sizeHardState = %d, protobuf %d", n, len(want))
		}
		c := CloneHardState(hs)
		if !proto.Equal(c, hs) {
			t.Fatalf("CloneHardState = %v, want %v", c, hs)
		}
		if c.Term != nil && c.Term == hs.Term {
			t.Fatal("CloneHardState shares the term")
		}
	})
}
