package pb

import "testing"

func TestNewEnvelopeCarriesEveryBody(t *testing.T) {
	bodies := []any{&RaftMessage{}, &KvRequest{}, &KvResponse{}, &StoreHello{}, &Bootstrap{},
		&RegionHeartbeat{}, &StoreHeartbeat{}, &GetRegionRequest{}, &GetRegionResponse{},
		&ListRegionsRequest{}, &ListRegionsResponse{}, &AskSplitRequest{}, &AskSplitResponse{}, &ReportSplit{}}
	// Every case of Envelope's body oneof is covered.
	if n := File_multiraft_proto.Messages().ByName("Envelope").Oneofs().ByName("body").Fields().Len(); n != len(bodies) {
		t.Fatalf("Envelope has %d body types, the test lists %d", n, len(bodies))
	}
	for _, b := range bodies {
		e := NewEnvelope(1, 2, b)
		if e.GetFrom() != 1 || e.GetTo() != 2 || e.GetBody() == nil {
			t.Fatalf("%T: %v", b, e)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an envelope of a non-body type did not panic")
		}
	}()
	NewEnvelope(1, 2, &Region{})
}
