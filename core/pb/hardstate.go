package pb

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The raft hard state rides in every ready round's WAL record (and in
// checkpoints). Like raftcodec.go for messages and entries, these helpers
// write exactly the bytes protobuf writes without its reflection, and leave
// a hard state with unknown fields to protobuf whole (fastraft.sed points
// the generated code here).

func hardStateFast(hs *raftpb.HardState) bool {
	return len(hs.ProtoReflect().GetUnknown()) == 0
}

// sizeHardState is proto.Size(hs).
func sizeHardState(hs *raftpb.HardState) int {
	if hs == nil {
		return 0
	}
	if !hardStateFast(hs) {
		return proto.Size(hs)
	}
	return sizeOptUint64(1, hs.Term) + sizeOptUint64(2, hs.Vote) + sizeOptUint64(3, hs.Commit)
}

// marshalHardState is proto.Marshal(hs).
func marshalHardState(hs *raftpb.HardState) ([]byte, error) {
	if hs == nil || !hardStateFast(hs) {
		return proto.Marshal(hs)
	}
	return marshalHardStateAt(make([]byte, sizeHardState(hs)), hs)
}

// marshalHardStateAt is marshalHardState(hs), written at the end of b when
// it can be (see marshalRaftEntryAt).
func marshalHardStateAt(b []byte, hs *raftpb.HardState) ([]byte, error) {
	if hs == nil || !hardStateFast(hs) {
		return proto.Marshal(hs)
	}
	i := putOptUint64Back(b, len(b), 3, hs.Commit)
	i = putOptUint64Back(b, i, 2, hs.Vote)
	return b[putOptUint64Back(b, i, 1, hs.Term):], nil
}

// CloneHardState is proto.Clone(hs): the same fields set, to values of
// its own (one allocation for the message and its values).
func CloneHardState(hs *raftpb.HardState) *raftpb.HardState {
	if hs == nil || !hardStateFast(hs) {
		return proto.Clone(hs).(*raftpb.HardState)
	}
	a := new(struct {
		hs                 raftpb.HardState
		term, vote, commit uint64
	})
	a.hs.Term = cloneOptUint64(hs.Term, &a.term)
	a.hs.Vote = cloneOptUint64(hs.Vote, &a.vote)
	a.hs.Commit = cloneOptUint64(hs.Commit, &a.commit)
	return &a.hs
}

// cloneOptUint64 stores *v in to and returns to, or nil if v is.
func cloneOptUint64(v, to *uint64) *uint64 {
	if v == nil {
		return nil
	}
	*to = *v
	return to
}
