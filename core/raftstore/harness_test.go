package raftstore_test

import (
	"bytes"
	cryptorand "crypto/rand"
	"flag"
	"fmt"
	"hash"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
)

// A tiny deterministic cluster: fake clock, FIFO in-memory network, one
// MemFS per store, the real PD. etcd raft draws its election jitter from
// crypto/rand.Reader; the harness replaces that reader, for the length of a
// test, with a stream seeded from the test's name (or -raftstore.seed), so a
// failing test replays exactly. Tests in this package must not run in
// parallel. Every wait below is still bounded by a tick budget.

const (
	pdNode     = 100
	clientNode = 1000
	tick       = 100 * time.Millisecond
	// maxRounds bounds one delivery burst (no ticks): a burst that does not
	// quiesce means a message storm.
	maxRounds = 10000
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// fakeNet queues every envelope; the cluster delivers them in FIFO order.
// Envelopes are cloned on send, as a real network would serialize them, so
// that no two nodes share a protobuf.
type fakeNet struct {
	q    []*pb.Envelope
	hash hash.Hash64 // of every envelope sent, in order: the run's fingerprint
}

func (n *fakeNet) Send(e *pb.Envelope) {
	n.q = append(n.q, proto.Clone(e).(*pb.Envelope))
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("harness: encode envelope: %v", err))
	}
	n.hash.Write(b)
}

var raftSeed = flag.Uint64("raftstore.seed", 0, "seed of raft's election jitter in the test harness (0: derived from the test's name)")

// seedRaft replaces crypto/rand.Reader, etcd raft's source of election
// jitter, with a seeded stream until the test ends, and returns the seed.
func seedRaft(t testing.TB) uint64 {
	seed := *raftSeed
	if seed == 0 {
		h := fnv.New64a()
		h.Write([]byte(t.Name()))
		seed = h.Sum64()
	}
	saved := cryptorand.Reader
	cryptorand.Reader = rng.Stream(seed, "raft")
	t.Cleanup(func() {
		cryptorand.Reader = saved
		if t.Failed() {
			t.Logf("raft jitter seed %d (replay: go test ./core/raftstore -run '^%s$' -raftstore.seed=%d)", seed, t.Name(), seed)
		}
	})
	return seed
}

type cluster struct {
	t      testing.TB
	clock  *fakeClock
	net    *fakeNet
	pd     *pd.PD
	cfg    raftstore.Config
	fs     map[uint64]vfs.FS
	stores map[uint64]*raftstore.Store // nil while a store is down
	ids    []uint64
	seed   uint64 // bumped on every open, so a reopened store has a new incarnation

	nextReq   uint64
	responses map[uint64]*pb.KvResponse // by request id
	dropped   int                       // envelopes to down stores
	// started: when each (session id, sequence) was first sent, unix ms:
	// send stamps it on every attempt, as a client does.
	started map[string]uint64
	// A deaf store receives nothing from other stores and PD, a mute one
	// sends nothing to them; clients still reach both.
	deaf, mute map[uint64]bool
	// filter, when set, sees every envelope before it is routed; returning
	// true drops it (a test may keep it and send it again later).
	filter func(*pb.Envelope) bool
}

func defaultConfig() raftstore.Config {
	return raftstore.Config{
		TickInterval:            tick,
		ElectionTicks:           10,
		HeartbeatTicks:          2,
		RegionHeartbeatInterval: time.Second,
		StoreHeartbeatInterval:  time.Second,
	}
}

// newCluster starts PD with regions cut at splitKeys (3 replicas on stores
// 1..3) and opens the stores. Nothing is bootstrapped until time runs.
func newCluster(t testing.TB, cfg raftstore.Config, splitKeys ...string) *cluster {
	t.Helper()
	return newClusterOf(t, cfg, 3, splitKeys...)
}

// newClusterOf is newCluster with stores 1..n; PD places 3 replicas of each
// region round-robin, so with one region the stores above 3 start empty.
func newClusterOf(t testing.TB, cfg raftstore.Config, n int, splitKeys ...string) *cluster {
	t.Helper()
	seedRaft(t)
	c := &cluster{
		t:         t,
		clock:     &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		net:       &fakeNet{hash: fnv.New64a()},
		cfg:       cfg,
		fs:        map[uint64]vfs.FS{},
		stores:    map[uint64]*raftstore.Store{},
		ids:       storeIDs(n),
		responses: map[uint64]*pb.KvResponse{},
		started:   map[string]uint64{},
		deaf:      map[uint64]bool{},
		mute:      map[uint64]bool{},
	}
	var keys [][]byte
	for _, k := range splitKeys {
		keys = append(keys, []byte(k))
	}
	// PD's schedulers stay off: tests order what they test (through PD's
	// manual orders, or as PD would); balancing on its own would move
	// replicas under them.
	p, err := pd.New(c.env(pdNode, nil), pd.Config{
		ID:                    pdNode,
		Layout:                pd.LayoutFromSplitKeys(keys, 3, c.ids),
		HeartbeatInterval:     time.Second,
		DisableReplicaChecker: true,
		DisableBalanceRegion:  true,
		DisableBalanceLeader:  true,
	})
	if err != nil {
		t.Fatalf("pd.New: %v", err)
	}
	c.pd = p
	for _, id := range c.ids {
		c.fs[id] = vfs.NewMem()
		c.start(id)
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			if st := c.stores[id]; st != nil {
				st.Close()
			}
		}
	})
	return c
}

func storeIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

func (c *cluster) env(id uint64, fs vfs.FS) core.Env {
	c.seed++
	return core.Env{
		Clock: c.clock,
		Net:   c.net,
		FS:    fs,
		Dir:   fmt.Sprintf("/store-%d", id),
		Rand:  rng.New(c.seed*1000 + id),
		Log:   slog.New(slog.DiscardHandler),
	}
}

// start opens store id on its MemFS (recovering whatever is there).
func (c *cluster) start(id uint64) {
	c.t.Helper()
	if c.stores[id] != nil {
		c.t.Fatalf("store %d is already running", id)
	}
	cfg := c.cfg
	cfg.StoreID, cfg.PD = id, pdNode
	st, err := raftstore.Open(c.env(id, c.fs[id]), cfg)
	if err != nil {
		c.t.Fatalf("open store %d: %v", id, err)
	}
	c.stores[id] = st
}

// stop closes store id; messages to it are dropped until it starts again.
func (c *cluster) stop(id uint64) {
	c.t.Helper()
	st := c.stores[id]
	if st == nil {
		c.t.Fatalf("store %d is not running", id)
	}
	if err := st.Close(); err != nil {
		c.t.Fatalf("close store %d: %v", id, err)
	}
	c.stores[id] = nil
}

func (c *cluster) store(id uint64) *raftstore.Store {
	c.t.Helper()
	st := c.stores[id]
	if st == nil {
		c.t.Fatalf("store %d is down", id)
	}
	return st
}

// deliver hands every queued envelope to its node, FIFO, flushing the
// stores after each pass, until the network is quiet.
func (c *cluster) deliver() {
	c.t.Helper()
	for round := 0; ; round++ {
		if round > maxRounds {
			c.t.Fatalf("network did not quiesce after %d delivery rounds (%d envelopes queued)", maxRounds, len(c.net.q))
		}
		c.round()
		if len(c.net.q) == 0 {
			return
		}
	}
}

// round delivers the envelopes queued now (not those they cause), then
// flushes the stores.
func (c *cluster) round() {
	c.t.Helper()
	q := c.net.q
	c.net.q = nil
	for _, e := range q {
		c.route(e)
	}
	c.flushAll()
}

func (c *cluster) route(e *pb.Envelope) {
	if c.filter != nil && c.filter(e) {
		c.dropped++
		return
	}
	if e.GetFrom() != clientNode && e.GetTo() != clientNode && (c.mute[e.GetFrom()] || c.deaf[e.GetTo()]) {
		c.dropped++
		return
	}
	switch to := e.GetTo(); {
	case to == pdNode:
		c.pd.Receive(e)
	case to == clientNode:
		if r := e.GetKvResponse(); r != nil {
			if _, dup := c.responses[r.GetRequestId()]; dup {
				c.t.Fatalf("request %d answered twice", r.GetRequestId())
			}
			c.responses[r.GetRequestId()] = r
		}
	default:
		if st := c.stores[to]; st != nil {
			st.Receive(e)
		} else {
			c.dropped++
		}
	}
}

func (c *cluster) flushAll() {
	c.t.Helper()
	for _, id := range c.ids {
		if st := c.stores[id]; st != nil && st.NeedsFlush() {
			if err := st.Flush(); err != nil {
				c.t.Fatalf("flush store %d: %v", id, err)
			}
		}
	}
}

// step advances the clock by one tick, ticks every running store and
// delivers until quiet.
func (c *cluster) step() {
	c.t.Helper()
	c.tickOnce()
	c.deliver()
}

// tickOnce advances the clock by one tick, ticks every running store and PD
// and flushes, without delivering anything.
func (c *cluster) tickOnce() {
	c.t.Helper()
	c.clock.now = c.clock.now.Add(tick)
	for _, id := range c.ids {
		if st := c.stores[id]; st != nil {
			st.Tick()
		}
	}
	c.pd.Tick()
	c.flushAll()
}

// waitFor steps until cond holds, failing after maxTicks with what.
func (c *cluster) waitFor(maxTicks int, what string, cond func() bool) {
	c.t.Helper()
	c.deliver()
	for i := 0; !cond(); i++ {
		if i >= maxTicks {
			c.t.Fatalf("gave up after %d ticks (%v of fake time) waiting for %s\n%s", maxTicks, time.Duration(maxTicks)*tick, what, c.describe())
		}
		c.step()
	}
}

// describe renders every store's regions, for failure messages.
func (c *cluster) describe() string {
	var b strings.Builder
	for _, id := range c.ids {
		st := c.stores[id]
		if st == nil {
			fmt.Fprintf(&b, "  store %d: down\n", id)
			continue
		}
		for _, rs := range st.Regions() {
			fmt.Fprintf(&b, "  store %d: region %d [%q,%q) v%d peer %d leader %d isLeader=%v term %d applied %d init=%v quiet=%v\n",
				id, rs.Region.GetId(), rs.Region.GetStartKey(), rs.Region.GetEndKey(), rs.Region.GetEpoch().GetVersion(),
				rs.PeerID, rs.Leader, rs.IsLeader, rs.Term, rs.Applied, rs.Initialized, rs.Quiet)
		}
	}
	return b.String()
}

// region returns store id's status of region rid, or nil.
func (c *cluster) region(id, rid uint64) *raftstore.RegionStatus {
	st := c.stores[id]
	if st == nil {
		return nil
	}
	for _, rs := range st.RegionsWithKeys() {
		if rs.Region.GetId() == rid {
			return &rs
		}
	}
	return nil
}

// isolate cuts store id off from the other stores and PD (or heals it).
func (c *cluster) isolate(id uint64, cut bool) {
	c.deaf[id], c.mute[id] = cut, cut
}

// connected lists the running stores that are neither deaf nor mute.
func (c *cluster) connected() []uint64 {
	var out []uint64
	for _, id := range c.ids {
		if c.stores[id] != nil && !c.deaf[id] && !c.mute[id] {
			out = append(out, id)
		}
	}
	return out
}

// leaderOf returns the store whose peer leads region rid, when exactly one
// connected store claims leadership and every connected replica agrees.
func (c *cluster) leaderOf(rid uint64) (uint64, bool) {
	var leader uint64
	var leaderPeer uint64
	for _, id := range c.connected() {
		rs := c.region(id, rid)
		if rs == nil || !rs.IsLeader {
			continue
		}
		if leader != 0 {
			return 0, false
		}
		leader, leaderPeer = id, rs.PeerID
	}
	if leader == 0 {
		return 0, false
	}
	for _, id := range c.connected() {
		if rs := c.region(id, rid); rs != nil && rs.Leader != leaderPeer {
			return 0, false
		}
	}
	return leader, true
}

// waitLeader waits until region rid has one agreed leader and returns its store.
func (c *cluster) waitLeader(rid uint64) uint64 {
	c.t.Helper()
	var leader uint64
	c.waitFor(200, fmt.Sprintf("a leader of region %d", rid), func() bool {
		var ok bool
		leader, ok = c.leaderOf(rid)
		return ok
	})
	return leader
}

// waitBootstrap runs until every store has bootstrapped and each of the
// given regions has a leader.
func (c *cluster) waitBootstrap(rids ...uint64) {
	c.t.Helper()
	c.waitFor(50, "every store to bootstrap", func() bool {
		for _, id := range c.ids {
			if !c.store(id).Bootstrapped() {
				return false
			}
		}
		return true
	})
	for _, rid := range rids {
		c.waitLeader(rid)
	}
}

// ---- KV calls

// send queues req from the client to store and returns its request id. A
// session write without started_ms gets the time its (session, sequence)
// was first sent, as the client would give it.
func (c *cluster) send(store uint64, req *pb.KvRequest) uint64 {
	if s := req.GetSession(); s != nil && s.StartedMs == 0 {
		k := fmt.Sprintf("%x/%d", s.GetId(), s.GetSequence())
		if c.started[k] == 0 {
			c.started[k] = uint64(c.clock.now.UnixMilli())
		}
		s.StartedMs = c.started[k]
	}
	return c.post(store, req)
}

// post queues req from the client to store as it is and returns its
// request id.
func (c *cluster) post(store uint64, req *pb.KvRequest) uint64 {
	c.nextReq++
	req.RequestId = c.nextReq
	c.net.Send(&pb.Envelope{From: clientNode, To: store, Body: &pb.Envelope_KvRequest{KvRequest: req}})
	return req.RequestId
}

// await waits for the answer to request id.
func (c *cluster) await(id uint64) *pb.KvResponse {
	c.t.Helper()
	c.waitFor(100, fmt.Sprintf("an answer to request %d", id), func() bool {
		return c.responses[id] != nil
	})
	resp := c.responses[id]
	delete(c.responses, id)
	return resp
}

// call sends req from the client to store and waits for the answer.
func (c *cluster) call(store uint64, req *pb.KvRequest) *pb.KvResponse {
	c.t.Helper()
	return c.await(c.send(store, req))
}

// meta is region rid as store id knows it.
func (c *cluster) meta(id, rid uint64) *pb.Region {
	c.t.Helper()
	rs := c.region(id, rid)
	if rs == nil {
		c.t.Fatalf("store %d has no region %d\n%s", id, rid, c.describe())
	}
	return rs.Region
}

// header routes to region rid with the epoch its leader (store) knows.
func (c *cluster) header(store, rid uint64) *pb.RequestHeader {
	return &pb.RequestHeader{RegionId: rid, RegionEpoch: c.meta(store, rid).GetEpoch()}
}

// ok calls the leader of rid and fails the test on a region error. The two
// errors that say the operation was not applied and never will be
// (NotLeader, StaleCommand) are retried at the current leader, so the
// outcome of every call is known exactly.
func (c *cluster) ok(rid uint64, op func(*pb.KvRequest)) *pb.KvResponse {
	c.t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		leader := c.waitLeader(rid)
		req := &pb.KvRequest{Header: c.header(leader, rid)}
		op(req)
		resp := c.call(leader, req)
		e := resp.GetRegionError()
		if e == nil {
			return resp
		}
		if e.GetNotLeader() == nil && e.GetStaleCommand() == nil {
			c.t.Fatalf("request %v to store %d: region error %v", req, leader, e)
		}
	}
	c.t.Fatalf("region %d: no stable leader after 5 attempts\n%s", rid, c.describe())
	return nil
}

func put(k, v string) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) {
		r.Op = &pb.KvRequest_Put{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
	}
}

func get(k string) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) { r.Op = &pb.KvRequest_Get{Get: &pb.GetRequest{Key: []byte(k)}} }
}

func del(k string) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) { r.Op = &pb.KvRequest_Delete{Delete: &pb.DeleteRequest{Key: []byte(k)}} }
}

func cas(k string, expected uint64, v string) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) {
		r.Op = &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: []byte(k), ExpectedVersion: expected, Value: []byte(v)}}
	}
}

func scan(start, end string, limit uint32) func(*pb.KvRequest) {
	return func(r *pb.KvRequest) {
		r.Op = &pb.KvRequest_Scan{Scan: &pb.ScanRequest{StartKey: []byte(start), EndKey: []byte(end), Limit: limit}}
	}
}

// mustGet reads k through the leader of rid and checks value and version.
func (c *cluster) mustGet(rid uint64, k, value string, version uint64) {
	c.t.Helper()
	g := c.ok(rid, get(k)).GetGet()
	if !g.GetFound() || string(g.GetValue()) != value || g.GetVersion() != version {
		c.t.Fatalf("get %q in region %d = (found %v, %q, v%d), want (%q, v%d)", k, rid, g.GetFound(), g.GetValue(), g.GetVersion(), value, version)
	}
}

func scanKeys(resp *pb.KvResponse) string {
	var ks []string
	for _, p := range resp.GetScan().GetPairs() {
		ks = append(ks, string(p.GetKey()))
	}
	return strings.Join(ks, ",")
}

// keysOf is the sorted key list of store id's replica of region rid.
func (c *cluster) keysOf(id, rid uint64) string {
	rs := c.region(id, rid)
	if rs == nil {
		return "<no region>"
	}
	ks := make([]string, len(rs.Keys))
	for i, k := range rs.Keys {
		ks[i] = string(k)
	}
	if !slices.IsSorted(ks) {
		c.t.Fatalf("store %d region %d keys not sorted: %v", id, rid, ks)
	}
	return strings.Join(ks, ",")
}

// waitReplicas waits until every running store's replica of rid holds
// exactly the keys want (comma separated).
func (c *cluster) waitReplicas(rid uint64, want string) {
	c.t.Helper()
	c.waitFor(100, fmt.Sprintf("every replica of region %d to hold keys %q", rid, want), func() bool {
		for _, id := range c.ids {
			if c.stores[id] != nil && c.keysOf(id, rid) != want {
				return false
			}
		}
		return true
	})
}

func sameRange(r *pb.Region, start, end string) bool {
	return bytes.Equal(r.GetStartKey(), []byte(start)) && bytes.Equal(r.GetEndKey(), []byte(end))
}

// leadFrom makes store id lead region rid (transferring leadership to it if
// another store leads) and waits until it does.
func (c *cluster) leadFrom(id, rid uint64) {
	c.t.Helper()
	if cur := c.waitLeader(rid); cur != id {
		if err := c.store(cur).TransferLeader(rid, c.region(id, rid).PeerID); err != nil {
			c.t.Fatalf("transfer leader of region %d to store %d: %v", rid, id, err)
		}
	}
	c.waitFor(100, fmt.Sprintf("store %d to lead region %d", id, rid), func() bool {
		l, ok := c.leaderOf(rid)
		return ok && l == id
	})
}

// restartAll stops every store, then starts them all again from disk.
func (c *cluster) restartAll() {
	c.t.Helper()
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
}

// TestHarnessIsDeterministic runs the same workload, with elections and a
// leader crash, twice under one test name: every envelope sent must be the
// same, so a failing test in this package replays exactly.
func TestHarnessIsDeterministic(t *testing.T) {
	saved := *raftSeed
	defer func() { *raftSeed = saved }()
	*raftSeed = 42
	run := func() uint64 {
		var fp uint64
		t.Run("run", func(t *testing.T) {
			c := newCluster(t, defaultConfig(), "m")
			c.waitBootstrap(1, 5)
			leader := c.waitLeader(1)
			c.ok(1, put("a", "1"))
			c.stop(leader)
			c.waitFor(200, "a new leader", func() bool {
				l, ok := c.leaderOf(1)
				return ok && l != leader
			})
			c.start(leader)
			c.ok(1, put("b", "2"))
			fp = c.net.hash.Sum64()
		})
		return fp
	}
	a, b := run(), run()
	if a != b {
		t.Fatalf("same seed, different runs: envelope hashes %x and %x", a, b)
	}
}
