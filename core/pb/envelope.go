package pb

// Body is a message an Envelope can carry. The set is sealed: only the
// types listed in NewEnvelope implement it, so wrapping anything else is a
// compile error.
type Body interface {
	isBody()
}

func (*RaftMessage) isBody()              {}
func (*KvRequest) isBody()                {}
func (*KvResponse) isBody()               {}
func (*StoreHello) isBody()               {}
func (*Bootstrap) isBody()                {}
func (*RegionHeartbeat) isBody()          {}
func (*StoreHeartbeat) isBody()           {}
func (*GetRegionRequest) isBody()         {}
func (*GetRegionResponse) isBody()        {}
func (*ListRegionsRequest) isBody()       {}
func (*ListRegionsResponse) isBody()      {}
func (*AskSplitRequest) isBody()          {}
func (*AskSplitResponse) isBody()         {}
func (*ReportSplit) isBody()              {}
func (*SnapshotChunk) isBody()            {}
func (*SnapshotAck) isBody()              {}
func (*RegionOrder) isBody()              {}
func (*RegionByIDRequest) isBody()        {}
func (*RegionByIDResponse) isBody()       {}
func (*MoveRegionRequest) isBody()        {}
func (*TransferLeaderRequest) isBody()    {}
func (*DecommissionStoreRequest) isBody() {}
func (*StoreHeartbeatResponse) isBody()   {}
func (*StorePing) isBody()                {}
func (*AdminResponse) isBody()            {}

// NewRaftEnvelope returns an envelope from one node to another and the
// empty raft message it carries, for the caller to fill, in one
// allocation (a store sends one per raft message).
func NewRaftEnvelope(from, to uint64) (*Envelope, *RaftMessage) {
	a := new(struct {
		env  Envelope
		body Envelope_Raft
		msg  RaftMessage
	})
	a.body.Raft = &a.msg
	return a.env.address(from, to, &a.body), &a.msg
}

// address sets e's ends and body, and returns e.
func (e *Envelope) address(from, to uint64, body isEnvelope_Body) *Envelope {
	e.From, e.To, e.Body = from, to, body
	return e
}

// NewEnvelope wraps body into an envelope from one node to another. The
// envelope and its body's wrapper are one allocation for the messages of
// every client operation, KV requests and responses.
func NewEnvelope(from, to uint64, body Body) *Envelope {
	switch b := body.(type) {
	case *KvRequest:
		a := new(struct {
			env  Envelope
			body Envelope_KvRequest
		})
		a.body.KvRequest = b
		return a.env.address(from, to, &a.body)
	case *KvResponse:
		a := new(struct {
			env  Envelope
			body Envelope_KvResponse
		})
		a.body.KvResponse = b
		return a.env.address(from, to, &a.body)
	}
	e := &Envelope{From: from, To: to}
	switch b := body.(type) {
	case *RaftMessage:
		e.Body = &Envelope_Raft{Raft: b}
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
	case *SnapshotChunk:
		e.Body = &Envelope_SnapshotChunk{SnapshotChunk: b}
	case *SnapshotAck:
		e.Body = &Envelope_SnapshotAck{SnapshotAck: b}
	case *RegionOrder:
		e.Body = &Envelope_RegionOrder{RegionOrder: b}
	case *RegionByIDRequest:
		e.Body = &Envelope_RegionById{RegionById: b}
	case *RegionByIDResponse:
		e.Body = &Envelope_RegionByIdResponse{RegionByIdResponse: b}
	case *MoveRegionRequest:
		e.Body = &Envelope_MoveRegion{MoveRegion: b}
	case *TransferLeaderRequest:
		e.Body = &Envelope_TransferLeader{TransferLeader: b}
	case *DecommissionStoreRequest:
		e.Body = &Envelope_DecommissionStore{DecommissionStore: b}
	case *AdminResponse:
		e.Body = &Envelope_AdminResponse{AdminResponse: b}
	case *StoreHeartbeatResponse:
		e.Body = &Envelope_StoreHeartbeatResponse{StoreHeartbeatResponse: b}
	case *StorePing:
		e.Body = &Envelope_StorePing{StorePing: b}
	}
	return e
}
