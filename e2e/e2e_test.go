package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/kvclient"
	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// cluster is PD and stores as processes.
type cluster struct {
	t      *testing.T
	dir    string
	pdAddr string
	pd     *proc
	stores map[uint64]*proc
	conn   *pdConn
}

type pdConn struct {
	c rpcpb.PDClient
	h *rpcpb.Header
}

func startCluster(t *testing.T, stores int, splitKeys string) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), stores: map[uint64]*proc{}}
	c.startPD("127.0.0.1:0", stores, splitKeys)
	c.pdAddr = c.pd.addr
	for id := uint64(1); id <= uint64(stores); id++ {
		c.startStore(id)
	}
	conn, err := server.Dial(c.pdAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := server.ClusterInfo(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	c.conn = &pdConn{c: rpcpb.NewPDClient(conn), h: &rpcpb.Header{ClusterId: info.GetClusterId()}}
	return c
}

func (c *cluster) startPD(addr string, stores int, splitKeys string) {
	c.pd = start(c.t, "pd", filepath.Join(c.dir, "pd.log"), "pd", "--addr", addr, "--http", "",
		"--data", filepath.Join(c.dir, "pd"), "--stores", fmt.Sprint(stores), "--replicas", "3",
		"--split-keys", splitKeys, "--heartbeat", "200ms", "--no-balance", "--log-level", "debug")
}

func (c *cluster) startStore(id uint64) {
	c.stores[id] = start(c.t, fmt.Sprintf("store%d", id), filepath.Join(c.dir, fmt.Sprintf("store%d.log", id)),
		"store", "--id", fmt.Sprint(id), "--addr", "127.0.0.1:0", "--pd", c.pdAddr,
		"--data", filepath.Join(c.dir, fmt.Sprintf("store%d", id)), "--tick", "20ms", "--split-threshold", "2000",
		"--log-level", "debug")
}

// regionInfos lists PD's routing view (nil on error).
func (c *cluster) regionInfos() []*regionInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.conn.c.ListRegions(ctx, &rpcpb.ListRegionsRequest{Header: c.conn.h})
	if err != nil {
		return nil
	}
	var out []*regionInfo
	for _, ri := range resp.GetRegions() {
		r := &regionInfo{id: ri.GetRegion().GetId(), start: string(ri.GetRegion().GetStartKey()),
			end: string(ri.GetRegion().GetEndKey()), leader: ri.GetLeader().GetStoreId()}
		for _, p := range ri.GetRegion().GetPeers() {
			r.stores = append(r.stores, p.GetStoreId())
		}
		out = append(out, r)
	}
	return out
}

type regionInfo struct {
	id     uint64
	start  string
	end    string
	leader uint64
	stores []uint64
}

func (r *regionInfo) on(store uint64) bool {
	for _, s := range r.stores {
		if s == store {
			return true
		}
	}
	return false
}

// workload is clients writing and reading all ranges, recording a history.
type workload struct {
	start   time.Time
	mu      sync.Mutex
	ops     []checker.Op
	ok      atomic.Int64
	writes  atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	keys    []string
	padding string
}

func newWorkload(nkeys int) *workload {
	w := &workload{start: time.Now(), stop: make(chan struct{}), padding: strings.Repeat("x", 150)}
	for i := 0; i < nkeys; i++ {
		w.keys = append(w.keys, fmt.Sprintf("k%02d", i))
	}
	return w
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

func (w *workload) record(op checker.Op) {
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
	if op.Outcome == checker.OutcomeOK {
		w.ok.Add(1)
	}
}

// outcome maps a kvclient error to the checker's outcome.
func outcome(err error) checker.Outcome {
	switch {
	case err == nil:
		return checker.OutcomeOK
	case errors.Is(err, kvclient.ErrAmbiguous):
		return checker.OutcomeAmbiguous
	}
	return checker.OutcomeFailed
}

func (w *workload) run(id int, c *kvclient.Client, seed uint64) {
	defer w.wg.Done()
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	versions := map[string]uint64{}
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := w.keys[r.IntN(len(w.keys))]
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		op := checker.Op{ClientID: id, Key: key, Call: w.now()}
		switch x := r.IntN(100); {
		case x < 45:
			op.Kind = checker.OpPut
			op.Value = fmt.Sprintf("c%d-%d-%s", id, seq, w.padding)
			v, err := c.Put(ctx, []byte(key), []byte(op.Value))
			op.Outcome, op.Version = outcome(err), v
			w.writes.Add(1)
		case x < 55:
			op.Kind = checker.OpCas
			op.ExpectedVersion = versions[key]
			op.Value = fmt.Sprintf("c%d-%d-cas", id, seq)
			ok, v, err := c.CompareAndSwap(ctx, []byte(key), op.ExpectedVersion, []byte(op.Value))
			op.Outcome, op.CasSucceeded, op.Version = outcome(err), ok, v
			if err == nil {
				versions[key] = v
			}
		case x < 60:
			op.Kind = checker.OpDelete
			ok, err := c.Delete(ctx, []byte(key))
			op.Outcome, op.Deleted = outcome(err), ok
		case x < 92:
			op.Kind = checker.OpGet
			v, err := c.Get(ctx, []byte(key))
			op.Outcome, op.Found, op.ResultValue, op.Version = outcome(err), v.Found, string(v.Value), v.Version
			if err == nil {
				versions[key] = v.Version
			}
		default:
			op.Kind, op.Key = checker.OpScan, ""
			op.ScanStart = w.keys[r.IntN(len(w.keys))]
			op.ScanEnd = op.ScanStart + "~"
			if r.IntN(2) == 0 {
				op.ScanEnd = ""
				op.ScanLimit = 5
			}
			kvs, err := c.Scan(ctx, []byte(op.ScanStart), []byte(op.ScanEnd), op.ScanLimit)
			op.Outcome = outcome(err)
			for _, kv := range kvs {
				op.Pairs = append(op.Pairs, checker.Pair{Key: string(kv.Key), Value: string(kv.Value), Version: kv.Version})
			}
		}
		cancel()
		op.Return = w.now()
		w.record(op)
	}
}

// progress waits until n more ops have succeeded.
func (w *workload) progress(t *testing.T, n int64, what string) {
	t.Helper()
	target := w.ok.Load() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more successful ops (%s)", n, what), func() bool { return w.ok.Load() >= target })
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	c := startCluster(t, 4, "k3,k6")
	ctx := context.Background()
	var clients []*kvclient.Client
	for i := 0; i < 2; i++ {
		cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pdAddr})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients = append(clients, cl)
	}
	w := newWorkload(60)
	for i := 0; i < 8; i++ {
		w.wg.Add(1)
		go w.run(i, clients[i%2], 42)
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(w.stop)
			w.wg.Wait()
		}
	}
	defer stopLoad()
	w.progress(t, 300, "warm up")

	// 1. A store killed with SIGKILL under load, then restarted.
	t.Log("kill -9 store 1")
	c.stores[1].kill()
	w.progress(t, 100, "store 1 down")
	c.startStore(1)
	w.progress(t, 100, "store 1 back")

	// 2. A store killed while a split it leads is under way.
	var target *regionInfo
	var splitKey string
	waitFor(t, 10*time.Second, "a region with a leader and keys to split at", func() bool {
		for _, r := range c.regionInfos() {
			var inside []string
			for _, k := range w.keys {
				if k > r.start && (r.end == "" || k < r.end) {
					inside = append(inside, k)
				}
			}
			if r.leader != 0 && r.leader != 1 && len(inside) > 0 {
				target, splitKey = r, inside[len(inside)/2]
				return true
			}
		}
		return false
	})
	leader := c.stores[target.leader]
	conn, err := server.Dial(leader.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rpcpb.NewStoreAdminClient(conn).SplitRegion(ctx, &rpcpb.SplitRegionRequest{Header: c.conn.h, RegionId: target.id, SplitKey: []byte(splitKey)})
	conn.Close()
	t.Logf("split of region %d at %q asked of store %d (%v); kill -9 it", target.id, splitKey, target.leader, err)
	leader.kill()
	w.progress(t, 100, "split leader down")
	c.startStore(target.leader)
	w.progress(t, 100, "split leader back")

	// 3. PD restarted (SIGKILL, then the same address).
	t.Log("kill -9 PD")
	c.pd.kill()
	c.startPD(c.pdAddr, 4, "k3,k6")
	w.progress(t, 100, "PD back")

	// 4. A manual move: a region's replica to the store that lacks it.
	var moved *regionInfo
	var from, to uint64
	waitFor(t, 10*time.Second, "a region to move", func() bool {
		for _, r := range c.regionInfos() {
			for s := uint64(1); s <= 4; s++ {
				if !r.on(s) && len(r.stores) == 3 {
					moved, to = r, s
					from = r.stores[0]
					if from == r.leader {
						from = r.stores[1]
					}
					return true
				}
			}
		}
		return false
	})
	resp, err := c.conn.c.MoveRegion(ctx, &rpcpb.MoveRegionRequest{Header: c.conn.h, RegionId: moved.id, FromStore: from, ToStore: to})
	if err != nil || resp.GetError() != "" {
		t.Fatalf("move region %d from %d to %d: %v %s", moved.id, from, to, err, resp.GetError())
	}
	t.Logf("move region %d from store %d to store %d", moved.id, from, to)
	waitFor(t, 30*time.Second, "the move to finish", func() bool {
		for _, r := range c.regionInfos() {
			if r.id == moved.id {
				return r.on(to) && !r.on(from) && len(r.stores) == 3
			}
		}
		return false
	})
	w.progress(t, 100, "after the move")
	stopLoad()

	// Final reads of every key: nothing acknowledged may be lost.
	for _, k := range w.keys {
		var v kvclient.Value
		var err error
		op := checker.Op{ClientID: 99, Kind: checker.OpGet, Key: k, Call: w.now()}
		for attempt := 0; attempt < 5; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			v, err = clients[0].Get(cctx, []byte(k))
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("final read of %s: %v", k, err)
		}
		op.Return, op.Outcome, op.Found, op.ResultValue, op.Version = w.now(), checker.OutcomeOK, v.Found, string(v.Value), v.Version
		w.record(op)
	}
	regions := c.regionInfos()
	if len(regions) <= 3 {
		t.Errorf("no split happened: %d regions", len(regions))
	}
	var ambiguous, failed int
	for _, op := range w.ops {
		switch op.Outcome {
		case checker.OutcomeAmbiguous:
			ambiguous++
		case checker.OutcomeFailed:
			failed++
		}
	}
	t.Logf("%d ops (%d ok, %d failed, %d ambiguous), %d regions at the end", len(w.ops), w.ok.Load(), failed, ambiguous, len(regions))
	res := checker.CheckLinearizable(checker.History{Ops: w.ops, Keys: w.keys}, 60*time.Second)
	if !res.OK {
		path := filepath.Join(t.TempDir(), "history.html")
		res.WriteVisualization(path, nil)
		t.Fatalf("history is not linearizable (%s): %s", res.Verdict, res.Violation)
	}
	for id, p := range c.stores {
		if err := p.term(); err != nil {
			t.Errorf("store %d: %v", id, err)
		}
	}
	if err := c.pd.term(); err != nil {
		t.Errorf("pd: %v", err)
	}
}
