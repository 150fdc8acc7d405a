package pb

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// optUint64 draws an unset field or a set one (zero included: a set zero
// is written, an unset field is not).
func optUint64(t *rapid.T, name string) *uint64 {
	if rapid.Bool().Draw(t, name+"-set") {
		return proto.Uint64(rapid.OneOf(rapid.Uint64Range(0, 3), rapid.Uint64()).Draw(t, name))
	}
	return nil
}

func optBytes(t *rapid.T, name string) []byte {
	switch rapid.IntRange(0, 2).Draw(t, name+"-kind") {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		return rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, name)
	}
}

func drawEntry(t *rapid.T, name string) *raftpb.Entry {
	e := &raftpb.Entry{Term: optUint64(t, name+"-term"), Index: optUint64(t, name+"-index"), Data: optBytes(t, name+"-data")}
	if rapid.Bool().Draw(t, name+"-type-set") {
		e.Type = raftpb.EntryType(rapid.IntRange(0, 2).Draw(t, name+"-type")).Enum()
	}
	return e
}

func drawMessage(t *rapid.T) *raftpb.Message {
	m := &raftpb.Message{
		To: optUint64(t, "to"), From: optUint64(t, "from"), Term: optUint64(t, "term"),
		LogTerm: optUint64(t, "logterm"), Index: optUint64(t, "index"), Commit: optUint64(t, "commit"),
		RejectHint: optUint64(t, "hint"), Vote: optUint64(t, "vote"), Context: optBytes(t, "context"),
	}
	if rapid.Bool().Draw(t, "type-set") {
		m.Type = raftpb.MessageType(rapid.IntRange(0, 22).Draw(t, "type")).Enum()
	}
	if rapid.Bool().Draw(t, "reject-set") {
		m.Reject = proto.Bool(rapid.Bool().Draw(t, "reject"))
	}
	for i := range rapid.IntRange(0, 4).Draw(t, "entries") {
		m.Entries = append(m.Entries, drawEntry(t, "e"+string(rune('0'+i))))
	}
	switch rapid.IntRange(0, 5).Draw(t, "extra") {
	case 0: // a snapshot: protobuf encodes it
		m.Snapshot = &raftpb.Snapshot{Data: []byte("snap"), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(9),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}, AutoLeave: proto.Bool(true)}}}
	case 1: // storage responses: protobuf encodes them
		m.Responses = []*raftpb.Message{{Type: raftpb.MessageType_MsgAppResp.Enum(), To: proto.Uint64(2)}}
	}
	return m
}

// TestRaftCodecMatchesProtobuf: the fast codec writes the bytes
// proto.Marshal writes, and reads back what proto.Unmarshal reads, for
// messages with any mix of set, unset and zero fields.
func TestRaftCodecMatchesProtobuf(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := drawMessage(t)
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalRaftMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("marshal differs:\n got %x\nwant %x", got, want)
		}
		if n := sizeRaftMessage(m); n != len(want) {
			t.Fatalf("size %d, protobuf %d", n, len(want))
		}
		back := &raftpb.Message{Term: proto.Uint64(77)} // decoding resets it
		if err := unmarshalRaftMessage(want, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, m) {
			t.Fatalf("decoded %v, want %v", back, m)
		}
		for i, e := range m.Entries {
			want, _ := proto.Marshal(e)
			got, _ := marshalRaftEntry(e)
			if !bytes.Equal(got, want) || sizeRaftEntry(e) != len(want) {
				t.Fatalf("entry %d: marshal %x size %d, protobuf %x", i, got, sizeRaftEntry(e), want)
			}
			back := &raftpb.Entry{}
			if err := unmarshalRaftEntry(want, back); err != nil || !proto.Equal(back, e) {
				t.Fatalf("entry %d: decoded %v (%v), want %v", i, back, err, e)
			}
		}
	})
}

// TestRaftCodecDecodesLikeProtobuf: on arbitrary bytes (corrupt, unknown
// fields, packed or out-of-range values) the fast decoder ends where
// protobuf does: the same error or the same message.
func TestRaftCodecDecodesLikeProtobuf(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "bytes")
		if rapid.Bool().Draw(t, "from-message") {
			b, _ = proto.Marshal(drawMessage(t))
			if len(b) > 0 && rapid.Bool().Draw(t, "flip") {
				i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
				b[i] ^= rapid.Byte().Draw(t, "xor")
			}
		}
		want := &raftpb.Message{}
		wantErr := proto.Unmarshal(b, want)
		got := &raftpb.Message{}
		gotErr := unmarshalRaftMessage(b, got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("bytes %x: error %v, protobuf %v", b, gotErr, wantErr)
		}
		if wantErr == nil && !proto.Equal(got, want) {
			t.Fatalf("bytes %x: decoded %v, protobuf %v", b, got, want)
		}
		wantE := &raftpb.Entry{}
		wantErr = proto.Unmarshal(b, wantE)
		gotE := &raftpb.Entry{}
		gotErr = unmarshalRaftEntry(b, gotE)
		if (wantErr == nil) != (gotErr == nil) || (wantErr == nil && !proto.Equal(gotE, wantE)) {
			t.Fatalf("bytes %x: entry %v (%v), protobuf %v (%v)", b, gotE, gotErr, wantE, wantErr)
		}
	})
}

// TestRaftCodecAtWritesInPlace: the ...At encoders give what protobuf
// writes, in the tail of the buffer they are given (over whatever it held)
// when they encode it themselves, and leave the bytes before it alone.
func TestRaftCodecAtWritesInPlace(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := drawMessage(t)
		if rapid.Bool().Draw(t, "entry-unknown") && len(m.Entries) > 0 && m.Entries[0] != nil {
			m.Entries[0].ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
		}
		hs := &raftpb.HardState{Term: optUint64(t, "hs-term"), Vote: optUint64(t, "hs-vote"), Commit: optUint64(t, "hs-commit")}
		check := func(what string, want []byte, at func([]byte) ([]byte, error), fast bool) {
			pre := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, what+"-pre")
			b := append(slices.Clone(pre), bytes.Repeat([]byte{0xee}, len(want))...)
			got, err := at(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %x, protobuf %x", what, got, want)
			}
			if fast && (len(got) > 0 && &got[0] != &b[len(pre)]) {
				t.Fatalf("%s: not written in place", what)
			}
			if !bytes.Equal(b[:len(pre)], pre) {
				t.Fatalf("%s: wrote before its place", what)
			}
		}
		want, _ := proto.Marshal(m)
		check("message", want, func(b []byte) ([]byte, error) { return marshalRaftMessageAt(b, m) }, false)
		for i, e := range m.Entries {
			want, _ := proto.Marshal(e)
			fast := e != nil && len(e.ProtoReflect().GetUnknown()) == 0
			check(fmt.Sprint("entry", i), want, func(b []byte) ([]byte, error) { return marshalRaftEntryAt(b, e) }, fast)
		}
		want, _ = proto.Marshal(hs)
		check("hardstate", want, func(b []byte) ([]byte, error) { return marshalHardStateAt(b, hs) }, true)
	})
}
