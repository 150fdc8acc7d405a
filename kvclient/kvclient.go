// Package kvclient is the Go client of a multiraft cluster: context-aware
// Get, Put, Delete, Scan and CompareAndSwap, safe for concurrent use.
//
// It routes each key to the store leading its region, from a region cache
// filled from PD, and retries region errors (not leader, stale epoch, split
// under way, busy store) as the simulator's clients do: the routing and
// retry logic is core/client, owned here by one goroutine, the same code
// the simulator checks for linearizability. Requests to one store from all
// the goroutines sharing a Client travel batched on one stream.
//
// A write whose outcome cannot be known (the store did not answer in time)
// fails with an error matching ErrAmbiguous: it may or may not have been
// applied, and it is not retried (a retry could apply it twice). A call
// whose context is already done sends nothing and fails with the context's
// error. Every call copies the keys and values it is given: the caller may
// reuse its buffers as soon as the call returns, even when a write it gave
// up on is still under way.
//
//	c, err := kvclient.New(ctx, kvclient.Config{PD: "127.0.0.1:2379"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer c.Close()
//	if _, err := c.Put(ctx, []byte("greeting"), []byte("hello")); err != nil {
//		log.Fatal(err)
//	}
//	v, err := c.Get(ctx, []byte("greeting"))
//	fmt.Printf("%s (version %d, found %v) %v\n", v.Value, v.Version, v.Found, err)
package kvclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/client"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// Config configures a Client.
type Config struct {
	PD string // PD's address, host:port
	// ClusterID, when set, must be the cluster's (PD's) id.
	ClusterID uint64
	// Retry and timeout policy (AttemptTimeout, OpTimeout, MaxAttempts,
	// backoff); zero fields take core/client's defaults. ID and PD are set
	// by New.
	Retry client.Config
	// DialTimeout bounds how long New waits for PD; default 10s.
	DialTimeout time.Duration
	// TickInterval is how often timeouts and backoffs are checked;
	// default 5ms.
	TickInterval time.Duration
	Log          *slog.Logger
}

// Errors the calls return (test with errors.Is).
var (
	// ErrAmbiguous: a write may or may not have been applied.
	ErrAmbiguous = errors.New("kvclient: outcome unknown")
	// ErrFailed: the operation definitely did not take effect.
	ErrFailed = errors.New("kvclient: failed")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("kvclient: closed")
)

// Value is what Get returns.
type Value struct {
	Found   bool
	Value   []byte
	Version uint64 // 0 when not found; grows by one with every write of the key
}

// KV is one pair a Scan returns.
type KV struct {
	Key, Value []byte
	Version    uint64
}

// Client is a multiraft client. Its methods may be called from any number
// of goroutines.
type Client struct {
	cfg       Config
	log       *slog.Logger
	clusterID uint64
	pdID      uint64
	id        uint64
	pdConn    *grpc.ClientConn
	pd        rpcpb.PDClient
	core      *client.Client // owned by run
	in        *queue
	waiters   map[uint64]chan client.Completion // owned by run
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	stores map[uint64]*storeConn
	addrs  map[uint64]string
	conns  map[string]*grpc.ClientConn
	wg     sync.WaitGroup
}

// New connects to PD and returns a client. It fails when PD cannot be
// reached within Config.DialTimeout, or belongs to another cluster than
// Config.ClusterID.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 5 * time.Millisecond
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := server.Dial(cfg.PD)
	if err != nil {
		return nil, fmt.Errorf("kvclient: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	info, err := server.ClusterInfo(dctx, conn)
	cancel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("kvclient: %w", err)
	}
	if cfg.ClusterID != 0 && cfg.ClusterID != info.GetClusterId() {
		conn.Close()
		return nil, fmt.Errorf("kvclient: PD at %s serves cluster %d, not %d", cfg.PD, info.GetClusterId(), cfg.ClusterID)
	}
	c := &Client{cfg: cfg, log: log, clusterID: info.GetClusterId(), pdID: info.GetPdId(),
		id: rand.Uint64()>>2 | 1<<61, pdConn: conn, pd: rpcpb.NewPDClient(conn), in: newQueue(),
		waiters: map[uint64]chan client.Completion{}, stop: make(chan struct{}), done: make(chan struct{}),
		stores: map[uint64]*storeConn{}, addrs: map[uint64]string{}, conns: map[string]*grpc.ClientConn{}}
	rcfg := cfg.Retry
	rcfg.ID, rcfg.PD = c.id, c.pdID
	c.core = client.New(core.Env{Clock: wallClock{}, Net: (*transport)(c), Rand: rand.NewPCG(rand.Uint64(), rand.Uint64()), Log: log}, rcfg)
	go c.run()
	return c, nil
}

// ClusterID is the id of the cluster the client talks to.
func (c *Client) ClusterID() uint64 { return c.clusterID }

// Close stops the client; calls in flight fail with ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.mu.Lock()
		for _, s := range c.stores {
			s.cancel()
		}
		c.mu.Unlock()
		c.wg.Wait()
		c.mu.Lock()
		for _, cc := range c.conns {
			cc.Close()
		}
		c.mu.Unlock()
		c.pdConn.Close()
	})
	return nil
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// request is one call waiting to be submitted by the loop.
type request struct {
	op   client.Op
	done chan client.Completion
}

// queue carries what the loop must handle: new requests and replies.
type queue struct {
	mu      sync.Mutex
	reqs    []request
	replies []*pb.Envelope
	signal  chan struct{}
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

func (q *queue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue) submit(r request) {
	q.mu.Lock()
	q.reqs = append(q.reqs, r)
	q.mu.Unlock()
	q.wake()
}

func (q *queue) reply(es ...*pb.Envelope) {
	q.mu.Lock()
	q.replies = append(q.replies, es...)
	q.mu.Unlock()
	q.wake()
}

func (q *queue) take() ([]request, []*pb.Envelope) {
	q.mu.Lock()
	r, e := q.reqs, q.replies
	q.reqs, q.replies = nil, nil
	q.mu.Unlock()
	return r, e
}

// run owns the core client: it submits requests, hands it replies, ticks
// it, and wakes the callers whose ops completed.
func (c *Client) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			for id, ch := range c.waiters {
				ch <- client.Completion{ID: id, Outcome: client.Failed, Err: ErrClosed}
			}
			return
		case <-t.C:
			c.core.Tick()
		case <-c.in.signal:
		}
		reqs, replies := c.in.take()
		for _, e := range replies {
			c.core.Receive(e)
		}
		for _, r := range reqs {
			c.waiters[c.core.Submit(r.op)] = r.done
		}
		for _, comp := range c.core.Completed() {
			if ch := c.waiters[comp.ID]; ch != nil {
				ch <- comp
				delete(c.waiters, comp.ID)
			}
		}
	}
}

// do submits op and waits for it or for ctx.
func (c *Client) do(ctx context.Context, op client.Op) (client.Completion, error) {
	done := make(chan client.Completion, 1)
	select {
	case <-c.stop:
		return client.Completion{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return client.Completion{}, err // not submitted: nothing was written
	}
	// The loop takes the op later: it must not read the caller's buffers,
	// which are the caller's again once this returns.
	op.Key, op.Value = bytes.Clone(op.Key), bytes.Clone(op.Value)
	op.Start, op.End = bytes.Clone(op.Start), bytes.Clone(op.End)
	c.in.submit(request{op: op, done: done})
	select {
	case comp := <-done:
		switch comp.Outcome {
		case client.OK:
			return comp, nil
		case client.Ambiguous:
			return comp, fmt.Errorf("%w: %s %q: %w", ErrAmbiguous, op.Kind, opKey(op), comp.Err)
		default:
			if errors.Is(comp.Err, ErrClosed) {
				return comp, ErrClosed
			}
			return comp, fmt.Errorf("%w: %s %q: %w", ErrFailed, op.Kind, opKey(op), comp.Err)
		}
	case <-c.done:
		return client.Completion{}, ErrClosed
	case <-ctx.Done():
		if op.Kind.IsWrite() {
			return client.Completion{}, fmt.Errorf("%w: %s %q: %w", ErrAmbiguous, op.Kind, opKey(op), ctx.Err())
		}
		return client.Completion{}, ctx.Err()
	}
}

func opKey(op client.Op) []byte {
	if op.Kind == client.Scan {
		return op.Start
	}
	return op.Key
}

// Get reads key. A key never written (or deleted) is not Found.
func (c *Client) Get(ctx context.Context, key []byte) (Value, error) {
	comp, err := c.do(ctx, client.Op{Kind: client.Get, Key: key})
	if err != nil {
		return Value{}, err
	}
	return Value{Found: comp.Found, Value: comp.Value, Version: comp.Version}, nil
}

// Put writes key and returns its new version.
func (c *Client) Put(ctx context.Context, key, value []byte) (uint64, error) {
	comp, err := c.do(ctx, client.Op{Kind: client.Put, Key: key, Value: value})
	return comp.Version, err
}

// Delete removes key and reports whether it was there.
func (c *Client) Delete(ctx context.Context, key []byte) (bool, error) {
	comp, err := c.do(ctx, client.Op{Kind: client.Delete, Key: key})
	return comp.Deleted, err
}

// CompareAndSwap writes value if key's version is expected (0: only if the
// key is absent). It returns whether it wrote, and the key's version: the
// new one on success, the current one otherwise.
func (c *Client) CompareAndSwap(ctx context.Context, key []byte, expected uint64, value []byte) (bool, uint64, error) {
	comp, err := c.do(ctx, client.Op{Kind: client.Cas, Key: key, ExpectedVersion: expected, Value: value})
	return comp.CasSucceeded, comp.Version, err
}

// Scan returns the pairs in [start, end) in key order (empty end: to the
// end of the keyspace), at most limit of them (0: no limit). A scan over
// several regions reads each region at its own moment.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit int) ([]KV, error) {
	comp, err := c.do(ctx, client.Op{Kind: client.Scan, Start: start, End: end, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]KV, len(comp.Pairs))
	for i, p := range comp.Pairs {
		out[i] = KV{Key: p.GetKey(), Value: p.GetValue(), Version: p.GetVersion()}
	}
	return out, nil
}
