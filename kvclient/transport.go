package kvclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// transport is the core client's core.Transport: a GetRegionRequest for PD
// becomes a unary call; a KvRequest for a store joins the batch of that
// store's BatchCommands stream. Replies come back to the loop as
// envelopes.
type transport Client

const callTimeout = 5 * time.Second

func (t *transport) Send(e *pb.Envelope) {
	c := (*Client)(t)
	switch b := e.GetBody().(type) {
	case *pb.Envelope_GetRegion:
		go c.lookup(b.GetRegion.GetRequestId(), b.GetRegion.GetKey())
	case *pb.Envelope_KvRequest:
		if s := c.store(e.GetTo()); s != nil {
			s.put(b.KvRequest)
		}
	}
}

func (c *Client) header() *rpcpb.Header { return &rpcpb.Header{ClusterId: c.clusterID, Sender: c.id} }

// lookup asks PD for the region of key.
func (c *Client) lookup(reqID uint64, key []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := c.pd.GetRegion(ctx, &rpcpb.GetRegionRequest{Header: c.header(), Key: key})
	if err != nil {
		c.log.Debug("kvclient: PD lookup failed", "err", err)
		return // the core client times the lookup out and retries
	}
	resp.RequestId = reqID
	c.in.reply(pb.NewEnvelope(c.pdID, c.id, resp))
}

// address returns store id's address, asking PD when unknown or refresh.
func (c *Client) address(id uint64, refresh bool) string {
	c.mu.Lock()
	addr := c.addrs[id]
	c.mu.Unlock()
	if addr != "" && !refresh {
		return addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := c.pd.ListStores(ctx, &rpcpb.ListStoresRequest{Header: c.header()})
	if err != nil {
		return addr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range resp.GetStores() {
		if st.GetAddress() != "" {
			c.addrs[st.GetId()] = st.GetAddress()
		}
	}
	return c.addrs[id]
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := server.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

// store returns the stream to store id, starting it.
func (c *Client) store(id uint64) *storeConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stop:
		return nil
	default:
	}
	s := c.stores[id]
	if s == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s = &storeConn{c: c, id: id, ctx: ctx, cancel: cancel, signal: make(chan struct{}, 1)}
		c.stores[id] = s
		c.wg.Add(1)
		go s.run()
	}
	return s
}

// storeConn batches the requests for one store on a BatchCommands stream.
type storeConn struct {
	c      *Client
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	queue  []*pb.KvRequest
	signal chan struct{}
}

func (s *storeConn) put(r *pb.KvRequest) {
	s.mu.Lock()
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *storeConn) take() []*pb.KvRequest {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	return q
}

// unreachable answers requests that never left (no stream could be
// opened) as a definite NotLeader without a hint: the client tries
// another peer of the region.
func (s *storeConn) unreachable(reqs []*pb.KvRequest, err error) {
	out := make([]*pb.Envelope, len(reqs))
	for i, r := range reqs {
		out[i] = pb.NewEnvelope(s.id, s.c.id, &pb.KvResponse{RequestId: r.GetRequestId(), RegionError: &pb.RegionError{
			Message:   fmt.Sprintf("kvclient: store %d unreachable: %v", s.id, err),
			NotLeader: &pb.NotLeader{RegionId: r.GetHeader().GetRegionId()},
		}})
	}
	s.c.in.reply(out...)
}

func (s *storeConn) run() {
	defer s.c.wg.Done()
	var stream rpcpb.KvService_BatchCommandsClient
	var streamCancel context.CancelFunc
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-s.ctx.Done():
			if streamCancel != nil {
				streamCancel()
			}
			return
		case <-s.signal:
		}
		reqs := s.take()
		if len(reqs) == 0 {
			continue
		}
		if stream == nil {
			var err error
			stream, streamCancel, err = s.open()
			if err != nil {
				s.unreachable(reqs, err)
				s.c.address(s.id, true)
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 20 * time.Millisecond
		}
		if err := stream.Send(&rpcpb.BatchCommandsRequest{Header: s.c.header(), Requests: reqs}); err != nil {
			// Sent or not: unknown. The core client times these out
			// (writes become ambiguous, reads are retried).
			s.c.log.Debug("kvclient: stream to store broke", "store", s.id, "err", err)
			streamCancel()
			stream, streamCancel = nil, nil
		}
	}
}

// open starts a BatchCommands stream and its receiving goroutine.
func (s *storeConn) open() (rpcpb.KvService_BatchCommandsClient, context.CancelFunc, error) {
	addr := s.c.address(s.id, false)
	if addr == "" {
		return nil, nil, fmt.Errorf("PD knows no address for store %d", s.id)
	}
	cc, err := s.c.conn(addr)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	stream, err := rpcpb.NewKvServiceClient(cc).BatchCommands(ctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		for {
			resp, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, context.Canceled) && ctx.Err() == nil {
					s.c.log.Debug("kvclient: stream from store ended", "store", s.id, "err", err)
				}
				cancel()
				return
			}
			out := make([]*pb.Envelope, len(resp.GetResponses()))
			for i, r := range resp.GetResponses() {
				out[i] = pb.NewEnvelope(s.id, s.c.id, r)
			}
			s.c.in.reply(out...)
		}
	}()
	return stream, cancel, nil
}
