package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// ---------------------------------------------------------------- Raft

type raftService struct {
	rpcpb.UnimplementedRaftServiceServer
	s *Store
}

// streamSender checks the header of each message of a store-to-store
// stream: this cluster, and one sending store for the whole stream.
type streamSender struct {
	clusterID uint64
	sender    uint64
}

func (ss *streamSender) check(h *rpcpb.Header) error {
	if err := checkHeader(h, ss.clusterID); err != nil {
		return err
	}
	switch from := h.GetSender(); {
	case from == 0 || from >= PDNodeID:
		return status.Errorf(codes.InvalidArgument, "store: raft stream from sender %d, which is not a store id", from)
	case ss.sender == 0:
		ss.sender = from
	case ss.sender != from:
		return status.Errorf(codes.InvalidArgument, "store: raft stream changed sender from %d to %d", ss.sender, from)
	}
	return nil
}

func (r *raftService) Raft(stream rpcpb.RaftService_RaftServer) error {
	s := r.s
	ss := &streamSender{clusterID: s.clusterID}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&rpcpb.RaftDone{})
		}
		if err != nil {
			return err
		}
		if err := ss.check(b.GetHeader()); err != nil {
			s.metrics.refused("raft")
			return err
		}
		items := make([]item, 0, len(b.GetMsgs())+len(b.GetAcks()))
		for _, m := range b.GetMsgs() {
			items = append(items, item{env: pb.NewEnvelope(ss.sender, s.cfg.StoreID, m)})
		}
		for _, a := range b.GetAcks() {
			items = append(items, item{env: pb.NewEnvelope(ss.sender, s.cfg.StoreID, a)})
		}
		if b.GetPing() {
			items = append(items, item{env: pb.NewEnvelope(ss.sender, s.cfg.StoreID, &pb.StorePing{})})
		}
		if !s.in.Put(items...) {
			s.metrics.dropped("inbox_full")
		}
	}
}

func (r *raftService) Snapshot(stream rpcpb.RaftService_SnapshotServer) error {
	s := r.s
	ss := &streamSender{clusterID: s.clusterID}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&rpcpb.RaftDone{})
		}
		if err != nil {
			return err
		}
		if err := ss.check(b.GetHeader()); err != nil {
			s.metrics.refused("snapshot")
			return err
		}
		for _, c := range b.GetChunks() {
			s.metrics.snapshotBytesIn(c)
			if !s.in.Put(item{env: pb.NewEnvelope(ss.sender, s.cfg.StoreID, c)}) {
				s.metrics.dropped("inbox_full")
			}
		}
	}
}

// ---------------------------------------------------------------- Kv

type kvService struct {
	rpcpb.UnimplementedKvServiceServer
	s *Store
}

// busy is the answer to a request the loop cannot take now.
func busy(id uint64) *pb.KvResponse {
	return &pb.KvResponse{RequestId: id, RegionError: &pb.RegionError{Message: "store: too many requests queued", StoreBusy: &pb.StoreBusy{}}}
}

// streamSink queues the responses of one BatchCommands stream.
type streamSink struct {
	mu     sync.Mutex
	queue  []*pb.KvResponse
	signal chan struct{}
}

func (q *streamSink) deliver(r *pb.KvResponse) {
	q.mu.Lock()
	q.queue = append(q.queue, r)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *streamSink) take() []*pb.KvResponse {
	q.mu.Lock()
	out := q.queue
	q.queue = nil
	q.mu.Unlock()
	return out
}

func (k *kvService) BatchCommands(stream rpcpb.KvService_BatchCommandsServer) error {
	s := k.s
	node := s.newClientNode()
	sink := &streamSink{signal: make(chan struct{}, 1)}
	s.tr.addClient(node, sink)
	defer s.tr.removeClient(node)
	ctx, cancel := context.WithCancel(stream.Context())
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				sendErr <- nil
				return
			case <-sink.signal:
			}
			if out := sink.take(); len(out) > 0 {
				if err := stream.Send(&rpcpb.BatchCommandsResponse{Responses: out}); err != nil {
					sendErr <- err
					return
				}
			}
		}
	}()
	defer func() {
		cancel()
		<-sendErr
	}()
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := checkHeader(b.GetHeader(), s.clusterID); err != nil {
			s.metrics.refused("kv")
			return err
		}
		items := make([]item, len(b.GetRequests()))
		for i, r := range b.GetRequests() {
			items[i] = item{env: pb.NewEnvelope(node, s.cfg.StoreID, r)}
		}
		if !s.in.Put(items...) {
			for _, r := range b.GetRequests() {
				sink.deliver(busy(r.GetRequestId()))
			}
		}
	}
}

// chanSink takes the one response of a unary call.
type chanSink chan *pb.KvResponse

func (c chanSink) deliver(r *pb.KvResponse) {
	select {
	case c <- r:
	default:
	}
}

// unaryTimeout bounds a unary KV call whose context has no deadline.
const unaryTimeout = 10 * time.Second

// call serves one KV request as a unary call: a region error becomes a
// FAILED_PRECONDITION status carrying it as a detail.
func (k *kvService) call(ctx context.Context, h *rpcpb.Header, c *rpcpb.Context, req *pb.KvRequest) (*pb.KvResponse, error) {
	s := k.s
	if err := checkHeader(h, s.clusterID); err != nil {
		s.metrics.refused("kv")
		return nil, err
	}
	if c == nil {
		return nil, status.Error(codes.InvalidArgument, "store: request without a context (region id and epoch; ask PD's GetRegion)")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, unaryTimeout)
		defer cancel()
	}
	node := s.newClientNode()
	sink := make(chanSink, 1)
	s.tr.addClient(node, sink)
	defer s.tr.removeClient(node)
	req.RequestId = 1
	req.Header = &pb.RequestHeader{RegionId: c.GetRegionId(), RegionEpoch: c.GetRegionEpoch()}
	if !s.in.Put(item{env: pb.NewEnvelope(node, s.cfg.StoreID, req)}) {
		return nil, regionStatus(busy(1).GetRegionError())
	}
	select {
	case resp := <-sink:
		if re := resp.GetRegionError(); re != nil {
			return nil, regionStatus(re)
		}
		return resp, nil
	case <-ctx.Done():
		return nil, status.Errorf(codes.DeadlineExceeded, "store: no answer in time (a write's outcome is unknown): %v", ctx.Err())
	case <-s.done:
		return nil, status.Error(codes.Unavailable, "store: stopped")
	}
}

// regionStatus is the gRPC status of a region error: FAILED_PRECONDITION
// with the error as a typed detail.
func regionStatus(re *pb.RegionError) error {
	st := status.New(codes.FailedPrecondition, "region error: "+describeRegionError(re))
	if d, err := st.WithDetails(protoadapt.MessageV1Of(re)); err == nil {
		st = d
	}
	return st.Err()
}

// RegionErrorOf returns the region error a unary KV call failed with, or
// nil.
func RegionErrorOf(err error) *pb.RegionError {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if re, ok := d.(*pb.RegionError); ok {
			return re
		}
	}
	return nil
}

func describeRegionError(re *pb.RegionError) string {
	kind := "unknown"
	switch {
	case re.GetNotLeader() != nil:
		kind = "not leader"
	case re.GetRegionNotFound() != nil:
		kind = "region not found"
	case re.GetKeyNotInRegion() != nil:
		kind = "key not in region"
	case re.GetEpochNotMatch() != nil:
		kind = "epoch not match"
	case re.GetStoreBusy() != nil:
		kind = "store busy"
	case re.GetStaleCommand() != nil:
		kind = "stale command"
	case re.GetInvalidRequest() != nil:
		kind = "invalid request: " + re.GetInvalidRequest().GetReason()
	}
	if re.GetMessage() != "" {
		return kind + ": " + re.GetMessage()
	}
	return kind
}

func (k *kvService) Get(ctx context.Context, r *rpcpb.GetRequest) (*pb.GetResponse, error) {
	resp, err := k.call(ctx, r.GetHeader(), r.GetContext(), &pb.KvRequest{Op: &pb.KvRequest_Get{Get: &pb.GetRequest{Key: r.GetKey()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetGet(), nil
}

func (k *kvService) Put(ctx context.Context, r *rpcpb.PutRequest) (*pb.PutResponse, error) {
	resp, err := k.call(ctx, r.GetHeader(), r.GetContext(), &pb.KvRequest{Op: &pb.KvRequest_Put{Put: &pb.PutRequest{Key: r.GetKey(), Value: r.GetValue()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetPut(), nil
}

func (k *kvService) Delete(ctx context.Context, r *rpcpb.DeleteRequest) (*pb.DeleteResponse, error) {
	resp, err := k.call(ctx, r.GetHeader(), r.GetContext(), &pb.KvRequest{Op: &pb.KvRequest_Delete{Delete: &pb.DeleteRequest{Key: r.GetKey()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetDelete(), nil
}

func (k *kvService) Scan(ctx context.Context, r *rpcpb.ScanRequest) (*pb.ScanResponse, error) {
	resp, err := k.call(ctx, r.GetHeader(), r.GetContext(), &pb.KvRequest{Op: &pb.KvRequest_Scan{Scan: &pb.ScanRequest{
		StartKey: r.GetStartKey(), EndKey: r.GetEndKey(), Limit: r.GetLimit()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetScan(), nil
}

func (k *kvService) CompareAndSwap(ctx context.Context, r *rpcpb.CasRequest) (*pb.CasResponse, error) {
	resp, err := k.call(ctx, r.GetHeader(), r.GetContext(), &pb.KvRequest{Op: &pb.KvRequest_Cas{Cas: &pb.CasRequest{
		Key: r.GetKey(), ExpectedVersion: r.GetExpectedVersion(), Value: r.GetValue()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetCas(), nil
}

// ---------------------------------------------------------------- admin

type adminService struct {
	rpcpb.UnimplementedStoreAdminServer
	s *Store
}

func (a *adminService) SplitRegion(ctx context.Context, r *rpcpb.SplitRegionRequest) (*rpcpb.SplitRegionResponse, error) {
	if err := checkHeader(r.GetHeader(), a.s.clusterID); err != nil {
		return nil, err
	}
	var serr error
	if err := a.s.do(ctx, func(st *raftstore.Store) { serr = st.RequestSplit(r.GetRegionId(), r.GetSplitKey()) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, status.Error(codes.FailedPrecondition, serr.Error())
	}
	return &rpcpb.SplitRegionResponse{}, nil
}

func (a *adminService) Status(ctx context.Context, r *rpcpb.StoreStatusRequest) (*rpcpb.StoreStatus, error) {
	if err := checkHeader(r.GetHeader(), a.s.clusterID); err != nil {
		return nil, err
	}
	out := &rpcpb.StoreStatus{StoreId: a.s.cfg.StoreID, ClusterId: a.s.clusterID, Address: a.s.addr}
	err := a.s.do(ctx, func(st *raftstore.Store) {
		out.Incarnation, out.Bootstrapped = st.Incarnation(), st.Bootstrapped()
		for _, rs := range st.Regions() {
			out.Regions = append(out.Regions, &rpcpb.LocalRegion{Region: rs.Region, PeerId: rs.PeerID, LeaderPeer: rs.Leader,
				IsLeader: rs.IsLeader, Term: rs.Term, Applied: rs.Applied, Commit: rs.Commit, Bytes: rs.Bytes})
		}
	})
	return out, err
}
