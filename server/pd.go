package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// PDConfig configures a PD process.
type PDConfig struct {
	Addr    string // gRPC listen address, e.g. 127.0.0.1:2379 (":0" picks a port)
	DataDir string // where PD keeps its durable state
	// ClusterID names the cluster; 0 picks a random one at first start. A
	// data directory of another cluster is refused.
	ClusterID uint64
	// The initial layout, used at first start only (afterwards it comes
	// from the data directory).
	Stores    []uint64
	Replicas  int
	SplitKeys [][]byte
	// PD tunables (heartbeat interval told to stores, store down time, ...).
	PD           pd.Config
	TickInterval time.Duration // how often the loop calls Tick; default 100ms
	Log          *slog.Logger
}

// PD is a running placement driver: one goroutine owns the core PD and
// serves the PD gRPC service from it.
type PD struct {
	cfg       PDConfig
	log       *slog.Logger
	clusterID uint64
	core      *pd.PD
	net       *collector
	calls     chan func()
	lis       net.Listener
	grpc      *grpc.Server
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	metrics   *pdMetrics
}

// collector is PD's core.Transport: PD only ever replies, synchronously
// within Receive, so the loop collects the replies of each call.
type collector struct{ out []*pb.Envelope }

func (c *collector) Send(e *pb.Envelope) {
	c.out = append(c.out, proto.Clone(e).(*pb.Envelope))
}

// StartPD opens (or creates) PD's state in cfg.DataDir, listens on
// cfg.Addr and serves until Close.
func StartPD(cfg PDConfig) (*PD, error) {
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &PD{cfg: cfg, log: log.With("node", "pd"), net: &collector{}, calls: make(chan func(), 1024),
		stop: make(chan struct{}), done: make(chan struct{})}
	core, clusterID, err := openPD(cfg, core.Env{Clock: wallClock{}, Net: s.net, Rand: newRand(), Log: log})
	if err != nil {
		return nil, err
	}
	s.core, s.clusterID = core, clusterID
	s.metrics = newPDMetrics(s)
	lis, err := Listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("pd: %w", err)
	}
	s.lis = lis
	s.grpc = grpc.NewServer(serverOptions()...)
	rpcpb.RegisterPDServer(s.grpc, &pdService{s: s})
	reflection.Register(s.grpc)
	go s.run()
	go func() {
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("pd: grpc serve", "err", err)
		}
	}()
	s.log.Info("pd: serving", "addr", lis.Addr().String(), "cluster_id", clusterID, "data", cfg.DataDir)
	return s, nil
}

// Addr is the address PD serves on.
func (s *PD) Addr() string { return s.lis.Addr().String() }

// ClusterID is the cluster's id.
func (s *PD) ClusterID() uint64 { return s.clusterID }

// Close stops serving and the loop.
func (s *PD) Close() {
	s.closeOnce.Do(func() {
		s.grpc.Stop()
		close(s.stop)
		<-s.done
	})
}

func (s *PD) run() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.core.Tick()
			s.afterChange()
		case fn := <-s.calls:
			fn()
		}
	}
}

// do runs fn on the loop and waits for it, or for ctx.
func (s *PD) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case s.calls <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.stop:
		return status.Error(codes.Unavailable, "pd: shutting down")
	}
	select {
	case <-done:
		return nil
	case <-s.stop:
		return status.Error(codes.Unavailable, "pd: shutting down")
	}
}

// call hands PD one envelope from node `from` on the loop and returns its
// replies. With store set, from must be a store PD knows.
func (s *PD) call(ctx context.Context, from uint64, body pb.Body, store bool) ([]*pb.Envelope, error) {
	var out []*pb.Envelope
	var refused error
	err := s.do(ctx, func() {
		if store && !s.knownStore(from) {
			refused = status.Errorf(codes.NotFound, "pd: store %d is not a store of cluster %d (not in its layout, never joined)", from, s.clusterID)
			return
		}
		s.net.out = s.net.out[:0]
		s.core.Receive(pb.NewEnvelope(from, PDNodeID, body))
		out = append(out, s.net.out...)
		s.afterChange()
	})
	if err != nil {
		return nil, err
	}
	return out, refused
}

func (s *PD) knownStore(id uint64) bool { return s.core.HasStore(id) }

// afterChange runs on the loop after anything that may have changed PD's
// state: it makes the state durable (see durable.go).
func (s *PD) afterChange() {
	if err := s.persist(); err != nil {
		// PD cannot promise anything it cannot make durable: fail stop.
		s.log.Error("pd: cannot persist its state; stopping", "err", err)
		panic(fmt.Sprintf("pd: persist state: %v", err))
	}
}

// reply finds the one reply of type T among replies.
func reply[T any](replies []*pb.Envelope, get func(*pb.Envelope) *T) (*T, error) {
	for _, e := range replies {
		if v := get(e); v != nil {
			return v, nil
		}
	}
	return nil, status.Error(codes.Internal, "pd: no reply")
}

// pdService is the gRPC face of PD.
type pdService struct {
	rpcpb.UnimplementedPDServer
	s *PD
}

func (p *pdService) check(h *rpcpb.Header) error { return checkHeader(h, p.s.clusterID) }

func (p *pdService) GetClusterInfo(ctx context.Context, _ *rpcpb.ClusterInfoRequest) (*rpcpb.ClusterInfo, error) {
	info := &rpcpb.ClusterInfo{ClusterId: p.s.clusterID, PdId: PDNodeID}
	err := p.s.do(ctx, func() {
		for _, st := range p.s.core.Stores() {
			if !st.Joined {
				info.InitialStores = append(info.InitialStores, st.ID)
			}
		}
		info.Replicas = uint32(p.s.replicas())
	})
	return info, err
}

func (p *pdService) StoreHello(ctx context.Context, req *rpcpb.StoreHelloRequest) (*pb.Bootstrap, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	h := req.GetHello()
	if h == nil || h.GetStoreId() == 0 {
		return nil, status.Error(codes.InvalidArgument, "pd: store hello without a store id")
	}
	out, err := p.s.call(ctx, h.GetStoreId(), h, false)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetBootstrap)
}

func (p *pdService) StoreHeartbeat(ctx context.Context, req *rpcpb.StoreHeartbeatRequest) (*pb.StoreHeartbeatResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	hb := req.GetHeartbeat()
	if hb == nil {
		return nil, status.Error(codes.InvalidArgument, "pd: store heartbeat without a body")
	}
	out, err := p.s.call(ctx, hb.GetStoreId(), hb, true)
	if err != nil {
		return nil, err
	}
	for _, e := range out {
		if r := e.GetStoreHeartbeatResponse(); r != nil {
			return r, nil
		}
	}
	return &pb.StoreHeartbeatResponse{}, nil // PD ignored it (a tombstone store)
}

func (p *pdService) RegionHeartbeat(ctx context.Context, req *rpcpb.RegionHeartbeatRequest) (*rpcpb.RegionHeartbeatResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	if req.GetHeartbeat() == nil {
		return nil, status.Error(codes.InvalidArgument, "pd: region heartbeat without a body")
	}
	out, err := p.s.call(ctx, req.GetHeader().GetSender(), req.GetHeartbeat(), true)
	if err != nil {
		return nil, err
	}
	resp := &rpcpb.RegionHeartbeatResponse{}
	for _, e := range out {
		if o := e.GetRegionOrder(); o != nil {
			resp.Order = o
		}
	}
	return resp, nil
}

func (p *pdService) AskSplit(ctx context.Context, req *rpcpb.AskSplitRequest) (*pb.AskSplitResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	if req.GetRequest() == nil {
		return nil, status.Error(codes.InvalidArgument, "pd: ask split without a body")
	}
	out, err := p.s.call(ctx, req.GetHeader().GetSender(), req.GetRequest(), true)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetAskSplitResponse)
}

func (p *pdService) ReportSplit(ctx context.Context, req *rpcpb.ReportSplitRequest) (*rpcpb.Ack, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	if req.GetReport() == nil {
		return nil, status.Error(codes.InvalidArgument, "pd: report split without a body")
	}
	if _, err := p.s.call(ctx, req.GetHeader().GetSender(), req.GetReport(), true); err != nil {
		return nil, err
	}
	return &rpcpb.Ack{}, nil
}

func (p *pdService) GetRegion(ctx context.Context, req *rpcpb.GetRegionRequest) (*pb.GetRegionResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	out, err := p.s.call(ctx, req.GetHeader().GetSender(), &pb.GetRegionRequest{Key: req.GetKey()}, false)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetGetRegionResponse)
}

func (p *pdService) GetRegionByID(ctx context.Context, req *rpcpb.GetRegionByIDRequest) (*pb.RegionByIDResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	out, err := p.s.call(ctx, req.GetHeader().GetSender(), &pb.RegionByIDRequest{RegionId: req.GetRegionId()}, false)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetRegionByIdResponse)
}

func (p *pdService) ListRegions(ctx context.Context, req *rpcpb.ListRegionsRequest) (*pb.ListRegionsResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	out, err := p.s.call(ctx, req.GetHeader().GetSender(), &pb.ListRegionsRequest{}, false)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetListRegionsResponse)
}

func (p *pdService) ListStores(ctx context.Context, req *rpcpb.ListStoresRequest) (*rpcpb.ListStoresResponse, error) {
	if err := p.check(req.GetHeader()); err != nil {
		return nil, err
	}
	resp := &rpcpb.ListStoresResponse{}
	err := p.s.do(ctx, func() { resp.Stores = storesOf(p.s.core.Stores()) })
	return resp, err
}

func storesOf(infos []pd.StoreInfo) []*rpcpb.Store {
	out := make([]*rpcpb.Store, 0, len(infos))
	for _, st := range infos {
		s := &rpcpb.Store{Id: st.ID, Address: st.Address, State: st.State.String(), Registered: st.Registered,
			Joined: st.Joined, Regions: uint32(st.Regions), Leaders: uint32(st.Leaders), RegionBytes: st.RegionBytes}
		if !st.LastSeen.IsZero() {
			s.LastSeenUnixMs = st.LastSeen.UnixMilli()
		}
		out = append(out, s)
	}
	return out
}

func (p *pdService) admin(ctx context.Context, h *rpcpb.Header, body pb.Body) (*pb.AdminResponse, error) {
	if err := p.check(h); err != nil {
		return nil, err
	}
	out, err := p.s.call(ctx, h.GetSender(), body, false)
	if err != nil {
		return nil, err
	}
	return reply(out, (*pb.Envelope).GetAdminResponse)
}

func (p *pdService) MoveRegion(ctx context.Context, req *rpcpb.MoveRegionRequest) (*pb.AdminResponse, error) {
	return p.admin(ctx, req.GetHeader(), &pb.MoveRegionRequest{RegionId: req.GetRegionId(), FromStore: req.GetFromStore(), ToStore: req.GetToStore()})
}

func (p *pdService) TransferLeader(ctx context.Context, req *rpcpb.TransferLeaderRequest) (*pb.AdminResponse, error) {
	return p.admin(ctx, req.GetHeader(), &pb.TransferLeaderRequest{RegionId: req.GetRegionId(), ToStore: req.GetToStore()})
}

func (p *pdService) DecommissionStore(ctx context.Context, req *rpcpb.DecommissionStoreRequest) (*pb.AdminResponse, error) {
	return p.admin(ctx, req.GetHeader(), &pb.DecommissionStoreRequest{StoreId: req.GetStoreId()})
}
