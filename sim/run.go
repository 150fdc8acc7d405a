package sim

import (
	"bytes"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/client"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
	"github.com/multiraft/multiraft/sim/simfs"
)

// runLock serialises runs: a run replaces crypto/rand.Reader.
var runLock sync.Mutex

// World is one simulation in progress.
type World struct {
	cfg  Config
	seed uint64
	k    *kernel
	rs   streams
	net  *netsim.Network
	log  *slog.Logger

	pd      *pd.PD
	stores  []*storeNode // index = id-1
	clients []*clientNode
	probe   *probe

	workloadOver bool
	keys         []string
	wall         func() time.Time // injected stopwatch, for the report only
	simWall      time.Duration
	history      []checker.Op
	annotations  []checker.Annotation
	epochs       checker.EpochMonitor
	violations   []string

	regionBorn        map[uint64]time.Duration
	splitDue          map[splitKey]time.Duration
	splitLatency      []time.Duration // split due to PD registration, per split
	splitApplyLatency []time.Duration // split due to first replica applying it
	pdVersion         map[uint64]uint64
	pdSeen            map[uint64]time.Duration
	onSplitProposed   []func(w *World, store, region uint64)
	onSplitApplied    []func(w *World, store uint64, left, right *pb.Region)
	firstLeader       map[uint64]time.Duration
	crashes           int
	tornTailCuts      uint64
	restarts          int
	diskFailures      int
	finalReadsSub     int
}

type storeNode struct {
	w                   *World
	id                  uint64
	ffs                 *simfs.FaultFS // the disk, with injected faults; crash images come from it
	st                  *raftstore.Store
	gen                 int // bumped on crash: events of older generations are void
	flushQueued         bool
	rand                *rng.Rand
	tickName, flushName string // trace names of its recurring events
}

func (n *storeNode) up() bool { return n.st != nil }

// transport sends envelopes from one node through the simulated network.
type transport struct {
	w    *World
	from uint64
}

func (t transport) Send(env *pb.Envelope) {
	env.From = t.from
	data, err := proto.Marshal(env)
	if err != nil {
		panic(fmt.Sprintf("sim: encode envelope: %v", err))
	}
	to := env.To
	for _, d := range t.w.net.Route(t.from, to) {
		t.w.k.after(d, "", func() { t.w.deliver(t.from, to, data) })
	}
}

type clock struct{ k *kernel }

func (c clock) Now() time.Time { return c.k.Now() }

// Run executes one simulation and checks it.
func Run(cfg Config, seed uint64, trace io.Writer) *Report {
	return RunTimed(cfg, seed, trace, nil)
}

// RunTimed is Run with a stopwatch: when wall is not nil (the command
// passes time.Now), the report says how long simulating and checking took.
// The simulation itself never reads it.
func RunTimed(cfg Config, seed uint64, trace io.Writer, wall func() time.Time) *Report {
	runLock.Lock()
	defer runLock.Unlock()
	w := newWorld(cfg, seed, trace)
	w.wall = wall
	var t0 time.Time
	if wall != nil {
		t0 = wall()
	}
	saved := cryptorand.Reader
	cryptorand.Reader = w.rs.raft
	w.run()
	cryptorand.Reader = saved
	if wall != nil {
		w.simWall = wall().Sub(t0)
	}
	return w.finish()
}

func newWorld(cfg Config, seed uint64, trace io.Writer) *World {
	w := &World{
		cfg:         cfg,
		seed:        seed,
		k:           newKernel(trace),
		rs:          newStreams(seed),
		log:         slog.New(slog.DiscardHandler),
		regionBorn:  map[uint64]time.Duration{},
		splitDue:    map[splitKey]time.Duration{},
		pdVersion:   map[uint64]uint64{},
		pdSeen:      map[uint64]time.Duration{},
		firstLeader: map[uint64]time.Duration{},
	}
	w.net = netsim.New(cfg.Net, w.rs.net)
	for i := 0; i < cfg.Workload.Keys; i++ {
		w.keys = append(w.keys, KeyName(i))
	}
	return w
}

// KeyName is the i-th key of the workload's universe. Keys are spread over
// the alphabet so that every initial region gets some.
func KeyName(i int) string {
	return fmt.Sprintf("%c%03d", 'a'+byte(i%26), i/26)
}

func (w *World) env(node uint64, fs vfs.FS, dir string, r *rng.Rand) core.Env {
	return core.Env{Clock: clock{w.k}, Net: transport{w, node}, FS: fs, Dir: dir, Rand: r, Log: w.log}
}

func (w *World) storeIDs() []uint64 {
	ids := make([]uint64, w.cfg.Stores)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

func (w *World) run() {
	cfg := w.cfg
	var split [][]byte
	for _, k := range cfg.SplitKeys {
		split = append(split, []byte(k))
	}
	p, err := pd.New(w.env(PDNode, nil, "", w.rs.node.Fork()), pd.Config{
		ID:                PDNode,
		Layout:            pd.LayoutFromSplitKeys(split, cfg.Replicas, w.storeIDs()),
		HeartbeatInterval: cfg.PDHeartbeat,
	})
	if err != nil {
		w.violations = append(w.violations, fmt.Sprintf("PD refused the layout: %v", err))
		return
	}
	w.pd = p
	for _, r := range p.Regions() {
		w.regionBorn[r.GetId()] = 0
	}
	w.schedulePDTick()
	for _, id := range w.storeIDs() {
		n := &storeNode{w: w, id: id, rand: w.rs.node.Fork(),
			tickName: fmt.Sprintf("tick s%d", id), flushName: fmt.Sprintf("flush s%d", id)}
		n.ffs = simfs.NewFaultFS(vfs.NewMem(), w.rs.disk.Fork())
		w.stores = append(w.stores, n)
		w.startStore(n)
	}
	for i := 0; i < cfg.Clients; i++ {
		w.addClient(i)
	}
	if cfg.Probe {
		w.probe = newProbe(w)
	}
	if cfg.Faults != nil {
		cfg.Faults(&Planner{w: w, Dur: cfg.Duration, R: w.rs.fault})
	}
	w.k.after(cfg.Duration, "workload over", w.endWorkload)
	for w.k.step(cfg.Duration + cfg.Settle) {
	}
	// Final reads were submitted at Duration+Settle; wait for them and for
	// every replica to catch up, checking every 100ms, within finalPhase.
	deadline := w.k.now + finalPhase
	for w.k.now < deadline {
		next := w.k.now + 100*time.Millisecond
		for w.k.step(next) {
		}
		w.k.now = next
		if w.clientsIdle() && w.converged() {
			break
		}
	}
	if !w.clientsIdle() {
		w.violate(fmt.Sprintf("client operations still pending %v after the final reads", finalPhase))
	}
	if !w.converged() {
		w.violate(fmt.Sprintf("replicas did not converge within %v after the workload", finalPhase))
	}
	// Let every leader report to PD once more before comparing views.
	hb := w.k.now + 2*w.cfg.Store.RegionHeartbeatInterval
	for w.k.step(hb) {
	}
	w.k.now = hb
}

// finalPhase bounds the final reads and convergence after Settle.
const finalPhase = 15 * time.Second

// ---- stores

func (w *World) startStore(n *storeNode) {
	scfg := w.cfg.Store
	scfg.StoreID = n.id
	scfg.PD = PDNode
	st, err := raftstore.Open(w.env(n.id, n.ffs, "/store", n.rand.Fork()), scfg)
	if err != nil {
		if errors.Is(err, simfs.ErrInjected) || errors.Is(err, simfs.ErrCrashed) {
			// The disk failed again while recovering: crash and retry later.
			w.k.note("store %d failed to open on an injected disk fault: %v", n.id, err)
			w.crashDisk(n)
			w.scheduleRestart(n)
			return
		}
		w.violate(fmt.Sprintf("store %d failed to open its disk: %v", n.id, err))
		return
	}
	st.SetHooks(raftstore.Hooks{
		LeaderChanged: func(region, leader uint64) {
			if leader != 0 {
				if _, ok := w.firstLeader[region]; !ok {
					w.firstLeader[region] = w.k.now
				}
			}
		},
		SplitDue: func(region, version uint64) {
			key := splitKey{region, version}
			if _, ok := w.splitDue[key]; !ok {
				w.splitDue[key] = w.k.now
			}
		},
		SplitProposed: func(region uint64) {
			for _, fn := range w.onSplitProposed {
				fn(w, n.id, region)
			}
		},
		SplitApplied: func(left, right *pb.Region) {
			w.k.note("store %d applied split of region %d at %q into %d", n.id, left.GetId(), right.GetStartKey(), right.GetId())
			if _, ok := w.regionBorn[right.GetId()]; !ok {
				w.regionBorn[right.GetId()] = w.k.now
				if due, ok := w.splitDue[splitKey{left.GetId(), left.GetEpoch().GetVersion() - 1}]; ok {
					w.splitApplyLatency = append(w.splitApplyLatency, w.k.now-due)
				}
			}
			for _, fn := range w.onSplitApplied {
				fn(w, n.id, left, right)
			}
		},
	})
	n.st = st
	w.tornTailCuts += st.EngineStats().TornTailCuts
	gen := n.gen
	// Stagger ticks so that stores do not tick in lockstep.
	w.k.after(time.Duration(n.rand.Int63n(int64(scfg.TickInterval))), "", func() { w.tickStore(n, gen) })
}

func (w *World) tickStore(n *storeNode, gen int) {
	if n.gen != gen || !n.up() {
		return
	}
	n.st.Tick()
	w.queueFlush(n)
	w.k.after(w.cfg.Store.TickInterval, n.tickName, func() { w.tickStore(n, gen) })
}

func (w *World) queueFlush(n *storeNode) {
	if n.flushQueued || !n.up() {
		return
	}
	n.flushQueued = true
	gen := n.gen
	w.k.after(w.cfg.DiskLatency.draw(w.rs.disk), n.flushName, func() {
		if n.gen != gen || !n.up() {
			return
		}
		n.flushQueued = false
		if err := n.st.Flush(); err != nil {
			if !errors.Is(err, simfs.ErrInjected) && !errors.Is(err, simfs.ErrCrashed) {
				w.violate(fmt.Sprintf("store %d: ready round failed without a disk fault: %v", n.id, err))
			}
			w.diskFailures++
			w.k.note("store %d disk failure: %v", n.id, err)
			w.crashStore(n)
			w.scheduleRestart(n)
			return
		}
		if n.st.NeedsFlush() {
			w.queueFlush(n)
		}
	})
}

// crashStore stops a store; its disk keeps what was synced and, at the
// seed's choice, some of what was not.
func (w *World) crashStore(n *storeNode) {
	if !n.up() {
		return
	}
	w.crashes++
	n.st.Close()
	n.st = nil
	n.gen++
	n.flushQueued = false
	w.crashDisk(n)
	w.k.note("crash store %d", n.id)
}

// crashDisk replaces a store's disk by a crash image of it: what was synced,
// and, as the seed says, some of what was not. Injected faults are cleared.
func (w *World) crashDisk(n *storeNode) {
	crashed, err := n.ffs.Crash(w.rs.disk, w.cfg.CrashKeepUnsynced)
	if err != nil {
		panic(fmt.Sprintf("sim: crash image of store %d: %v", n.id, err))
	}
	n.ffs = crashed
}

// scheduleRestart brings a store that failed on its own (a disk fault) back
// after a while, as an operator or a supervisor would.
func (w *World) scheduleRestart(n *storeNode) {
	d := time.Duration(500+w.rs.fault.Intn(2500)) * time.Millisecond
	w.k.after(d, fmt.Sprintf("auto-restart s%d", n.id), func() { w.restartStore(n) })
}

func (w *World) restartStore(n *storeNode) {
	if n.up() {
		return
	}
	w.restarts++
	w.k.note("restart store %d", n.id)
	w.startStore(n)
}

// ---- PD

func (w *World) schedulePDTick() {
	w.k.after(100*time.Millisecond, "", func() {
		w.pd.Tick()
		w.observePD()
		w.schedulePDTick()
	})
}

// splitKey names a region at one epoch version.
type splitKey struct{ region, version uint64 }

// observePD checks that PD's epochs never go back and its view never shows
// a gap or an overlap, and times how long new regions take to appear.
func (w *World) observePD() {
	regions := w.pd.Regions()
	changed := len(regions) != len(w.pdVersion)
	for _, r := range regions {
		if v, ok := w.pdVersion[r.GetId()]; !ok || v != r.GetEpoch().GetVersion() {
			changed = true
		}
	}
	if !changed {
		return
	}
	var views []checker.RegionView
	for i, r := range regions {
		views = append(views, viewOf("pd", r, nil))
		if err := w.epochs.Observe("pd", r.GetId(), r.GetEpoch().GetConfVer(), r.GetEpoch().GetVersion()); err != nil {
			w.violate(err.Error())
		}
		if _, ok := w.pdSeen[r.GetId()]; !ok {
			w.pdSeen[r.GetId()] = w.k.now
			if _, ok := w.regionBorn[r.GetId()]; !ok {
				w.regionBorn[r.GetId()] = w.k.now
			}
			// A new region is the right half of a split of its left
			// neighbour at the version before the split.
			if i > 0 {
				left := regions[i-1]
				if due, ok := w.splitDue[splitKey{left.GetId(), r.GetEpoch().GetVersion() - 1}]; ok {
					w.splitLatency = append(w.splitLatency, w.k.now-due)
				}
			}
			w.k.note("pd registered region %d [%q, %q)", r.GetId(), r.GetStartKey(), r.GetEndKey())
		}
	}
	if err := checker.CheckCoverage("pd", views); err != nil {
		w.violate(err.Error())
	}
	clear(w.pdVersion)
	for _, r := range regions {
		w.pdVersion[r.GetId()] = r.GetEpoch().GetVersion()
	}
}

func (w *World) violate(msg string) {
	w.k.note("VIOLATION %s", msg)
	if len(w.violations) < 20 {
		w.violations = append(w.violations, msg)
	}
}

func (w *World) annotate(node, text string) {
	w.annotations = append(w.annotations, checker.Annotation{At: int64(w.k.now), Node: node, Text: text})
}

// ---- delivery

func (w *World) deliver(from, to uint64, data []byte) {
	m := &pb.Envelope{}
	if err := proto.Unmarshal(data, m); err != nil {
		panic(fmt.Sprintf("sim: decode envelope %d->%d: %v", from, to, err))
	}
	w.k.noteDelivery(from, to, data, func() string { return bodyName(m) })
	switch {
	case to == PDNode:
		if w.pd != nil {
			w.pd.Receive(m)
			w.observePD()
		}
	case to >= 1 && to <= uint64(len(w.stores)):
		n := w.stores[to-1]
		if n.up() {
			n.st.Receive(m)
			w.queueFlush(n)
		}
	case to == ProbeNode:
		if w.probe != nil {
			w.probe.receive(m)
		}
	case to >= FirstClientNode && to < FirstClientNode+uint64(len(w.clients)):
		c := w.clients[to-FirstClientNode]
		c.c.Receive(m)
		c.collect()
	}
}

func bodyName(m *pb.Envelope) string {
	switch b := m.GetBody().(type) {
	case *pb.Envelope_Raft:
		return fmt.Sprintf("raft r%d %v %d->%d", b.Raft.GetRegionId(), b.Raft.GetMessage().GetType(), b.Raft.GetMessage().GetFrom(), b.Raft.GetMessage().GetTo())
	case *pb.Envelope_KvRequest:
		return fmt.Sprintf("kv-req r%d #%d", b.KvRequest.GetHeader().GetRegionId(), b.KvRequest.GetRequestId())
	case *pb.Envelope_KvResponse:
		return fmt.Sprintf("kv-resp #%d", b.KvResponse.GetRequestId())
	case nil:
		return "empty"
	default:
		return fmt.Sprintf("%T", b)[len("*pb.Envelope_"):]
	}
}

// ---- end of run

func (w *World) endWorkload() {
	w.workloadOver = true
	w.net.Heal()
	w.annotate("faults", "heal all")
	for _, n := range w.stores {
		n.ffs.SetErrorRate(0)
		n.ffs.CrashAfter(-1)
		w.restartStore(n)
	}
	w.k.after(w.cfg.Settle, "final reads", w.finalReads)
}

// finalReads reads every key once, spread over the clients, so that the
// history ends with the state of every key.
func (w *World) finalReads() {
	if len(w.clients) == 0 {
		return
	}
	for i, key := range w.keys {
		c := w.clients[i%len(w.clients)]
		c.submit(client.Op{Kind: client.Get, Key: []byte(key)})
		w.finalReadsSub++
	}
}

// regionViews collects PD's and every store's view of the regions.
func (w *World) regionViews() (pdViews, storeViews []checker.RegionView) {
	if w.pd != nil {
		for _, r := range w.pd.Regions() {
			pdViews = append(pdViews, viewOf("pd", r, nil))
		}
	}
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions(true) {
			if !rs.Initialized {
				continue
			}
			storeViews = append(storeViews, viewOf(fmt.Sprintf("store %d", n.id), rs.Region, rs.Keys))
		}
	}
	return
}

func viewOf(holder string, r *pb.Region, keys [][]byte) checker.RegionView {
	return checker.RegionView{
		Holder: holder, ID: r.GetId(), Start: r.GetStartKey(), End: r.GetEndKey(),
		ConfVer: r.GetEpoch().GetConfVer(), Version: r.GetEpoch().GetVersion(), Keys: keys,
	}
}

// checkInvariants runs the end-of-run checks on regions and data.
func (w *World) checkInvariants() {
	pdViews, storeViews := w.regionViews()
	if err := checker.CheckCoverage("pd", pdViews); err != nil {
		w.violate(err.Error())
	}
	byHolder := map[string][]checker.RegionView{}
	var holders []string
	for _, v := range storeViews {
		if _, ok := byHolder[v.Holder]; !ok {
			holders = append(holders, v.Holder)
		}
		byHolder[v.Holder] = append(byHolder[v.Holder], v)
	}
	sort.Strings(holders)
	for _, h := range holders {
		if err := checker.CheckNoOverlap(h, byHolder[h]); err != nil {
			w.violate(err.Error())
		}
	}
	if err := checker.CheckDataInRange(storeViews); err != nil {
		w.violate(err.Error())
	}
	if err := checker.CheckAgreement(pdViews, storeViews); err != nil {
		w.violate(err.Error())
	}
	// Replicas of a region hold the same keys once converged.
	w.checkReplicaData()
}

// checkReplicaData compares every region's replicas key by key.
func (w *World) checkReplicaData() {
	type replica struct {
		store  uint64
		keys   [][]byte
		digest uint64
	}
	byRegion := map[uint64][]replica{}
	var ids []uint64
	for _, n := range w.stores {
		if !n.up() {
			continue
		}
		for _, rs := range n.st.Regions(true) {
			id := rs.Region.GetId()
			if _, ok := byRegion[id]; !ok {
				ids = append(ids, id)
			}
			byRegion[id] = append(byRegion[id], replica{n.id, rs.Keys, rs.Digest})
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		reps := byRegion[id]
		for _, r := range reps[1:] {
			if !slices.EqualFunc(r.keys, reps[0].keys, bytes.Equal) {
				w.violate(fmt.Sprintf("region %d: store %d holds %d keys, store %d holds %d keys",
					id, reps[0].store, len(reps[0].keys), r.store, len(r.keys)))
			} else if r.digest != reps[0].digest {
				w.violate(fmt.Sprintf("region %d: stores %d and %d hold the same keys with different values or versions",
					id, reps[0].store, r.store))
			}
		}
	}
}

// converged reports whether every region's replicas applied the same index
// and all stores are up.
func (w *World) converged() bool {
	applied := map[uint64]uint64{}
	for _, n := range w.stores {
		if !n.up() {
			return false
		}
		for _, rs := range n.st.Regions(false) {
			if !rs.Initialized {
				return false // a placeholder still waiting for its snapshot
			}
			if a, ok := applied[rs.Region.GetId()]; ok && a != rs.Applied {
				return false
			}
			applied[rs.Region.GetId()] = rs.Applied
		}
	}
	return true
}
