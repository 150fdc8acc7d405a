package pb

import (
	"bytes"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

func drawPeer(t *rapid.T, name string) *Peer {
	if !rapid.Bool().Draw(t, name+"-set") {
		return nil
	}
	return &Peer{Id: rapid.Uint64Range(0, 9).Draw(t, name+"-id"), StoreId: rapid.Uint64Range(0, 9).Draw(t, name+"-store"),
		Role: PeerRole(rapid.Int32Range(0, 5).Draw(t, name+"-role"))}
}

func drawRaftEnvelope(t *rapid.T) *Envelope {
	rm := &RaftMessage{
		RegionId: rapid.Uint64Range(0, 5).Draw(t, "region"),
		FromPeer: drawPeer(t, "from"), ToPeer: drawPeer(t, "to"),
		StartKey: optBytes(t, "start"), EndKey: optBytes(t, "end"),
	}
	if rapid.Bool().Draw(t, "epoch-set") {
		rm.RegionEpoch = &Epoch{ConfVer: rapid.Uint64Range(0, 3).Draw(t, "confver"), Version: rapid.Uint64Range(0, 3).Draw(t, "version")}
	}
	if rapid.IntRange(0, 5).Draw(t, "message-kind") > 0 {
		rm.Message = drawMessage(t)
		if rapid.IntRange(0, 9).Draw(t, "unknown-type") == 0 {
			rm.Message.Type = raftpb.MessageType(rapid.Int32Range(100, 200).Draw(t, "bad-type")).Enum()
		}
	}
	switch rapid.IntRange(0, 9).Draw(t, "notice") {
	case 0:
		rm.GcRegion = &Region{Id: 3, Epoch: &Epoch{ConfVer: 4}}
	case 1:
		rm.Quiet = &QuietNotice{Term: 2, Index: 9}
	}
	return NewEnvelope(rapid.Uint64Range(0, 9).Draw(t, "env-from"), rapid.Uint64Range(0, 9).Draw(t, "env-to"), rm)
}

// TestWireCopyIsTheDecodedMessage: the copy equals what the receiver would
// decode from the bytes (the same fields, presence, nil and empty slices),
// owns all its memory, and leaves to the codec what it says it does not
// copy.
func TestWireCopyIsTheDecodedMessage(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := drawRaftEnvelope(t)
		data, err := e.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		decoded := &Envelope{}
		if err := decoded.UnmarshalVT(data); err != nil {
			t.Fatal(err)
		}
		c, ok := WireCopy(e)
		rm := e.GetRaft()
		simple := rm.GcRegion == nil && rm.Quiet == nil && (rm.Message == nil ||
			(rm.Message.Snapshot == nil && rm.Message.Responses == nil && rm.Message.GetType() < 100))
		if ok != simple {
			t.Fatalf("WireCopy ok = %v for a message that is simple: %v", ok, simple)
		}
		if !ok {
			return
		}
		if !proto.Equal(c, decoded) {
			t.Fatalf("copy differs from the decoded message:\ncopy    %v\ndecoded %v", c, decoded)
		}
		again, err := c.MarshalVT()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("the copy encodes differently (%v)", err)
		}
		sameShape(t, "envelope", reflect.ValueOf(c).Elem(), reflect.ValueOf(decoded).Elem())
		// The copy owns its memory: scribbling over the original, or
		// appending to one slice of the copy, changes nothing else.
		for _, b := range [][]byte{rm.StartKey, rm.EndKey, rm.GetMessage().GetContext()} {
			for i := range b {
				b[i] ^= 0xff
			}
		}
		for _, ent := range rm.GetMessage().GetEntries() {
			for i := range ent.Data {
				ent.Data[i] ^= 0xff
			}
		}
		if k := c.GetRaft().StartKey; k != nil {
			_ = append(k, 'x', 'y', 'z')
		}
		if cm := c.GetRaft().GetMessage(); cm != nil && cm.Context != nil {
			_ = append(cm.Context, 'x', 'y', 'z')
		}
		after, _ := c.MarshalVT()
		if !bytes.Equal(after, data) {
			t.Fatalf("the copy shares memory with the original or between its fields")
		}
	})
}

// sameShape fails when a and b differ in which slices and pointers are nil
// or in the room of a slice (proto.Equal sees neither a nil proto3 bytes
// field against an empty one nor capacity; code using the message might).
func sameShape(t *rapid.T, path string, a, b reflect.Value) {
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			t.Fatalf("%s: nil %v in the copy, %v decoded", path, a.IsNil(), b.IsNil())
		}
		if !a.IsNil() {
			sameShape(t, path, a.Elem(), b.Elem())
		}
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() || a.Cap() != b.Cap() {
			t.Fatalf("%s: nil %v len %d cap %d in the copy, nil %v len %d cap %d decoded", path,
				a.IsNil(), a.Len(), a.Cap(), b.IsNil(), b.Len(), b.Cap())
		}
		for i := 0; i < a.Len(); i++ {
			sameShape(t, path, a.Index(i), b.Index(i))
		}
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			f := a.Type().Field(i)
			if !f.IsExported() {
				continue // protobuf's internal state
			}
			sameShape(t, path+"."+f.Name, a.Field(i), b.Field(i))
		}
	}
}
