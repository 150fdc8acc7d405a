package pb

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestNewEnvelopeCarriesEveryBody(t *testing.T) {
	bodies := []Body{&RaftMessage{}, &KvRequest{}, &KvResponse{}, &StoreHello{}, &Bootstrap{},
		&RegionHeartbeat{}, &StoreHeartbeat{}, &GetRegionRequest{}, &GetRegionResponse{},
		&ListRegionsRequest{}, &ListRegionsResponse{}, &AskSplitRequest{}, &AskSplitResponse{}, &ReportSplit{},
		&SnapshotChunk{}, &SnapshotAck{}, &RegionOrder{}, &RegionByIDRequest{}, &RegionByIDResponse{},
		&MoveRegionRequest{}, &TransferLeaderRequest{}, &DecommissionStoreRequest{}, &AdminResponse{}, &StoreHeartbeatResponse{}, &StorePing{}}
	// Every case of Envelope's body oneof is covered, each by its own field.
	oneof := File_multiraft_proto.Messages().ByName("Envelope").Oneofs().ByName("body")
	if n := oneof.Fields().Len(); n != len(bodies) {
		t.Fatalf("Envelope has %d body types, the test lists %d", n, len(bodies))
	}
	seen := map[protoreflect.Name]bool{}
	for _, b := range bodies {
		e := NewEnvelope(1, 2, b)
		if e.GetFrom() != 1 || e.GetTo() != 2 || e.GetBody() == nil {
			t.Fatalf("%T: %v", b, e)
		}
		f := e.ProtoReflect().WhichOneof(oneof)
		if f == nil || seen[f.Name()] {
			t.Fatalf("%T: carried in field %v (seen before: %v)", b, f, f != nil && seen[f.Name()])
		}
		seen[f.Name()] = true
	}
}
