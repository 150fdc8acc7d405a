package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// Invalid input.
//
// Every second the probe also sends a store of the region it picked
// requests whose header is right (the region's id and current epoch, a key
// of the region) but whose content no store may accept: a put of a value
// one byte over the store's limit, to a key the workload uses, and three
// more, in turn, of the kinds in badKinds: a key or a scan's end bound over
// the key limit, an oversized cas value, the empty keys, reversed scan
// range, missing operation and malformed sessions KvRequest.Validate
// refuses.
//
// A store checks a request's header, then Validate, then the sizes, and
// only then looks at its regions (raftstore onKvRequest). So whatever its
// regions, leadership or epoch, it must answer InvalidRequest, and not one
// that depends on its clock: the client fails such a write at once and for
// good (core/client), while a region error sends it retrying, so another
// answer leaves the write ambiguous where it is known to have failed. An
// answer that serves the request, or refuses it otherwise, is a violation.
// Two exceptions, both about the store's state and not the request: a store
// not yet bootstrapped (it knows no regions) answers every request
// RegionNotFound, and a store that crashed since may have answered before
// it bootstrapped again; to these any region error is a refusal.
//
// No write the probe sends here may apply: each carries a session of its
// own, and a replica that executes one is a violation (writeApplied). The
// refused writes of a workload key join the history as Failed operations
// of ProbeNode: their values are unique, so a read that saw one fails the
// linearizability check too.

// badKind is one kind of invalid request: req builds it around k, a key of
// the region, or returns nil when the region has no key that fits.
type badKind struct {
	what string
	req  func(p *probe, r *pb.Region, k []byte) *pb.KvRequest
}

func putReq(key, value []byte) *pb.KvRequest {
	return &pb.KvRequest{Op: &pb.KvRequest_Put{Put: &pb.PutRequest{Key: key, Value: value}}}
}

// badKinds are the invalid requests sent in turn, besides the oversized
// value put every second.
var badKinds = []badKind{
	{"put of a key over the key limit", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return p.inRegion(r, putReq(padKey(k, p.maxKey+1), []byte("badinput")))
	}},
	{"get of a key over the key limit", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return p.inRegion(r, &pb.KvRequest{Op: &pb.KvRequest_Get{Get: &pb.GetRequest{Key: padKey(k, p.maxKey+1)}}})
	}},
	{"scan to an end bound over the key limit", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Scan{Scan: &pb.ScanRequest{StartKey: k, EndKey: padKey(k, p.maxKey+1), Limit: 8}}}
	}},
	{"cas of a value over the value limit", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: k, Value: p.bigValue()}}}
	}},
	{"get of the empty key", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Get{Get: &pb.GetRequest{}}}
	}},
	{"put of the empty key", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return putReq(nil, []byte("badinput"))
	}},
	{"delete of the empty key", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Delete{Delete: &pb.DeleteRequest{}}}
	}},
	{"cas of the empty key", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Cas{Cas: &pb.CasRequest{Value: []byte("badinput")}}}
	}},
	{"scan whose start is not before its end", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{Op: &pb.KvRequest_Scan{Scan: &pb.ScanRequest{StartKey: k, EndKey: k, Limit: 8}}}
	}},
	{"request without an operation", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		return &pb.KvRequest{}
	}},
	{"put in a session whose id is 15 bytes", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		req := putReq(k, p.smallValue())
		req.Session = p.session()
		req.Session.Id = req.Session.Id[:pb.SessionIDBytes-1]
		return req
	}},
	{"put at session sequence 0", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		req := putReq(k, p.smallValue())
		req.Session = p.session()
		req.Session.Sequence, req.Session.Lowest = 0, 0
		return req
	}},
	{"put in a session whose lowest is above its sequence", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		req := putReq(k, p.smallValue())
		req.Session = p.session()
		req.Session.Lowest = 2
		return req
	}},
	{"put in a session without started_ms", func(p *probe, r *pb.Region, k []byte) *pb.KvRequest {
		req := putReq(k, p.smallValue())
		req.Session = p.session()
		req.Session.StartedMs = 0
		return req
	}},
}

// badPerTick is how many of badKinds the probe sends every second.
const badPerTick = 3

// limits reads the stores' size limits as they fill them in.
func (p *probe) limits() {
	p.maxKey, p.maxValue = p.w.cfg.Store.MaxKeyBytes, p.w.cfg.Store.MaxValueBytes
	if p.maxKey <= 0 {
		p.maxKey = raftstore.DefaultMaxKeyBytes
	}
	if p.maxValue <= 0 {
		p.maxValue = raftstore.DefaultMaxValueBytes
	}
}

// padKey is k followed by zero bytes up to n bytes: after k, and so in k's
// region unless the region ends between them.
func padKey(k []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, k)
	return out
}

// inRegion returns req if its key lies in r, else nil.
func (p *probe) inRegion(r *pb.Region, req *pb.KvRequest) *pb.KvRequest {
	if !r.ContainsKey(req.Key()) {
		return nil
	}
	return req
}

// bigValue is a value one byte over the limit, unique to the run.
func (p *probe) bigValue() []byte {
	p.badSeq++
	v := bytes.Repeat([]byte{'#'}, p.maxValue+1)
	copy(v, fmt.Sprintf("badinput-%d:", p.badSeq))
	return v
}

// smallValue is a value within the limit, unique to the run.
func (p *probe) smallValue() []byte {
	p.badSeq++
	return fmt.Appendf(nil, "badinput-%d", p.badSeq)
}

// session is a well-formed session of its own for one invalid write.
func (p *probe) session() *pb.Session {
	p.badSessions++
	id := make([]byte, pb.SessionIDBytes)
	copy(id, "badinput")
	binary.BigEndian.PutUint64(id[8:], p.badSessions)
	return &pb.Session{Id: id, Sequence: 1, Lowest: 1, StartedMs: uint64(clock{p.w.k}.Now().UnixMilli())}
}

// fireInvalid sends store, a store of region r as PD knows it, the
// oversized put and the next badPerTick kinds of badKinds.
func (p *probe) fireInvalid(r *pb.Region, store uint64) {
	k := p.keyOf(r)
	if k == nil {
		return
	}
	req := putReq(k, p.bigValue())
	req.Session = p.session()
	p.sendInvalid(r, store, fmt.Sprintf("put of a value of %d bytes (limit %d) to %q", p.maxValue+1, p.maxValue, k), req)
	for range badPerTick {
		b := badKinds[p.badNext]
		p.badNext = (p.badNext + 1) % len(badKinds)
		if req := b.req(p, r, k); req != nil {
			p.sendInvalid(r, store, b.what, req)
		}
	}
	p.fireAtLimit(r, store, k)
}

// fireAtLimit sends store valid requests exactly at the limits, which no
// store may refuse as invalid (a size check off by one would): a get of a
// key of exactly the key limit, a scan to an end bound of that size, and a
// cas of a value of exactly the value limit whose expected version no key
// reaches (it fails, changing nothing; so it stays out of the history).
func (p *probe) fireAtLimit(r *pb.Region, store uint64, k []byte) {
	if len(k) >= p.maxKey {
		return
	}
	atLimit := func(what string, req *pb.KvRequest) {
		if req == nil {
			return
		}
		req.Header = &pb.RequestHeader{RegionId: r.GetId(), RegionEpoch: r.GetEpoch()}
		p.atLimitSent++
		p.send(store, probeExpect{what: what, atLimit: true}, req)
	}
	atLimit(fmt.Sprintf("get of a key of %d bytes (the limit)", p.maxKey),
		p.inRegion(r, &pb.KvRequest{Op: &pb.KvRequest_Get{Get: &pb.GetRequest{Key: padKey(k, p.maxKey)}}}))
	atLimit(fmt.Sprintf("scan to an end bound of %d bytes (the limit)", p.maxKey),
		&pb.KvRequest{Op: &pb.KvRequest_Scan{Scan: &pb.ScanRequest{StartKey: k, EndKey: padKey(k, p.maxKey), Limit: 1}}})
	atLimit(fmt.Sprintf("cas of a value of %d bytes (the limit) to %q", p.maxValue, k),
		&pb.KvRequest{Op: &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: k, ExpectedVersion: neverVersion, Value: bytes.Repeat([]byte{'='}, p.maxValue)}}})
}

// neverVersion is a version no key reaches in a run.
const neverVersion = 1 << 62

// atLimitAnswer judges a store's answer to a valid request at the limits:
// anything but InvalidRequest, and no cas that succeeded. It reports
// whether the answer was right.
func (p *probe) atLimitAnswer(from uint64, e probeExpect, resp *pb.KvResponse) bool {
	switch {
	case resp.GetRegionError().GetInvalidRequest() != nil:
		p.w.violate(fmt.Sprintf("store %d refused a valid request as invalid (%s): %s", from, resp.GetRegionError().GetMessage(), e.what))
	case resp.GetCas().GetSucceeded():
		p.w.violate(fmt.Sprintf("store %d's cas of expected version %d succeeded: %s", from, uint64(neverVersion), e.what))
	default:
		return true
	}
	return false
}

// keyOf picks a key of region r: one the workload uses when r holds any,
// else the region's start key followed by a zero byte, or nil if even that
// is not in r.
func (p *probe) keyOf(r *pb.Region) []byte {
	var inside []string
	for _, k := range p.w.keys {
		if r.ContainsKey([]byte(k)) {
			inside = append(inside, k)
		}
	}
	if len(inside) > 0 {
		return []byte(inside[p.r.Intn(len(inside))])
	}
	k := padKey(r.GetStartKey(), len(r.GetStartKey())+1)
	if !r.ContainsKey(k) {
		return nil
	}
	return k
}

// sendInvalid sends req, with r's header, to store. Every write gets a
// session of its own if it has none, to be told apart if a replica ever
// executes it; a write of a workload key is kept, to join the history as
// failed once refused.
func (p *probe) sendInvalid(r *pb.Region, store uint64, what string, req *pb.KvRequest) {
	req.Header = &pb.RequestHeader{RegionId: r.GetId(), RegionEpoch: r.GetEpoch()}
	e := probeExpect{what: what, invalid: true}
	if n := p.w.stores[store-1]; n.up() && n.st.Bootstrapped() {
		e.strict, e.gen = true, n.gen
	}
	if req.IsWrite() {
		if req.GetSession() == nil {
			req.Session = p.session()
		}
		p.badWrites[string(req.GetSession().GetId())] = what
		if slices.Contains(p.w.keys, string(req.Key())) {
			op := &checker.Op{ClientID: ProbeNode, Key: string(req.Key()), Call: int64(p.w.k.now), Outcome: checker.OutcomeFailed}
			switch o := req.GetOp().(type) {
			case *pb.KvRequest_Put:
				op.Kind, op.Value = checker.OpPut, string(o.Put.GetValue())
			case *pb.KvRequest_Cas:
				op.Kind, op.Value, op.ExpectedVersion = checker.OpCas, string(o.Cas.GetValue()), o.Cas.GetExpectedVersion()
			case *pb.KvRequest_Delete:
				op.Kind = checker.OpDelete
			}
			e.failed = op
		}
	}
	p.invalidSent++
	p.send(store, e, req)
}

// invalidAnswer judges a store's answer to an invalid request and reports
// whether it was a refusal.
func (p *probe) invalidAnswer(from uint64, e probeExpect, resp *pb.KvResponse) bool {
	re := resp.GetRegionError()
	switch {
	case re == nil:
		p.w.violate(fmt.Sprintf("store %d served an invalid request it must refuse (InvalidRequest): %s", from, e.what))
	case re.GetInvalidRequest() != nil && !re.GetInvalidRequest().GetClockDependent():
		if e.failed != nil {
			op := *e.failed
			op.Return = int64(p.w.k.now)
			p.history = append(p.history, op)
		}
		return true
	case !e.strict || p.w.stores[from-1].gen != e.gen:
		return true // a store that knew no regions, then or since
	default:
		p.w.violate(fmt.Sprintf("store %d refused an invalid request with %q, not as invalid (InvalidRequest): %s", from, re.GetMessage(), e.what))
	}
	return false
}

// writeApplied is called when a replica on store executes a write of
// session: one of the probe's invalid writes is a violation.
func (p *probe) writeApplied(store uint64, session []byte) {
	if what, ok := p.badWrites[string(session)]; ok {
		p.w.violate(fmt.Sprintf("store %d applied an invalid write it must refuse: %s", store, what))
	}
}
