package sim

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
)

// probe sends requests no store may serve — keys outside the named region,
// unknown region ids, stale epochs — and raft messages for regions that do
// not exist, and turns any served answer or created state into a violation.
// It sends requests no store may accept as input, and checks they are
// refused as invalid and never applied (badinput.go). It also writes and
// reads around deposed leaders (deposed.go).
type probe struct {
	w      *World
	r      *rng.Rand
	nextID uint64
	expect map[uint64]probeExpect // request id -> what it tested
	// answered: the requests answered once, judged again on every later
	// answer (a duplicate or late copy of the request reaches the store
	// again): no copy may be served, whichever answer comes first.
	answered map[uint64]probeExpect
	sent     int
	rejected int

	// Invalid input (badinput.go).
	maxKey, maxValue             int               // the stores' limits
	badNext                      int               // the next of badKinds to send
	badSeq, badSessions          uint64            // numbers the invalid writes' values and sessions
	badWrites                    map[string]string // session id of an invalid write -> what it was
	invalidSent, invalidRefused  int
	atLimitSent, atLimitAnswered int // valid requests exactly at the limits

	// Writes and reads around deposed leaders (deposed.go).
	ops                        map[uint64]probeOp // request id -> the probe's write or read in flight
	deposedWrites              map[deposedKey]int // writes made for a deposed leader
	deposedReadsOf             map[deposedKey]int // reads sent to a deposed leader
	deposedWriteSeq            uint64
	watch                      []uint64 // regions with a deposed leader, in the order found
	deposedSent, deposedServed int
	history                    []checker.Op // the probe's writes and answered reads
}

// probeExpect is what a request of the probe tested and how its answer is
// judged.
type probeExpect struct {
	what    string
	invalid bool // invalid input: only InvalidRequest is a correct answer, unless not strict
	atLimit bool // valid input at the size limits: anything but InvalidRequest
	strict  bool // sent to a bootstrapped store of incarnation gen
	gen     int
	failed  *checker.Op // a write of a workload key, for the history once refused
}

// unknownRegion is a region id PD never allocates in a simulation.
const unknownRegion = 1 << 40

func newProbe(w *World) *probe {
	p := &probe{w: w, r: w.rs.work.Fork(), expect: map[uint64]probeExpect{}, answered: map[uint64]probeExpect{}, badWrites: map[string]string{},
		ops: map[uint64]probeOp{}, deposedWrites: map[deposedKey]int{}, deposedReadsOf: map[deposedKey]int{}}
	p.limits()
	var tick func()
	tick = func() {
		if w.workloadOver {
			return
		}
		p.fire()
		w.k.after(time.Second, "", tick)
	}
	w.k.after(time.Second, "", tick)
	return p
}

// send sends req to store, expecting a refusal as e says.
func (p *probe) send(store uint64, e probeExpect, req *pb.KvRequest) {
	p.nextID++
	req.RequestId = p.nextID
	p.expect[p.nextID] = e
	if !e.invalid && !e.atLimit {
		p.sent++
	}
	transport{p.w, ProbeNode}.Send(pb.NewEnvelope(ProbeNode, store, req))
}

func (p *probe) fire() {
	if p.w.pd == nil {
		return
	}
	regions := p.w.pd.Regions()
	r := regions[p.r.Intn(len(regions))]
	peers := r.GetPeers()
	store := peers[p.r.Intn(len(peers))].GetStoreId()
	hdr := &pb.RequestHeader{RegionId: r.GetId(), RegionEpoch: r.GetEpoch()}
	// A key just outside the region.
	var outside []byte
	if len(r.GetStartKey()) > 0 {
		outside = []byte{0x01}
		if string(outside) >= string(r.GetStartKey()) {
			outside = nil
		}
	}
	if outside == nil && len(r.GetEndKey()) > 0 {
		outside = append([]byte(nil), r.GetEndKey()...)
	}
	if outside != nil {
		p.send(store, probeExpect{what: fmt.Sprintf("get %q outside region %d", outside, r.GetId())},
			&pb.KvRequest{Header: hdr, Op: &pb.KvRequest_Get{Get: &pb.GetRequest{Key: outside}}})
		p.send(store, probeExpect{what: fmt.Sprintf("put %q outside region %d", outside, r.GetId())},
			&pb.KvRequest{Header: hdr, Op: &pb.KvRequest_Put{Put: &pb.PutRequest{Key: outside, Value: []byte("probe")}}})
	}
	inside := append(append([]byte(nil), r.GetStartKey()...), 'z')
	p.send(store, probeExpect{what: fmt.Sprintf("get in unknown region %d", unknownRegion)},
		&pb.KvRequest{Header: &pb.RequestHeader{RegionId: unknownRegion, RegionEpoch: r.GetEpoch()},
			Op: &pb.KvRequest_Get{Get: &pb.GetRequest{Key: inside}}})
	stale := &pb.Epoch{ConfVer: r.GetEpoch().GetConfVer(), Version: r.GetEpoch().GetVersion() + 1000}
	p.send(store, probeExpect{what: fmt.Sprintf("put with wrong epoch in region %d", r.GetId())},
		&pb.KvRequest{Header: &pb.RequestHeader{RegionId: r.GetId(), RegionEpoch: stale},
			Op: &pb.KvRequest_Put{Put: &pb.PutRequest{Key: inside, Value: []byte("probe")}}})
	// A raft message for a region that does not exist must create nothing.
	// It comes from the store it names as its sender, as a stray message
	// from a peer would (a forged sender is refused earlier, as malformed).
	sender := store%uint64(p.w.cfg.Stores) + 1
	msg := &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(unknownRegion + 2), From: proto.Uint64(unknownRegion + 1), Term: proto.Uint64(7)}
	transport{p.w, sender}.Send(pb.NewEnvelope(sender, store, &pb.RaftMessage{
		RegionId: unknownRegion, FromPeer: &pb.Peer{Id: unknownRegion + 1, StoreId: sender},
		ToPeer: &pb.Peer{Id: unknownRegion + 2, StoreId: store}, RegionEpoch: r.GetEpoch(), Message: msg,
	}))
	p.fireInvalid(r, store)
}

func (p *probe) receive(m *pb.Envelope) {
	resp := m.GetKvResponse()
	if resp == nil || p.probeAnswer(m.GetFrom(), resp) {
		return
	}
	id := resp.GetRequestId()
	var ok bool
	e, first := p.expect[id]
	if first {
		delete(p.expect, id)
		again := e
		again.failed = nil // the history takes the first refusal
		p.answered[id] = again
	} else if e, ok = p.answered[id]; !ok {
		return
	}
	// Every answer is judged; the counts take the first.
	from := m.GetFrom()
	switch {
	case e.invalid:
		if p.invalidAnswer(from, e, resp) && first {
			p.invalidRefused++
		}
	case e.atLimit:
		if p.atLimitAnswer(from, e, resp) && first {
			p.atLimitAnswered++
		}
	case resp.GetRegionError() == nil:
		p.w.violate(fmt.Sprintf("store %d served a request it must refuse: %s", from, e.what))
	case first:
		p.rejected++
	}
}

// checkNoGhostRegions verifies that no store created the probe's region.
func (p *probe) checkNoGhostRegions() {
	for _, n := range p.w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions() {
			if rs.Region.GetId() >= unknownRegion {
				p.w.violate(fmt.Sprintf("store %d created region %d from a stray raft message", n.id, rs.Region.GetId()))
			}
		}
	}
}
