package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// transport is a store's core.Transport. Send runs on the store loop; it
// copies the envelope (the core may change what it points to once Send
// returns, as the simulator's transport, which marshals, allows) and hands
// it to the goroutine that delivers it: PD workers (one unary call per
// message), the peer connection of the destination store (batched on a
// long-lived stream), or the client stream or call the reply belongs to.
// Nothing blocks the loop: a full queue drops the message, as a network may.
type transport struct {
	s    *Store
	toPD chan *pb.Envelope

	mu      sync.Mutex
	peers   map[uint64]*peerConn
	addrs   map[uint64]string // store id -> address, from PD
	resolve time.Time         // last ListStores
	conns   map[string]*grpc.ClientConn
	clients map[uint64]clientSink
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// clientSink receives the KV responses for one client node id.
type clientSink interface{ deliver(*pb.KvResponse) }

const (
	pdWorkers      = 4
	pdQueue        = 4096
	peerQueueLimit = 100_000
	batchBytes     = 4 << 20 // a raft batch is cut at about this size
	pdCallTimeout  = 5 * time.Second
)

func newTransport(s *Store) *transport {
	return &transport{s: s, toPD: make(chan *pb.Envelope, pdQueue), peers: map[uint64]*peerConn{},
		addrs: map[uint64]string{}, conns: map[string]*grpc.ClientConn{}, clients: map[uint64]clientSink{},
		stop: make(chan struct{})}
}

func (t *transport) start() {
	for i := 0; i < pdWorkers; i++ {
		t.wg.Add(1)
		go t.pdWorker()
	}
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	close(t.stop)
	conns := t.conns
	t.conns = map[string]*grpc.ClientConn{}
	t.mu.Unlock()
	t.wg.Wait()
	for _, c := range conns {
		c.Close()
	}
}

// Send implements core.Transport.
func (t *transport) Send(e *pb.Envelope) {
	to := e.GetTo()
	switch {
	case to == t.s.pdID:
		select {
		case t.toPD <- proto.Clone(e).(*pb.Envelope):
		default:
			t.s.metrics.dropped("pd_queue_full")
		}
	case to >= clientNodeBase:
		resp := e.GetKvResponse()
		if resp == nil {
			return
		}
		t.mu.Lock()
		sink := t.clients[to]
		t.mu.Unlock()
		if sink == nil {
			t.s.metrics.dropped("client_gone")
			return
		}
		sink.deliver(proto.Clone(resp).(*pb.KvResponse))
	default:
		p := t.peer(to)
		if p == nil {
			return
		}
		c := proto.Clone(e).(*pb.Envelope)
		if c.GetSnapshotChunk() != nil {
			p.snap.put(c)
		} else {
			p.raft.put(c)
		}
	}
}

func (t *transport) addClient(node uint64, sink clientSink) {
	t.mu.Lock()
	t.clients[node] = sink
	t.mu.Unlock()
}

func (t *transport) removeClient(node uint64) {
	t.mu.Lock()
	delete(t.clients, node)
	t.mu.Unlock()
}

// ---------------------------------------------------------------- PD

func (t *transport) pdWorker() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case e := <-t.toPD:
			t.callPD(e)
		}
	}
}

// callPD makes the unary call an envelope for PD stands for, and hands
// PD's answer, if any, to the loop as an envelope from PD.
func (t *transport) callPD(e *pb.Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), pdCallTimeout)
	defer cancel()
	h := t.s.header()
	pd := t.s.pd
	var reply pb.Body
	var err error
	switch b := e.GetBody().(type) {
	case *pb.Envelope_StoreHello:
		b.StoreHello.Address = t.s.addr
		var r *pb.Bootstrap
		r, err = pd.StoreHello(ctx, &rpcpb.StoreHelloRequest{Header: h, Hello: b.StoreHello})
		reply = r
	case *pb.Envelope_StoreHeartbeat:
		var r *pb.StoreHeartbeatResponse
		r, err = pd.StoreHeartbeat(ctx, &rpcpb.StoreHeartbeatRequest{Header: h, Heartbeat: b.StoreHeartbeat})
		if r != nil {
			reply = r
		}
	case *pb.Envelope_RegionHeartbeat:
		var r *rpcpb.RegionHeartbeatResponse
		r, err = pd.RegionHeartbeat(ctx, &rpcpb.RegionHeartbeatRequest{Header: h, Heartbeat: b.RegionHeartbeat})
		if r.GetOrder() != nil {
			reply = r.GetOrder()
		}
	case *pb.Envelope_AskSplit:
		var r *pb.AskSplitResponse
		r, err = pd.AskSplit(ctx, &rpcpb.AskSplitRequest{Header: h, Request: b.AskSplit})
		reply = r
	case *pb.Envelope_ReportSplit:
		_, err = pd.ReportSplit(ctx, &rpcpb.ReportSplitRequest{Header: h, Report: b.ReportSplit})
	case *pb.Envelope_RegionById:
		var r *pb.RegionByIDResponse
		r, err = pd.GetRegionByID(ctx, &rpcpb.GetRegionByIDRequest{Header: h, RegionId: b.RegionById.GetRegionId()})
		if r != nil {
			r.RequestId = b.RegionById.GetRequestId()
		}
		reply = r
	default:
		t.s.log.Warn("store: no PD call for this message", "type", bodyName(e))
		return
	}
	if err != nil {
		t.s.metrics.pdError()
		t.s.log.Debug("store: PD call failed", "type", bodyName(e), "err", errorMessage(err))
		return
	}
	if reply == nil || isNilBody(reply) {
		return
	}
	t.s.in.Put(item{env: pb.NewEnvelope(t.s.pdID, t.s.cfg.StoreID, reply)})
}

func isNilBody(b pb.Body) bool {
	m, ok := b.(proto.Message)
	return !ok || !m.ProtoReflect().IsValid()
}

// bodyName names an envelope's body for logs and metrics.
func bodyName(e *pb.Envelope) string {
	if e == nil || e.GetBody() == nil {
		return "empty"
	}
	return string(e.ProtoReflect().WhichOneof(e.ProtoReflect().Descriptor().Oneofs().ByName("body")).Name())
}

// ---------------------------------------------------------------- stores

// peer returns the connection to store id, creating it.
func (t *transport) peer(id uint64) *peerConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	p := t.peers[id]
	if p == nil {
		p = &peerConn{t: t, id: id}
		p.raft = newPeerStream(p, "raft")
		p.snap = newPeerStream(p, "snapshot")
		t.peers[id] = p
		t.wg.Add(2)
		go p.raft.run()
		go p.snap.run()
	}
	return p
}

// address returns store id's address, asking PD when it is unknown (at
// most every 200ms), or "".
func (t *transport) address(id uint64, refresh bool) string {
	t.mu.Lock()
	addr := t.addrs[id]
	stale := refresh || addr == ""
	if stale && time.Since(t.resolve) < 200*time.Millisecond {
		stale = false
	}
	if stale {
		t.resolve = time.Now()
	}
	t.mu.Unlock()
	if !stale {
		return addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), pdCallTimeout)
	defer cancel()
	resp, err := t.s.pd.ListStores(ctx, &rpcpb.ListStoresRequest{Header: t.s.header()})
	if err != nil {
		t.s.log.Debug("store: cannot resolve store addresses", "err", errorMessage(err))
		return addr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range resp.GetStores() {
		if st.GetAddress() != "" {
			t.addrs[st.GetId()] = st.GetAddress()
		}
	}
	return t.addrs[id]
}

// conn returns the client connection to addr, shared by both streams.
func (t *transport) conn(addr string) (*grpc.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.conns[addr]; c != nil {
		return c, nil
	}
	c, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	t.conns[addr] = c
	return c, nil
}

// peerConn is this store's link to one other store: a raft stream and a
// snapshot stream, each with its queue and goroutine.
type peerConn struct {
	t          *transport
	id         uint64
	raft, snap *peerStream
}

// peerStream is one long-lived client stream to a store and the queue of
// what waits to go on it.
type peerStream struct {
	p      *peerConn
	kind   string
	mu     sync.Mutex
	queue  []*pb.Envelope
	signal chan struct{}
}

func newPeerStream(p *peerConn, kind string) *peerStream {
	return &peerStream{p: p, kind: kind, signal: make(chan struct{}, 1)}
}

func (ps *peerStream) put(e *pb.Envelope) {
	ps.mu.Lock()
	if len(ps.queue) >= peerQueueLimit {
		ps.mu.Unlock()
		ps.p.t.s.metrics.dropped("peer_queue_full")
		return
	}
	ps.queue = append(ps.queue, e)
	ps.mu.Unlock()
	select {
	case ps.signal <- struct{}{}:
	default:
	}
}

func (ps *peerStream) take() []*pb.Envelope {
	ps.mu.Lock()
	q := ps.queue
	ps.queue = nil
	ps.mu.Unlock()
	return q
}

// sender is an open stream.
type sender interface {
	send([]*pb.Envelope) error
	close() error // after a failed send: the stream's final status
	abort()       // at shutdown
}

func (ps *peerStream) run() {
	t := ps.p.t
	defer t.wg.Done()
	var out sender
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-t.stop:
			if out != nil {
				out.abort()
			}
			return
		case <-ps.signal:
		}
		batch := ps.take()
		if len(batch) == 0 {
			continue
		}
		var err error
		if out == nil {
			out, err = ps.open()
		}
		if err == nil {
			err = out.send(batch)
			if err != nil {
				if cerr := out.close(); cerr != nil {
					err = cerr
				}
				out = nil
			}
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			t.s.metrics.sent(ps.kind, len(batch))
			continue
		}
		// Unreachable: drop what was queued (raft resends; the snapshot
		// sender times out and retries), tell raft, and wait a little.
		t.s.metrics.sendFailed(ps.kind, len(batch))
		t.s.log.Debug("store: cannot reach store", "to", ps.p.id, "stream", ps.kind, "err", errorMessage(err))
		if IsClusterMismatch(err) {
			t.s.log.Error("store: a store of another cluster answers at this address", "to", ps.p.id, "err", errorMessage(err))
		}
		id := ps.p.id
		t.s.in.Put(item{fn: func(st *raftstore.Store) { st.ReportUnreachable(id) }})
		t.address(id, true)
		select {
		case <-t.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		ps.take() // what queued meanwhile is stale
	}
}

// open opens the stream to the peer store.
func (ps *peerStream) open() (sender, error) {
	t := ps.p.t
	addr := t.address(ps.p.id, false)
	if addr == "" {
		return nil, errUnknownAddress(ps.p.id)
	}
	c, err := t.conn(addr)
	if err != nil {
		return nil, err
	}
	client := rpcpb.NewRaftServiceClient(c)
	ctx, cancel := context.WithCancel(context.Background())
	if ps.kind == "snapshot" {
		st, err := client.Snapshot(ctx)
		if err != nil {
			cancel()
			return nil, err
		}
		return &snapSender{st: st, cancel: cancel, h: t.s.header()}, nil
	}
	st, err := client.Raft(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &raftSender{st: st, cancel: cancel, h: t.s.header()}, nil
}

type raftSender struct {
	st     rpcpb.RaftService_RaftClient
	cancel context.CancelFunc
	h      *rpcpb.Header
}

func (r *raftSender) send(batch []*pb.Envelope) error {
	b := &rpcpb.RaftBatch{Header: r.h}
	size := 0
	for _, e := range batch {
		switch {
		case e.GetRaft() != nil:
			b.Msgs = append(b.Msgs, e.GetRaft())
			size += proto.Size(e.GetRaft())
		case e.GetSnapshotAck() != nil:
			b.Acks = append(b.Acks, e.GetSnapshotAck())
		case e.GetStorePing() != nil:
			b.Ping = true
		}
		if size >= batchBytes {
			if err := r.st.Send(b); err != nil {
				return err
			}
			b, size = &rpcpb.RaftBatch{Header: r.h}, 0
		}
	}
	if len(b.Msgs) == 0 && len(b.Acks) == 0 && !b.Ping {
		return nil
	}
	return r.st.Send(b)
}

func (r *raftSender) abort() { r.cancel() }

func (r *raftSender) close() error {
	defer r.cancel()
	_, err := r.st.CloseAndRecv()
	return err
}

type snapSender struct {
	st     rpcpb.RaftService_SnapshotClient
	cancel context.CancelFunc
	h      *rpcpb.Header
}

func (s *snapSender) send(batch []*pb.Envelope) error {
	for _, e := range batch {
		if err := s.st.Send(&rpcpb.SnapshotBatch{Header: s.h, Chunks: []*pb.SnapshotChunk{e.GetSnapshotChunk()}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *snapSender) abort() { s.cancel() }

func (s *snapSender) close() error {
	defer s.cancel()
	_, err := s.st.CloseAndRecv()
	return err
}
