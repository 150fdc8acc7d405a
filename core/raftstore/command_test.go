package raftstore

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core/pb"
)

// A leader applies its own entries without decoding them: it uses the
// command it proposed (proposal.cmd), which must be what the entry
// decodes to, for every kind of write, with or without a session and with
// empty or missing values.
func TestProposedCommandIsWhatItsEntryDecodesTo(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bytesOrNil := func(name string) []byte {
			if rapid.Bool().Draw(t, name+"-nil") {
				return nil
			}
			return rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, name)
		}
		req := &pb.KvRequest{RequestId: 7, Header: &pb.RequestHeader{RegionId: rapid.Uint64().Draw(t, "region")}}
		if rapid.Bool().Draw(t, "epoch") {
			req.Header.RegionEpoch = &pb.Epoch{ConfVer: rapid.Uint64().Draw(t, "confver"), Version: rapid.Uint64().Draw(t, "version")}
		}
		if rapid.Bool().Draw(t, "session") {
			req.Session = &pb.Session{Id: bytesOrNil("id"), Sequence: rapid.Uint64().Draw(t, "seq"),
				Lowest: rapid.Uint64().Draw(t, "lowest"), StartedMs: rapid.Uint64().Draw(t, "started")}
		}
		key, value := bytesOrNil("key"), bytesOrNil("value")
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			req.Op = &pb.KvRequest_Put{Put: &pb.PutRequest{Key: key, Value: value}}
		case 1:
			req.Op = &pb.KvRequest_Delete{Delete: &pb.DeleteRequest{Key: key}}
		default:
			req.Op = &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: key, Value: value, ExpectedVersion: rapid.Uint64().Draw(t, "expected")}}
		}
		cmd := commandFor(req)
		cmd.ProposerStore, cmd.ProposerIncarnation, cmd.ProposalId, cmd.ProposedAtMs = 1, 2, 3, 4 // as propose sets them
		data, err := cmd.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		var decoded pb.RaftCommand
		if err := decoded.UnmarshalVT(data); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&decoded, cmd) || (decoded.GetSession() == nil) != (cmd.GetSession() == nil) ||
			(decoded.GetHeader().GetRegionEpoch() == nil) != (cmd.GetHeader().GetRegionEpoch() == nil) {
			t.Fatalf("proposed %v, entry decodes to %v", cmd, &decoded)
		}
	})
}
