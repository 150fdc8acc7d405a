package pb

import (
	"errors"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A codec for the raft messages and entries our own messages carry
// (RaftMessage.message, RegionUpdate.entries): the generated vtproto code
// calls it (gen.go rewrites the calls) instead of protobuf's reflection,
// which was the larger half of encoding a raft message.
//
// It writes exactly the bytes proto.Marshal writes: fields in number order,
// a proto2 optional field when it is set (its pointer or slice is not
// nil), repeated fields unpacked. What it does not handle itself it hands
// to protobuf whole: a message with a snapshot, storage responses or
// unknown fields to encode, and, when decoding, any field it does not
// expect (raftpb_test.go checks both directions against protobuf).

// errRaftCodecFallback says the bytes hold something the fast decoder
// leaves to protobuf.
var errRaftCodecFallback = errors.New("pb: raft codec: not a plain message")

// raftMessageFast says whether m is one the fast encoder writes.
func raftMessageFast(m *raftpb.Message) bool {
	return m.Snapshot == nil && len(m.Responses) == 0 && len(m.ProtoReflect().GetUnknown()) == 0
}

func sizeOptUint64(num protowire.Number, v *uint64) int {
	if v == nil {
		return 0
	}
	// num, the field number, is below 16 in etcd's messages: its tag is
	// one byte. (Not computing it keeps this small enough to inline, and
	// sizing is on every message's path.)
	return 1 + protowire.SizeVarint(*v)
}

// sizeRaftEntry is proto.Size(e).
func sizeRaftEntry(e *raftpb.Entry) int {
	if e == nil {
		return 0
	}
	if len(e.ProtoReflect().GetUnknown()) > 0 {
		return proto.Size(e)
	}
	n := 0
	if e.Type != nil {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(*e.Type))
	}
	n += sizeOptUint64(2, e.Term) + sizeOptUint64(3, e.Index)
	if e.Data != nil {
		n += protowire.SizeTag(4) + protowire.SizeBytes(len(e.Data))
	}
	return n
}

// marshalRaftEntry is proto.Marshal(e).
func marshalRaftEntry(e *raftpb.Entry) ([]byte, error) {
	if e == nil || len(e.ProtoReflect().GetUnknown()) > 0 {
		return proto.Marshal(e)
	}
	return marshalRaftEntryAt(make([]byte, sizeRaftEntry(e)), e)
}

// The ...At encoders below serve the generated MarshalToSizedBufferVT,
// which writes a message backwards into a buffer sized by SizeVT and then
// copies the encoding of an etcd type (from these functions) to just
// before what it has written, at b[len(b)-size:] for b = dAtA[:i]. They
// write the encoding right there when they encode it themselves, so the
// copy is onto itself and no buffer is allocated; what they leave to
// protobuf comes back in a buffer of its own. They are the one encoder:
// the plain versions run them on a buffer of the encoding's exact size.

// marshalRaftEntryAt is marshalRaftEntry(e), written at the end of b when
// it can be.
func marshalRaftEntryAt(b []byte, e *raftpb.Entry) ([]byte, error) {
	if e == nil || len(e.ProtoReflect().GetUnknown()) > 0 {
		return proto.Marshal(e)
	}
	return b[putRaftEntryBack(b, len(b), e):], nil
}

// The put...Back writers fill b backwards, as the generated code does:
// each writes its field (or message) to end at b[i] and returns where it
// starts. A message written so needs no size computed first: its bytes
// come out, and its length prefix after them, in one pass. b must have
// room for what they write (the generated code sized it with SizeVT).

func putVarintBack(b []byte, i int, v uint64) int {
	i -= protowire.SizeVarint(v)
	j := i
	for v >= 0x80 {
		b[j] = byte(v) | 0x80
		v >>= 7
		j++
	}
	b[j] = byte(v)
	return i
}

// putTagBack writes the tag of field num (at most 15: one byte).
func putTagBack(b []byte, i int, num protowire.Number, typ protowire.Type) int {
	i--
	b[i] = byte(protowire.EncodeTag(num, typ))
	return i
}

func putOptUint64Back(b []byte, i int, num protowire.Number, v *uint64) int {
	if v == nil {
		return i
	}
	return putTagBack(b, putVarintBack(b, i, *v), num, protowire.VarintType)
}

func putBytesBack(b []byte, i int, num protowire.Number, v []byte) int {
	i -= len(v)
	copy(b[i:], v)
	return putTagBack(b, putVarintBack(b, i, uint64(len(v))), num, protowire.BytesType)
}

// putRaftEntryBack writes e, which has no unknown fields, as appendRaftEntry
// does.
func putRaftEntryBack(b []byte, i int, e *raftpb.Entry) int {
	if e.Data != nil {
		i = putBytesBack(b, i, 4, e.Data)
	}
	i = putOptUint64Back(b, i, 3, e.Index)
	i = putOptUint64Back(b, i, 2, e.Term)
	if e.Type != nil {
		i = putTagBack(b, putVarintBack(b, i, uint64(*e.Type)), 1, protowire.VarintType)
	}
	return i
}

// putRaftMessageBack writes m, which raftMessageFast accepts, as
// appendRaftMessage does (fields in reverse order); false if an entry has
// unknown fields (then protobuf must encode m).
func putRaftMessageBack(b []byte, i int, m *raftpb.Message) (int, bool) {
	i = putOptUint64Back(b, i, 13, m.Vote)
	if m.Context != nil {
		i = putBytesBack(b, i, 12, m.Context)
	}
	i = putOptUint64Back(b, i, 11, m.RejectHint)
	if m.Reject != nil {
		i = putTagBack(b, putVarintBack(b, i, protowire.EncodeBool(*m.Reject)), 10, protowire.VarintType)
	}
	i = putOptUint64Back(b, i, 8, m.Commit)
	for j := len(m.Entries) - 1; j >= 0; j-- {
		e := m.Entries[j]
		end := i
		if e != nil {
			if len(e.ProtoReflect().GetUnknown()) > 0 {
				return 0, false
			}
			i = putRaftEntryBack(b, i, e)
		}
		i = putTagBack(b, putVarintBack(b, i, uint64(end-i)), 7, protowire.BytesType)
	}
	i = putOptUint64Back(b, i, 6, m.Index)
	i = putOptUint64Back(b, i, 5, m.LogTerm)
	i = putOptUint64Back(b, i, 4, m.Term)
	i = putOptUint64Back(b, i, 3, m.From)
	i = putOptUint64Back(b, i, 2, m.To)
	if m.Type != nil {
		i = putTagBack(b, putVarintBack(b, i, uint64(*m.Type)), 1, protowire.VarintType)
	}
	return i, true
}

// sizeRaftMessage is proto.Size(m).
func sizeRaftMessage(m *raftpb.Message) int {
	if m == nil {
		return 0
	}
	if !raftMessageFast(m) {
		return proto.Size(m)
	}
	n := 0
	if m.Type != nil {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(*m.Type))
	}
	n += sizeOptUint64(2, m.To) + sizeOptUint64(3, m.From) + sizeOptUint64(4, m.Term) +
		sizeOptUint64(5, m.LogTerm) + sizeOptUint64(6, m.Index)
	for _, e := range m.Entries {
		n += protowire.SizeTag(7) + protowire.SizeBytes(sizeRaftEntry(e))
	}
	n += sizeOptUint64(8, m.Commit)
	if m.Reject != nil {
		n += protowire.SizeTag(10) + 1
	}
	n += sizeOptUint64(11, m.RejectHint)
	if m.Context != nil {
		n += protowire.SizeTag(12) + protowire.SizeBytes(len(m.Context))
	}
	n += sizeOptUint64(13, m.Vote)
	return n
}

// marshalRaftMessage is proto.Marshal(m).
func marshalRaftMessage(m *raftpb.Message) ([]byte, error) {
	if m == nil || !raftMessageFast(m) {
		return proto.Marshal(m)
	}
	return marshalRaftMessageAt(make([]byte, sizeRaftMessage(m)), m)
}

// marshalRaftMessageAt is marshalRaftMessage(m), written at the end of b
// when it can be.
func marshalRaftMessageAt(b []byte, m *raftpb.Message) ([]byte, error) {
	if m == nil || !raftMessageFast(m) {
		return proto.Marshal(m)
	}
	if i, ok := putRaftMessageBack(b, len(b), m); ok {
		return b[i:], nil
	}
	return proto.Marshal(m) // an entry with unknown fields
}

// unmarshalRaftEntry is proto.Unmarshal(b, e).
func unmarshalRaftEntry(b []byte, e *raftpb.Entry) error {
	if err := decodeRaftEntry(b, e); err != nil {
		return proto.Unmarshal(b, e) // resets e first
	}
	return nil
}

// entryScalars holds an entry's optional scalars in one allocation.
type entryScalars struct {
	typ         raftpb.EntryType
	term, index uint64
}

func decodeRaftEntry(b []byte, e *raftpb.Entry) error {
	proto.Reset(e)
	s := new(entryScalars)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errRaftCodecFallback
		}
		b = b[n:]
		switch {
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errRaftCodecFallback
			}
			e.Data = append(make([]byte, 0, len(v)), v...)
			b = b[n:]
		case num >= 1 && num <= 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errRaftCodecFallback
			}
			b = b[n:]
			switch num {
			case 1:
				if _, ok := raftpb.EntryType_name[int32(v)]; !ok {
					return errRaftCodecFallback // protobuf keeps it as an unknown field
				}
				s.typ = raftpb.EntryType(int32(v))
				e.Type = &s.typ
			case 2:
				s.term = v
				e.Term = &s.term
			case 3:
				s.index = v
				e.Index = &s.index
			}
		default:
			return errRaftCodecFallback
		}
	}
	return nil
}

// messageScalars holds a message's optional scalars in one allocation.
type messageScalars struct {
	typ                                                raftpb.MessageType
	to, from, term, logTerm, index, commit, hint, vote uint64
	reject                                             bool
}

// mergeRaftMessage decodes a raft message field of ours as protobuf does:
// b is merged into m. The generated code hands it a new m, unless the
// field comes twice, and then protobuf merges the second into the first.
func mergeRaftMessage(b []byte, m *raftpb.Message) error {
	if sizeRaftMessage(m) != 0 {
		return proto.UnmarshalOptions{Merge: true}.Unmarshal(b, m)
	}
	return unmarshalRaftMessage(b, m)
}

// unmarshalRaftMessage is proto.Unmarshal(b, m).
func unmarshalRaftMessage(b []byte, m *raftpb.Message) error {
	if err := decodeRaftMessage(b, m); err != nil {
		return proto.Unmarshal(b, m) // resets m first
	}
	return nil
}

func decodeRaftMessage(b []byte, m *raftpb.Message) error {
	proto.Reset(m)
	s := new(messageScalars)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errRaftCodecFallback
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errRaftCodecFallback
			}
			b = b[n:]
			switch num {
			case 1:
				if _, ok := raftpb.MessageType_name[int32(v)]; !ok {
					return errRaftCodecFallback // protobuf keeps it as an unknown field
				}
				s.typ = raftpb.MessageType(int32(v))
				m.Type = &s.typ
			case 2:
				s.to = v
				m.To = &s.to
			case 3:
				s.from = v
				m.From = &s.from
			case 4:
				s.term = v
				m.Term = &s.term
			case 5:
				s.logTerm = v
				m.LogTerm = &s.logTerm
			case 6:
				s.index = v
				m.Index = &s.index
			case 8:
				s.commit = v
				m.Commit = &s.commit
			case 10:
				s.reject = protowire.DecodeBool(v)
				m.Reject = &s.reject
			case 11:
				s.hint = v
				m.RejectHint = &s.hint
			case 13:
				s.vote = v
				m.Vote = &s.vote
			default:
				return errRaftCodecFallback
			}
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errRaftCodecFallback
			}
			b = b[n:]
			switch num {
			case 7:
				e := new(raftpb.Entry)
				if err := decodeRaftEntry(v, e); err != nil {
					return err
				}
				m.Entries = append(m.Entries, e)
			case 12:
				m.Context = append(make([]byte, 0, len(v)), v...)
			default:
				return errRaftCodecFallback
			}
		default:
			return errRaftCodecFallback
		}
	}
	return nil
}

// RaftEntrySize is proto.Size(e), without reflection.
func RaftEntrySize(e *raftpb.Entry) int { return sizeRaftEntry(e) }
