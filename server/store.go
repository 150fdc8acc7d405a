package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// StoreConfig configures a store process.
type StoreConfig struct {
	StoreID uint64
	Addr    string // gRPC listen address (":0" picks a port)
	// AdvertiseAddr is the address other stores and clients reach this one
	// at; default: the listener's address.
	AdvertiseAddr string
	PDAddr        string
	DataDir       string
	// Join: this store is not in PD's initial layout and joins the cluster.
	Join bool
	// Raft holds the store's tunables (tick interval, split threshold,
	// heartbeat intervals, ...); StoreID, PD and Join are set from above.
	Raft raftstore.Config
	// PDTimeout bounds how long a starting store waits for PD; default 30s.
	PDTimeout time.Duration
	Log       *slog.Logger
}

// item is what goroutines hand the store loop: an envelope for Receive, or
// a function to run on the loop (with the core store).
type item struct {
	env *pb.Envelope
	fn  func(*raftstore.Store)
}

// inboxLimit bounds the envelopes waiting for the loop; beyond it raft
// messages are dropped (raft resends) and KV requests answered StoreBusy.
const inboxLimit = 200_000

// Store is a running store: one goroutine (run) owns the core store; gRPC
// handlers and the transport hand it envelopes through the inbox.
type Store struct {
	cfg       StoreConfig
	log       *slog.Logger
	clusterID uint64
	pdID      uint64
	addr      string
	pdConn    *grpc.ClientConn
	pd        rpcpb.PDClient
	st        *raftstore.Store
	in        *inbox[item]
	tr        *transport
	lis       net.Listener
	grpc      *grpc.Server
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	failed    atomic.Pointer[error]
	nextNode  atomic.Uint64
	metrics   *storeMetrics
}

// StartStore connects to PD, claims the data directory, recovers the store
// from it, registers with PD and serves until Close.
func StartStore(ctx context.Context, cfg StoreConfig) (*Store, error) {
	if cfg.StoreID == 0 || cfg.StoreID >= PDNodeID {
		return nil, fmt.Errorf("store: id %d: must be between 1 and %d", cfg.StoreID, uint64(PDNodeID-1))
	}
	if cfg.DataDir == "" {
		return nil, errors.New("store: no data directory")
	}
	if cfg.PDTimeout <= 0 {
		cfg.PDTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("store", cfg.StoreID)
	s := &Store{cfg: cfg, log: log, in: newInbox[item](inboxLimit),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.nextNode.Store(clientNodeBase)
	s.metrics = newStoreMetrics(s)
	conn, err := Dial(cfg.PDAddr)
	if err != nil {
		return nil, fmt.Errorf("store %d: PD: %w", cfg.StoreID, err)
	}
	s.pdConn, s.pd = conn, rpcpb.NewPDClient(conn)
	ok := false
	defer func() {
		if !ok {
			s.release()
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, cfg.PDTimeout)
	info, err := ClusterInfo(pctx, conn)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("store %d: %w", cfg.StoreID, err)
	}
	s.clusterID, s.pdID = info.GetClusterId(), info.GetPdId()
	if err := claim(cfg.DataDir, identity{ClusterID: s.clusterID, Role: "store", StoreID: cfg.StoreID}); err != nil {
		return nil, fmt.Errorf("store %d: %w", cfg.StoreID, err)
	}
	if s.lis, err = Listen(cfg.Addr); err != nil {
		return nil, fmt.Errorf("store %d: %w", cfg.StoreID, err)
	}
	s.addr = cfg.AdvertiseAddr
	if s.addr == "" {
		s.addr = s.lis.Addr().String()
	}
	s.tr = newTransport(s)
	rcfg := cfg.Raft
	rcfg.StoreID, rcfg.PD, rcfg.Join = cfg.StoreID, s.pdID, cfg.Join
	env := core.Env{Clock: wallClock{}, Net: s.tr, FS: timedFS{FS: vfs.Default, h: s.metrics.fsyncSecs}, Dir: filepath.Join(cfg.DataDir, "raft"),
		Rand: newRand(), Log: cfg.Log}
	if s.st, err = raftstore.Open(env, rcfg); err != nil {
		return nil, fmt.Errorf("store %d: open data directory %s: %w", cfg.StoreID, cfg.DataDir, err)
	}
	// Register (or refresh the address PD knows) before serving; PD's
	// answer bootstraps a new store. PD refuses a store that bootstrapped
	// before and comes back without its data (an empty data directory).
	hctx, cancel := context.WithTimeout(ctx, cfg.PDTimeout)
	boot, err := s.pd.StoreHello(hctx, &rpcpb.StoreHelloRequest{Header: s.header(),
		Hello: &pb.StoreHello{StoreId: cfg.StoreID, Address: s.addr, Join: cfg.Join, Bootstrapped: s.st.Bootstrapped()}})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("store %d: register with PD at %s: %v", cfg.StoreID, cfg.PDAddr, errorMessage(err))
	}
	if boot.GetError() != "" {
		return nil, fmt.Errorf("store %d: PD refused it: %s", cfg.StoreID, boot.GetError())
	}
	s.in.Put(item{env: pb.NewEnvelope(s.pdID, cfg.StoreID, boot)})
	s.grpc = grpc.NewServer(serverOptions()...)
	rpcpb.RegisterRaftServiceServer(s.grpc, &raftService{s: s})
	rpcpb.RegisterKvServiceServer(s.grpc, &kvService{s: s})
	rpcpb.RegisterStoreAdminServer(s.grpc, &adminService{s: s})
	reflection.Register(s.grpc)
	s.tr.start()
	// Read before the loop starts: from then on the store is the loop's.
	incarnation, bootstrapped := s.st.Incarnation(), s.st.Bootstrapped()
	go s.run()
	go func() {
		if err := s.grpc.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("store: grpc serve", "err", err)
		}
	}()
	ok = true
	s.log.Info("store: serving", "addr", s.addr, "cluster_id", s.clusterID, "data", cfg.DataDir,
		"incarnation", incarnation, "bootstrapped", bootstrapped)
	return s, nil
}

// release frees what a failed start opened.
func (s *Store) release() {
	if s.lis != nil {
		s.lis.Close()
	}
	if s.st != nil {
		s.st.Close()
	}
	if s.pdConn != nil {
		s.pdConn.Close()
	}
}

func (s *Store) header() *rpcpb.Header {
	return &rpcpb.Header{ClusterId: s.clusterID, Sender: s.cfg.StoreID}
}

// Addr is the address the store serves on.
func (s *Store) Addr() string { return s.addr }

// ID is the store id.
func (s *Store) ID() uint64 { return s.cfg.StoreID }

// ClusterID is the cluster's id.
func (s *Store) ClusterID() uint64 { return s.clusterID }

// Done is closed when the store has stopped (Close, or a disk failure:
// then Err says why).
func (s *Store) Done() <-chan struct{} { return s.done }

// Err is why the store stopped on its own, or nil.
func (s *Store) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops serving (in-flight calls get a moment to finish), stops the
// loop and closes the data directory. Everything synced survives.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(500 * time.Millisecond):
			s.grpc.Stop()
		}
		close(s.stop)
		<-s.done
		s.tr.close()
		if err := s.st.Close(); err != nil {
			s.log.Warn("store: close", "err", err)
		}
		s.pdConn.Close()
		s.log.Info("store: stopped")
	})
}

// do runs fn on the loop with the core store and waits for it.
func (s *Store) do(ctx context.Context, fn func(*raftstore.Store)) error {
	done := make(chan struct{})
	s.in.Put(item{fn: func(st *raftstore.Store) { fn(st); close(done) }})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		return status.Error(codes.Unavailable, "store: stopped")
	}
}

// run is the store loop: the only goroutine that touches s.st.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.Raft.TickInterval)
	if s.cfg.Raft.TickInterval <= 0 {
		tick.Reset(raftstore.DefaultTickInterval)
	}
	defer tick.Stop()
	for {
		if !s.st.NeedsFlush() {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.st.Tick()
			case <-s.in.signal:
			}
		} else {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.st.Tick()
			default:
			}
		}
		s.drain()
		if err := s.st.Err(); err != nil {
			s.stopRefused(err)
			return
		}
		if s.st.NeedsFlush() {
			start := time.Now()
			err := s.st.Flush()
			s.metrics.flushed(time.Since(start))
			if err != nil {
				s.fail(err)
				return
			}
		}
	}
}

// stopRefused stops a store PD refused (its hello was answered with an
// error after Start: see raftstore.Store.Err).
func (s *Store) stopRefused(err error) {
	s.failed.Store(&err)
	s.log.Error("store: refused by PD; stopped", "err", err)
	go s.grpc.Stop()
}

// drain hands everything queued to the core store.
func (s *Store) drain() {
	items := s.in.Take()
	for i := range items {
		it := &items[i]
		if it.fn != nil {
			it.fn(s.st)
		} else {
			s.metrics.received(it.env)
			s.st.Receive(it.env)
		}
	}
}

// fail stops a store whose disk failed (fail-stop): it must be restarted,
// and recovers from what was synced.
func (s *Store) fail(err error) {
	err = fmt.Errorf("store %d stopped on a disk failure (restart it to recover): %w", s.cfg.StoreID, err)
	s.failed.Store(&err)
	s.log.Error("store: ready round failed", "err", err)
	go s.grpc.Stop()
}

// newClientNode is a node id for one client stream or call, unique in
// this process.
func (s *Store) newClientNode() uint64 { return s.nextNode.Add(1) }
