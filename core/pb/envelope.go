package pb

import "fmt"

// NewEnvelope wraps body, one of the message types an Envelope can carry,
// into an envelope from one node to another. It panics on any other type:
// that is a programming error, not bad input.
func NewEnvelope(from, to uint64, body any) *Envelope {
	e := &Envelope{From: from, To: to}
	switch b := body.(type) {
	case *RaftMessage:
		e.Body = &Envelope_Raft{Raft: b}
	case *KvRequest:
		e.Body = &Envelope_KvRequest{KvRequest: b}
	case *KvResponse:
		e.Body = &Envelope_KvResponse{KvResponse: b}
	case *StoreHello:
		e.Body = &Envelope_StoreHello{StoreHello: b}
	case *Bootstrap:
		e.Body = &Envelope_Bootstrap{Bootstrap: b}
	case *RegionHeartbeat:
		e.Body = &Envelope_RegionHeartbeat{RegionHeartbeat: b}
	case *StoreHeartbeat:
		e.Body = &Envelope_StoreHeartbeat{StoreHeartbeat: b}
	case *GetRegionRequest:
		e.Body = &Envelope_GetRegion{GetRegion: b}
	case *GetRegionResponse:
		e.Body = &Envelope_GetRegionResponse{GetRegionResponse: b}
	case *ListRegionsRequest:
		e.Body = &Envelope_ListRegions{ListRegions: b}
	case *ListRegionsResponse:
		e.Body = &Envelope_ListRegionsResponse{ListRegionsResponse: b}
	case *AskSplitRequest:
		e.Body = &Envelope_AskSplit{AskSplit: b}
	case *AskSplitResponse:
		e.Body = &Envelope_AskSplitResponse{AskSplitResponse: b}
	case *ReportSplit:
		e.Body = &Envelope_ReportSplit{ReportSplit: b}
	default:
		panic(fmt.Sprintf("pb: an envelope cannot carry %T", body))
	}
	return e
}
