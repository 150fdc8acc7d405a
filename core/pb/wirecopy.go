package pb

import (
	"go.etcd.io/raft/v3/raftpb"
)

// WireCopy returns a deep copy of e equal, field for field, to what
// decoding e's encoding gives (UnmarshalVT(MarshalVT(e))), without
// encoding or decoding: the simulator's network hands it to the receiver
// instead of decoding the bytes it sent (it still encodes them, for their
// size and its trace). ok is false for an envelope it leaves to the codec:
// anything but a plain raft message (a snapshot, a GC or quiet notice,
// unknown fields, an enum value the decoder would keep as unknown).
//
// The copy is made the way the decoder makes its own result, with every
// difference the wire makes: an empty proto3 bytes field comes out nil, a
// proto2 field keeps its presence, every slice has its own memory and the
// room past its length the decoder's would have (so an append to one
// behaves as on a decoded message).
// TestWireCopyIsTheDecodedMessage checks it against the codec.
func WireCopy(e *Envelope) (out *Envelope, ok bool) {
	b, isRaft := e.GetBody().(*Envelope_Raft)
	if !isRaft || b.Raft == nil || !wireCopyable(e, b.Raft) {
		return nil, false
	}
	rm := b.Raft
	m := rm.Message
	c := new(raftWireCopy)
	c.env.From, c.env.To = e.From, e.To
	c.body.Raft = &c.rm
	c.env.Body = &c.body
	c.rm.RegionId = rm.RegionId
	if p := rm.FromPeer; p != nil {
		c.from.Id, c.from.StoreId, c.from.Role = p.Id, p.StoreId, p.Role
		c.rm.FromPeer = &c.from
	}
	if p := rm.ToPeer; p != nil {
		c.to.Id, c.to.StoreId, c.to.Role = p.Id, p.StoreId, p.Role
		c.rm.ToPeer = &c.to
	}
	if ep := rm.RegionEpoch; ep != nil {
		c.epoch.ConfVer, c.epoch.Version = ep.ConfVer, ep.Version
		c.rm.RegionEpoch = &c.epoch
	}
	// The keys are decoded by append onto nil (room rounded up as append
	// rounds it); the other byte fields into slices of their exact length,
	// here cut from one buffer.
	if len(rm.StartKey) > 0 { // proto3: an empty key is not on the wire
		c.rm.StartKey = append([]byte(nil), rm.StartKey...)
	}
	if len(rm.EndKey) > 0 {
		c.rm.EndKey = append([]byte(nil), rm.EndKey...)
	}
	if m == nil {
		return &c.env, true
	}
	n := len(m.Context)
	for _, ent := range m.Entries {
		n += len(ent.Data)
	}
	buf := make([]byte, 0, n)
	take := func(src []byte) []byte {
		at := len(buf)
		buf = append(buf, src...)
		return buf[at:len(buf):len(buf)]
	}
	c.rm.Message = &c.msg
	s := &c.sc
	if m.Type != nil {
		s.typ = *m.Type
		c.msg.Type = &s.typ
	}
	copyOpt(&c.msg.To, &s.to, m.To)
	copyOpt(&c.msg.From, &s.from, m.From)
	copyOpt(&c.msg.Term, &s.term, m.Term)
	copyOpt(&c.msg.LogTerm, &s.logTerm, m.LogTerm)
	copyOpt(&c.msg.Index, &s.index, m.Index)
	copyOpt(&c.msg.Commit, &s.commit, m.Commit)
	copyOpt(&c.msg.RejectHint, &s.hint, m.RejectHint)
	copyOpt(&c.msg.Vote, &s.vote, m.Vote)
	if m.Reject != nil {
		s.reject = *m.Reject
		c.msg.Reject = &s.reject
	}
	if m.Context != nil { // proto2: present when set, even empty
		c.msg.Context = take(m.Context)
	}
	if len(m.Entries) > 0 {
		ents := make([]entryWireCopy, len(m.Entries))
		for i, src := range m.Entries {
			d := &ents[i]
			if src.Type != nil {
				d.typ = *src.Type
				d.e.Type = &d.typ
			}
			copyOpt(&d.e.Term, &d.term, src.Term)
			copyOpt(&d.e.Index, &d.index, src.Index)
			if src.Data != nil {
				d.e.Data = take(src.Data)
			}
			c.msg.Entries = append(c.msg.Entries, &d.e) // one at a time, as decoded
		}
	}
	return &c.env, true
}

// raftWireCopy holds every part of a copied raft envelope.
type raftWireCopy struct {
	env      Envelope
	body     Envelope_Raft
	rm       RaftMessage
	from, to Peer
	epoch    Epoch
	msg      raftpb.Message
	sc       messageScalars
}

// entryWireCopy holds a copied entry and its optional scalars.
type entryWireCopy struct {
	e           raftpb.Entry
	typ         raftpb.EntryType
	term, index uint64
}

func copyOpt(dst **uint64, slot *uint64, src *uint64) {
	if src != nil {
		*slot = *src
		*dst = slot
	}
}

// wireCopyable says whether WireCopy can stand for the codec on e: a raft
// message with nothing the fast codec hands to protobuf, no notice, no
// unknown fields, and enum values the decoder knows.
func wireCopyable(e *Envelope, rm *RaftMessage) bool {
	if rm.GcRegion != nil || rm.Quiet != nil || len(e.unknownFields) > 0 || len(rm.unknownFields) > 0 {
		return false
	}
	if (rm.FromPeer != nil && len(rm.FromPeer.unknownFields) > 0) ||
		(rm.ToPeer != nil && len(rm.ToPeer.unknownFields) > 0) ||
		(rm.RegionEpoch != nil && len(rm.RegionEpoch.unknownFields) > 0) {
		return false
	}
	m := rm.Message
	if m == nil {
		return true
	}
	if !raftMessageFast(m) {
		return false
	}
	if m.Type != nil {
		if _, known := raftpb.MessageType_name[int32(*m.Type)]; !known {
			return false
		}
	}
	for _, ent := range m.Entries {
		if ent == nil || len(ent.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
		if ent.Type != nil {
			if _, known := raftpb.EntryType_name[int32(*ent.Type)]; !known {
				return false
			}
		}
	}
	return true
}
