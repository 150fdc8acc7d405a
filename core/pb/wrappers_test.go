package pb

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// The messages that carry etcd's types (a raft message, a region's update,
// a WAL batch) encode as protobuf does, whole, with parts the hand codec
// writes and parts it leaves to protobuf (unknown fields, nil entries) mixed:
// the size matches the bytes, and the bytes decode to what protobuf's do.
func TestMessagesCarryingRaftTypesEncodeAsProtobuf(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := drawMessage(t)
		for i, e := range m.Entries {
			if e != nil && rapid.Bool().Draw(t, "unk") {
				m.Entries[i].ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
			}
		}
		if len(m.Entries) > 1 && rapid.Bool().Draw(t, "nilentry") {
			m.Entries[rapid.IntRange(0, len(m.Entries)-1).Draw(t, "ni")] = nil
		}
		if rapid.Bool().Draw(t, "msgunk") {
			m.ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
		}
		hs := &raftpb.HardState{Term: optUint64(t, "hs-term"), Vote: optUint64(t, "hs-vote"), Commit: optUint64(t, "hs-commit")}
		if rapid.Bool().Draw(t, "hsunk") {
			hs.ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
		}
		rm := &RaftMessage{RegionId: 7, Message: m, StartKey: []byte("a")}
		ru := &RegionUpdate{RegionId: 3, Entries: m.Entries, HardState: hs, AppliedIndex: 9}
		wb := &WalBatch{Seq: 5, Updates: []*RegionUpdate{ru, {RegionId: 4, HardState: hs}}}
		for _, x := range []interface {
			proto.Message
			MarshalVT() ([]byte, error)
			SizeVT() int
		}{rm, ru, wb} {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(x)
			if err != nil {
				t.Fatalf("protobuf: %v", err)
			}
			got, err := x.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			if x.SizeVT() != len(got) {
				t.Fatalf("%T size %d, encoded %d", x, x.SizeVT(), len(got))
			}
			back := x.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(got, back); err != nil {
				t.Fatalf("%T: %v", x, err)
			}
			wantBack := x.ProtoReflect().New().Interface()
			_ = proto.Unmarshal(want, wantBack)
			if !proto.Equal(back, wantBack) {
				t.Fatalf("%T differs:\n got %x\nwant %x", x, got, want)
			}
		}
	})
}
