package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
	"github.com/multiraft/multiraft/sim"
)

// Swarm testing (as FoundationDB does it): instead of one fault mix for
// every seed, each seed draws its own — which kinds of faults happen at
// all, how often and for how long, how lossy and slow the network is, the
// store's knobs and the clients' habits — so that over many seeds the
// simulator visits corners one fixed mix would rarely reach (a seed with
// only clogs and long election timeouts, another with nothing but crashes
// five times as often). The draws come from the seed's own stream "swarm"
// (rng.Stream(seed, "swarm")), so they are reproducible; they are printed
// in the report (Report.Mix) and the trace.
//
// Only faults the system promises to survive are drawn. Crashes, torn
// writes and failing disks lose only what a store had not synced, which
// raft never counted on, so they may strike any number of stores at once
// (a region without a quorum waits; nothing acknowledged is lost). The one
// fault that destroys a disk — a store killed for good — strikes at most
// one store per run (a minority of every region: 1 of 3, or 1 of 5), only
// in a world with a store more than the replica count and PD's replica
// checker on, so that PD can re-create the replicas it held, and early
// enough (30 s before the end) for that to finish. Everything is healed
// at the end of the workload (network, disks, loss, stores restarted), and
// the liveness phase then asks every region for a leader, a write and a
// read.

// Mix is what one seed draws: the world's knobs and the fault plan, as
// data. It is a pure function of the seed and of the scenario it varies
// (drawMix); Apply makes it a configuration.
type Mix struct {
	own bool // the swarm scenario's own world (else --swarm on a scenario)

	// The world (own only).
	Replicas       int
	Spare          bool // a store more than the replicas, joining at the start
	SplitKeys      []string
	SplitThreshold int64
	Keys           int
	ValueSize      int
	Ops            [5]int // get, put, delete, cas, scan weights

	// The stores.
	ElectionTicks, HeartbeatTicks int
	RegionHeartbeat               time.Duration // to PD
	LogCompact, LogKeep           uint64
	ChunkBytes                    int
	TickScale                     []float64     // per store; nil: no drift
	CrashKeep                     int           // percent of unsynced blocks a crash keeps
	OperatorTimeout               time.Duration // PD's (own only)
	Disk                          sim.Latency
	// HookProb is the chance that each of the product code's fault hooks
	// is enabled in the run (0: none).
	HookProb float64

	// The clients.
	Clients        int
	Think          sim.Latency
	Pipeline       int
	HotKeys        int
	HotShare       int
	Burst          sim.Latency
	BurstOnHeal    bool
	AttemptTimeout time.Duration

	// The network.
	Shape     string // uniform, tail, slow-link
	Latency   netsim.Latency
	SlowLink  [2]uint64 // both directions of this store pair, for slow-link
	SlowLat   netsim.Latency
	Loss, Dup float64 // all run long
	PeakLoss  float64 // in the lossy windows
	Lossy     []window

	// The fault plan.
	NetKinds  []string // the network fault kinds this seed uses
	NodeKinds []string // the node fault kinds
	Net       []netFault
	Node      []nodeFault
	Kill      *kill

	// BatchRaft: the raft messages one store sends another within one
	// event travel as one batch (sim.Config.BatchRaft). Drawn last, so
	// that it shifts no other draw.
	BatchRaft bool

	// Late copies (netsim.Config.Late): in half the seeds, a share of all
	// messages arrives once more, seconds after the first copy. Drawn
	// after BatchRaft, for the same reason.
	Late      float64
	LateDelay netsim.Latency
}

// window is a span of the workload.
type window struct{ At, Hold time.Duration }

// The network fault kinds.
const (
	kIsolate   = "isolate"    // one store cut off from everyone
	kLeaderCut = "leader-cut" // a region's leader cut off from the other stores
	kMinority  = "minority"   // the stores split into a minority and a majority
	kOneWay    = "one-way"    // a store cannot send (or receive), or one link one way
	kPD        = "pd"         // PD isolated
	kClog      = "clog"       // nodes clogged one by one, unclogged in random order
	kRing      = "ring"       // each store reaches only its neighbours in a ring (a majority each); with 3 stores, a bridge
)

// The node fault kinds.
const (
	kCrash    = "crash"    // a store (now and then two) crashes and restarts
	kTorn     = "torn"     // a store's disk dies a few writes later (the write torn)
	kDiskErr  = "disk-err" // a store's disk fails a share of its operations
	kTransfer = "transfer" // a region's leadership is transferred
)

var (
	netKinds  = []string{kIsolate, kLeaderCut, kMinority, kOneWay, kPD, kClog, kRing}
	nodeKinds = []string{kCrash, kTorn, kDiskErr, kTransfer}
)

// netFault is one episode of the network track, healed at its end.
type netFault struct {
	window
	Kind string
	// Target: the leader of a hot key's region (Hot), else of a random
	// region (Leader), else a random store.
	Hot, Leader bool
	Minority    int    // stores on the minority side (kMinority)
	Majority    bool   // kMinority: the target (a leader) is on the majority side, the minority drawn from the others
	PDSide      string // "major", "minor" or "" (PD reaches both sides)
	Clients     string // "split" (each client on a side at random), "major", or "" (clients reach both)
	Receive     bool   // kOneWay: the store cannot receive (else: cannot send); Pair: one link only
	Pair        bool
	Clogs       []clog // kClog
}

// clog is one node clogged from At to Until (offsets into the episode).
type clog struct {
	Node      uint64
	At, Until time.Duration
}

// nodeFault is one event of the node track.
type nodeFault struct {
	At     time.Duration
	Kind   string
	Hot    bool          // target a hot key region's leader store
	Leader bool          // target a random region's leader store
	Two    bool          // kCrash: a second store crashes with it
	Down   time.Duration // kCrash: restarted after
	Writes int           // kTorn: writes before the disk dies
	Rate   float64       // kDiskErr
}

// kill is the one store killed for good, and maybe revived.
type kill struct {
	At     time.Duration
	Store  uint64
	Revive time.Duration // 0: never
}

// draw helpers over the swarm stream.
type drawer struct{ r *rng.Rand }

func (d drawer) chance(p float64) bool          { return d.r.Chance(p) }
func (d drawer) intIn(lo, hi int) int           { return lo + d.r.Intn(hi-lo+1) }
func (d drawer) floatIn(lo, hi float64) float64 { return lo + (hi-lo)*d.r.Float64() }

// dur draws a duration in [lo, hi] in whole milliseconds.
func (d drawer) dur(lo, hi time.Duration) time.Duration {
	return d.ms(int(lo/time.Millisecond), int(hi/time.Millisecond))
}
func (d drawer) ms(lo, hi int) time.Duration {
	return time.Duration(d.intIn(lo, hi)) * time.Millisecond
}

// subset draws each of kinds with probability 1/2, in their order.
func (d drawer) subset(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if d.chance(0.5) {
			out = append(out, k)
		}
	}
	return out
}

// drawMix draws seed's mix for base (a scenario's configuration). own: the
// swarm scenario's world, whose shape (replicas, stores, layout, split
// threshold, keys) is drawn too; otherwise the scenario keeps its own
// world, its split threshold, its workload's keys and op mix, its own
// fault plan (the swarm's is added to it), and no store is killed for
// good (the scenario's plan may kill one itself).
func drawMix(seed uint64, base sim.Config, own bool) *Mix {
	d := drawer{rng.Stream(seed, "swarm")}
	m := &Mix{own: own}
	stores := base.Stores + base.SpareStores
	if own {
		m.Replicas = 3
		if d.chance(0.3) {
			m.Replicas = 5
		}
		m.Spare = d.chance(0.5)
		stores = m.Replicas
		if m.Spare {
			stores++
		}
		cuts := []string{"e", "h", "m", "q", "t"}
		for _, c := range cuts {
			if d.chance(0.4) {
				m.SplitKeys = append(m.SplitKeys, c)
			}
		}
		m.Keys = d.intIn(26, 160)
		m.ValueSize = d.intIn(16, 200)
		if d.chance(0.6) {
			// A threshold the data outgrows 2-10 times over (the keys
			// and values of the whole universe), so that regions split
			// under load, some of them several times.
			data := m.Keys * (m.ValueSize + 5)
			m.SplitThreshold = int64(max(data/d.intIn(2, 10), 512))
		}
		m.Ops = [5]int{d.intIn(10, 40), d.intIn(10, 40), d.intIn(0, 10), d.intIn(5, 25), d.intIn(0, 15)}
		m.OperatorTimeout = d.dur(8*time.Second, 60*time.Second)
	}

	// The stores' knobs.
	m.HeartbeatTicks = d.intIn(1, 3)
	m.ElectionTicks = max(d.intIn(6, 40), 3*m.HeartbeatTicks)
	m.RegionHeartbeat = d.ms(500, 2000)
	m.LogCompact = uint64(d.intIn(20, 300))
	m.LogKeep = uint64(d.intIn(5, int(m.LogCompact)/2))
	m.ChunkBytes = d.intIn(1, 64) << 10
	if !own {
		// Only ever tighter than the scenario's own: a scenario that
		// compacts early to force snapshots keeps doing so.
		if c := base.Store.LogCompactEntries; c > 0 && m.LogCompact > c {
			m.LogCompact, m.LogKeep = c, min(m.LogKeep, base.Store.LogKeepEntries)
		}
		if c := base.Store.SnapshotChunkBytes; c > 0 && m.ChunkBytes > c {
			m.ChunkBytes = c
		}
	}
	if d.chance(0.5) {
		m.TickScale = make([]float64, stores)
		for i := range m.TickScale {
			m.TickScale[i] = float64(d.intIn(80, 125)) / 100
		}
	}
	m.CrashKeep = d.intIn(0, 100)
	m.Disk.Min = time.Duration(d.intIn(100, 500)) * time.Microsecond
	m.Disk.Max = m.Disk.Min + time.Duration(d.intIn(0, 3000))*time.Microsecond
	m.HookProb = []float64{0, 0.1, 0.25, 0.25, 0.5}[d.intIn(0, 4)]

	// The clients.
	m.Clients = d.intIn(3, 8)
	m.Think.Min = d.ms(1, 10)
	m.Think.Max = m.Think.Min + d.ms(15, 60)
	m.Pipeline = 1
	if m.Clients <= 5 && d.chance(0.3) {
		m.Pipeline = d.intIn(2, 3)
	}
	if d.chance(0.75) {
		m.HotKeys = d.intIn(1, 3)
		m.HotShare = d.intIn(30, 80)
	}
	if d.chance(0.7) {
		m.Burst.Min = d.ms(1000, 3000)
		m.Burst.Max = m.Burst.Min + d.ms(0, 4000)
	}
	m.BurstOnHeal = d.chance(0.5)
	if d.chance(0.7) {
		m.AttemptTimeout = d.ms(200, 1500)
	}
	// The linearizability check of a key costs exponentially in the writes
	// on it whose outcome is unknown (a client that gave up during a
	// crash), and hot keys gather them: with many clients, keep the
	// operations in flight on one key to about four, and no bursts (every
	// client at one key at once). Clamped after the draws, so that the
	// other draws of every seed stay as they were.
	if m.HotKeys > 0 {
		m.HotKeys = max(m.HotKeys, (m.Clients*m.Pipeline*m.HotShare/100+3)/4)
	}
	if m.Clients > 6 {
		m.Burst, m.BurstOnHeal = sim.Latency{}, false
	}

	// The network. Delays stay well below the election timeout: a network
	// slower than that elects all the time and never makes progress.
	election := time.Duration(m.ElectionTicks) * base.Store.TickInterval
	m.Latency = netsim.Latency{Min: time.Millisecond, Max: 5 * time.Millisecond}
	switch d.intIn(0, 2) {
	case 0:
		m.Shape = "uniform"
		m.Latency.Max = d.ms(2, 20)
	case 1:
		m.Shape = "tail"
		m.Latency.TailProb = float64(d.intIn(1, 10)) / 100
		m.Latency.TailMax = min(d.ms(50, 300), election/2-m.Latency.Max)
	default:
		m.Shape = "slow-link"
		m.Latency.TailProb, m.Latency.TailMax = 0.01, 20*time.Millisecond
		a := uint64(d.intIn(1, stores))
		b := uint64(d.intIn(1, stores-1))
		if b >= a {
			b++
		}
		m.SlowLink = [2]uint64{a, b}
		lo := min(d.ms(20, 100), election/4)
		m.SlowLat = netsim.Latency{Min: lo, Max: lo + lo/2}
	}
	m.Loss = float64(d.intIn(0, 20)) / 1000 // 0-2 %
	m.Dup = float64(d.intIn(0, 50)) / 1000  // 0-5 %
	m.PeakLoss = float64(d.intIn(0, 300)) / 1000
	dur := base.Duration
	// Lossy windows: 0-3 of 2-8 s at the peak loss, a third of the
	// workload at most, none in its last 5 s.
	for i, n := 0, d.intIn(0, 3); i < n && dur >= 20*time.Second; i++ {
		w := window{At: d.dur(2*time.Second, dur-15*time.Second), Hold: d.dur(2*time.Second, 8*time.Second)}
		if lossyTime(m.Lossy)+w.Hold <= dur/3 && !overlaps(m.Lossy, w) {
			m.Lossy = append(m.Lossy, w)
		}
	}
	slices.SortFunc(m.Lossy, func(a, b window) int { return int(a.At - b.At) })

	// The fault plan: which kinds, how often, how long.
	m.NetKinds = d.subset(netKinds)
	m.NodeKinds = d.subset(nodeKinds)
	netGap := d.dur(500*time.Millisecond, 4*time.Second)
	netGapMax := netGap + d.dur(0, 8*time.Second)
	hold := d.dur(500*time.Millisecond, 3*time.Second)
	holdMax := hold + d.dur(0, 7*time.Second)
	if len(m.NetKinds) > 0 {
		for t := d.dur(time.Second, 4*time.Second); ; t += d.dur(netGap, netGapMax) {
			f := netFault{window: window{At: t, Hold: d.dur(hold, holdMax)}}
			if f.At+f.Hold > dur-5*time.Second {
				break
			}
			f.Kind = m.NetKinds[d.r.Intn(len(m.NetKinds))]
			m.drawNet(d, &f, stores)
			m.Net = append(m.Net, f)
			t += f.Hold
		}
	}
	nodeGap := d.dur(time.Second, 5*time.Second)
	nodeGapMax := nodeGap + d.dur(0, 10*time.Second)
	if len(m.NodeKinds) > 0 {
		for t := d.dur(time.Second, 6*time.Second); t < dur-6*time.Second; t += d.dur(nodeGap, nodeGapMax) {
			f := nodeFault{At: t, Kind: m.NodeKinds[d.r.Intn(len(m.NodeKinds))]}
			f.Hot, f.Leader = d.chance(0.3), d.chance(0.4)
			switch f.Kind {
			case kCrash:
				f.Two = d.chance(0.2)
				f.Down = d.ms(300, 5000)
			case kTorn:
				f.Writes = d.intIn(0, 5)
			case kDiskErr:
				f.Rate = float64(d.intIn(1, 10)) / 100
			}
			m.Node = append(m.Node, f)
		}
	}
	if own && m.Spare && dur >= 45*time.Second && d.chance(0.3) {
		k := &kill{At: d.dur(5*time.Second, dur-30*time.Second), Store: uint64(d.intIn(1, stores))}
		if d.chance(0.5) {
			k.Revive = k.At + d.dur(15*time.Second, 25*time.Second)
			if k.Revive > dur-5*time.Second {
				k.Revive = 0
			}
		}
		m.Kill = k
	}
	m.BatchRaft = d.chance(0.5)
	if d.chance(0.5) {
		m.Late = float64(d.intIn(1, 10)) / 1000 // 0.1-1 %
		lo := d.ms(300, 3000)
		m.LateDelay = netsim.Latency{Min: lo, Max: lo + d.ms(0, 10000)}
	}
	return m
}

func lossyTime(ws []window) time.Duration {
	var t time.Duration
	for _, w := range ws {
		t += w.Hold
	}
	return t
}

func overlaps(ws []window, w window) bool {
	for _, o := range ws {
		if w.At < o.At+o.Hold && o.At < w.At+w.Hold {
			return true
		}
	}
	return false
}

// drawNet draws the parameters of a network episode.
func (m *Mix) drawNet(d drawer, f *netFault, stores int) {
	f.Hot = m.HotKeys > 0 && d.chance(0.6)
	f.Leader = d.chance(0.6)
	switch f.Kind {
	case kLeaderCut, kMinority:
		f.Minority = 1
		if f.Kind == kMinority {
			f.Minority = d.intIn(1, (stores-1)/2)
			f.Majority = d.chance(0.3)
		}
		f.PDSide = []string{"major", "minor", ""}[d.intIn(0, 2)]
		f.Clients = []string{"split", "split", "major", ""}[d.intIn(0, 3)]
	case kOneWay:
		f.Receive = d.chance(0.5)
		f.Pair = d.chance(0.3)
	case kClog:
		// Clog n nodes (stores and PD) one by one, every 100-800 ms,
		// then unclog them in a random order.
		nodes := make([]uint64, 0, stores+1)
		for i := 1; i <= stores; i++ {
			nodes = append(nodes, uint64(i))
		}
		nodes = append(nodes, sim.PDNode)
		d.shuffle(nodes)
		n := d.intIn(1, len(nodes))
		step := d.ms(100, 800)
		for i := 0; i < n; i++ {
			f.Clogs = append(f.Clogs, clog{Node: nodes[i], At: time.Duration(i) * step})
		}
		last := time.Duration(n-1) * step
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		d.shuffle(order)
		// Unclog in the drawn order, spread over what is left of the
		// episode (at least 200 ms after the last clog).
		rest := max(f.Hold-last, 200*time.Millisecond+time.Duration(n)*time.Millisecond)
		for j, i := range order {
			f.Clogs[i].Until = last + rest*time.Duration(j+1)/time.Duration(n)
		}
		f.Hold = last + rest
	}
}

// shuffle permutes s (Fisher-Yates).
func (d drawer) shuffle(s any) {
	switch v := s.(type) {
	case []uint64:
		for i := len(v) - 1; i > 0; i-- {
			j := d.r.Intn(i + 1)
			v[i], v[j] = v[j], v[i]
		}
	case []int:
		for i := len(v) - 1; i > 0; i-- {
			j := d.r.Intn(i + 1)
			v[i], v[j] = v[j], v[i]
		}
	}
}

// Apply returns cfg with the mix: its knobs, network and workload, and its
// fault plan after cfg's own (if any).
func (m *Mix) Apply(cfg sim.Config) sim.Config {
	if m.own {
		cfg.Stores, cfg.Replicas = m.Replicas, m.Replicas
		cfg.SpareStores = 0
		if m.Spare {
			cfg.SpareStores = 1
		}
		cfg.SplitKeys = m.SplitKeys
		cfg.Store.SplitThreshold = m.SplitThreshold
		cfg.PD.OperatorTimeout = m.OperatorTimeout
		cfg.Workload.Keys = m.Keys
		cfg.Workload.ValueSize = m.ValueSize
		cfg.Workload.Get, cfg.Workload.Put, cfg.Workload.Delete, cfg.Workload.Cas, cfg.Workload.Scan =
			m.Ops[0], m.Ops[1], m.Ops[2], m.Ops[3], m.Ops[4]
	}
	cfg.Store.ElectionTicks, cfg.Store.HeartbeatTicks = m.ElectionTicks, m.HeartbeatTicks
	cfg.Store.RegionHeartbeatInterval = m.RegionHeartbeat
	cfg.Store.LogCompactEntries, cfg.Store.LogKeepEntries = m.LogCompact, m.LogKeep
	cfg.Store.SnapshotChunkBytes = m.ChunkBytes
	cfg.StoreTickScale = m.TickScale
	cfg.CrashKeepUnsynced = m.CrashKeep
	cfg.DiskLatency = m.Disk
	if cfg.Buggify.Force == nil && !cfg.Buggify.Off {
		cfg.Buggify = sim.Buggify{Off: m.HookProb == 0, EnableProb: m.HookProb}
	}

	cfg.Clients = m.Clients
	cfg.Workload.Think = m.Think
	cfg.Workload.Pipeline = m.Pipeline
	cfg.Workload.HotKeys, cfg.Workload.HotShare = m.HotKeys, m.HotShare
	cfg.Workload.Burst, cfg.Workload.BurstOnHeal = m.Burst, m.BurstOnHeal
	cfg.Workload.AttemptTimeout = m.AttemptTimeout

	cfg.Net.Latency = m.Latency
	cfg.Net.LinkLatency = nil
	if m.Shape == "slow-link" {
		a, b := m.SlowLink[0], m.SlowLink[1]
		cfg.Net.LinkLatency = map[netsim.Link]netsim.Latency{{From: a, To: b}: m.SlowLat, {From: b, To: a}: m.SlowLat}
	}
	cfg.Net.Loss, cfg.Net.Duplicate = m.Loss, m.Dup
	if m.Late > 0 { // a scenario's own late copies stay when the seed draws none
		cfg.Net.Late, cfg.Net.LateDelay = m.Late, m.LateDelay
	}
	cfg.BatchRaft = cfg.BatchRaft || m.BatchRaft

	own := cfg.Faults
	cfg.Faults = func(p *sim.Planner) {
		if own != nil {
			own(p)
		}
		m.plan(p)
	}
	cfg.Mix = m.String()
	return cfg
}

// plan schedules the mix's faults.
func (m *Mix) plan(p *sim.Planner) {
	if m.own && m.Spare {
		p.At(0, "spare store joins", func(w *sim.World) { w.AddStore(uint64(m.Replicas + 1)) })
	}
	for _, lw := range m.Lossy {
		starts(p, lw.At, "lossy network", func(w *sim.World) { w.SetLoss(m.PeakLoss, m.Dup) })
		p.At(lw.At+lw.Hold, "loss back to normal", func(w *sim.World) { w.SetLoss(m.Loss, m.Dup) })
	}
	for _, f := range m.Net {
		m.planNet(p, f)
	}
	for _, f := range m.Node {
		m.planNode(p, f)
	}
	if k := m.Kill; k != nil {
		planKill(p, k)
	}
}

// planKill kills store k.Store for good at k.At or, while losing its disk
// could leave a region without a leader for good, as soon after as it no
// longer could (killWhenSurvivable); not at all if that is too late for PD
// to replace it (it needs MaxStoreDownTime and the moves). A kill put off
// brings its revival (if any) as much later.
func planKill(p *sim.Planner, k *kill) {
	putOff := false
	p.At(k.At, "kill a store for good", func(w *sim.World) {
		killWhenSurvivable(p, w, k.Store, p.Dur-30*time.Second, func(w *sim.World, late time.Duration) {
			putOff = late > 0
			if putOff && k.Revive > 0 {
				if at := w.Now() + k.Revive - k.At; at <= p.Dur-5*time.Second {
					p.At(at, "the killed store returns", func(w *sim.World) { w.Revive(k.Store) })
				}
			}
		})
	})
	if k.Revive > 0 {
		p.At(k.Revive, "the killed store returns", func(w *sim.World) {
			if !putOff { // else the kill plans its own
				w.Revive(k.Store)
			}
		})
	}
}

// starts schedules an action that starts a fault; after the workload (a
// run made shorter than the mix was drawn for) it does nothing. Every
// action is scheduled whatever the length of the workload, so that the
// actions' indices do not depend on it.
func starts(p *sim.Planner, at time.Duration, name string, fn func(w *sim.World)) {
	p.At(at, name, func(w *sim.World) {
		if w.Now() < p.Dur {
			fn(w)
		}
	})
}

// target picks the store a fault strikes: the leader of a hot key's
// region, of a random region, or a random live store.
func target(p *sim.Planner, w *sim.World, hot, leader bool) uint64 {
	if hot && len(w.HotKeys()) > 0 {
		keys := w.HotKeys()
		if s := w.LeaderStore(w.RegionOf([]byte(keys[p.R.Intn(len(keys))]))); s != 0 {
			return s
		}
	}
	if leader {
		if regions := w.RegionIDs(); len(regions) > 0 {
			if s := w.LeaderStore(regions[p.R.Intn(len(regions))]); s != 0 {
				return s
			}
		}
	}
	var live []uint64
	for _, id := range w.AllStoreIDs() {
		if w.Up(id) {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		return 0
	}
	return live[p.R.Intn(len(live))]
}

func (m *Mix) planNet(p *sim.Planner, f netFault) {
	heal := func() { p.At(f.At+f.Hold, "heal", func(w *sim.World) { w.Heal() }) }
	switch f.Kind {
	case kIsolate:
		starts(p, f.At, "isolate a store", func(w *sim.World) {
			if s := target(p, w, f.Hot, f.Leader); s != 0 {
				w.Isolate(s)
			}
		})
	case kPD:
		starts(p, f.At, "isolate PD", func(w *sim.World) { w.Isolate(sim.PDNode) })
	case kLeaderCut, kMinority:
		name := "cut a leader from its peers"
		if f.Kind == kMinority {
			name = "partition a minority"
		}
		starts(p, f.At, name, func(w *sim.World) {
			first := target(p, w, f.Hot, f.Leader || f.Kind == kLeaderCut)
			if first == 0 {
				return
			}
			minor := []uint64{first}
			rest := others(w.AllStoreIDs(), first)
			if f.Majority {
				// The target stays with the majority: the minority is
				// drawn from the others.
				minor, rest = nil, append([]uint64{first}, rest...)
			}
			for len(minor) < f.Minority && len(rest) > 1 {
				i := p.R.Intn(len(rest))
				if f.Majority && i == 0 {
					i = 1 + p.R.Intn(len(rest)-1)
				}
				minor = append(minor, rest[i])
				rest = slices.Delete(rest, i, i+1)
			}
			major := rest
			switch f.PDSide {
			case "major":
				major = append(major, sim.PDNode)
			case "minor":
				minor = append(minor, sim.PDNode)
			}
			for _, c := range w.ClientNodes() {
				switch {
				case f.Clients == "major":
					major = append(major, c)
				case f.Clients == "split" && p.R.Intn(2) == 0:
					minor = append(minor, c)
				case f.Clients == "split":
					major = append(major, c)
				}
			}
			w.Partition(minor, major)
		})
	case kOneWay:
		starts(p, f.At, "one-way cut", func(w *sim.World) {
			s := target(p, w, f.Hot, f.Leader)
			if s == 0 {
				return
			}
			peers := others(w.AllStoreIDs(), s)
			if f.Pair {
				peers = []uint64{peers[p.R.Intn(len(peers))]}
			}
			for _, o := range peers {
				if f.Receive {
					w.BlockOneWay(o, s)
				} else {
					w.BlockOneWay(s, o)
				}
			}
		})
	case kRing:
		starts(p, f.At, "majorities ring", func(w *sim.World) {
			ring := w.AllStoreIDs()
			for i := len(ring) - 1; i > 0; i-- {
				j := p.R.Intn(i + 1)
				ring[i], ring[j] = ring[j], ring[i]
			}
			n := len(ring)
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					// Neighbours in the ring talk; with 3 stores, all are
					// neighbours, and the first two are cut instead (the
					// third is the bridge between them).
					near := j-i == 1 || j-i == n-1
					if (n == 3 && i == 0 && j == 1) || (n > 3 && !near) {
						w.BlockOneWay(ring[i], ring[j])
						w.BlockOneWay(ring[j], ring[i])
					}
				}
			}
		})
	case kClog:
		for _, c := range f.Clogs {
			starts(p, f.At+c.At, "clog", func(w *sim.World) { w.Clog(c.Node, c.Until-c.At) })
			p.At(f.At+c.Until, "unclog", func(w *sim.World) { w.Unclog(c.Node) })
		}
	}
	heal()
}

func (m *Mix) planNode(p *sim.Planner, f nodeFault) {
	switch f.Kind {
	case kCrash:
		var victims []uint64
		starts(p, f.At, "crash", func(w *sim.World) {
			s := target(p, w, f.Hot, f.Leader)
			if s == 0 {
				return
			}
			victims = []uint64{s}
			if f.Two {
				if o := target(p, w, false, false); o != 0 && o != s {
					victims = append(victims, o)
				}
			}
			for _, v := range victims {
				w.Crash(v)
			}
		})
		p.At(f.At+f.Down, "restart", func(w *sim.World) {
			for _, v := range victims {
				w.Restart(v)
			}
		})
	case kTorn:
		starts(p, f.At, "tear a write", func(w *sim.World) {
			if s := target(p, w, f.Hot, f.Leader); s != 0 {
				w.TearNextWrite(s, f.Writes)
			}
		})
	case kDiskErr:
		starts(p, f.At, "failing disk", func(w *sim.World) {
			if s := target(p, w, f.Hot, f.Leader); s != 0 {
				w.DiskErrors(s, f.Rate)
			}
		})
	case kTransfer:
		starts(p, f.At, "transfer a leader", func(w *sim.World) {
			if regions := w.RegionIDs(); len(regions) > 0 {
				w.TransferLeader(regions[p.R.Intn(len(regions))], p.R.Intn)
			}
		})
	}
}

// String renders the mix in one line, for the report and the trace.
func (m *Mix) String() string {
	var b strings.Builder
	if m.own {
		fmt.Fprintf(&b, "replicas %d", m.Replicas)
		if m.Spare {
			b.WriteString(" +1 store")
		}
		fmt.Fprintf(&b, ", split keys %v, split at %s, keys %d, values %dB, ops g%d/p%d/d%d/c%d/s%d, operator timeout %v; ",
			m.SplitKeys, kib(m.SplitThreshold), m.Keys, m.ValueSize, m.Ops[0], m.Ops[1], m.Ops[2], m.Ops[3], m.Ops[4], m.OperatorTimeout)
	}
	fmt.Fprintf(&b, "election %d hb %d ticks, region hb %v, log %d/%d, chunk %s, crash keeps %d%%, disk %v-%v, hooks %g",
		m.ElectionTicks, m.HeartbeatTicks, m.RegionHeartbeat, m.LogCompact, m.LogKeep, kib(int64(m.ChunkBytes)), m.CrashKeep,
		m.Disk.Min, m.Disk.Max, m.HookProb)
	if m.TickScale != nil {
		fmt.Fprintf(&b, ", tick drift %v", m.TickScale)
	}
	fmt.Fprintf(&b, "; clients %d think %v-%v", m.Clients, m.Think.Min, m.Think.Max)
	if m.Pipeline > 1 {
		fmt.Fprintf(&b, " pipeline %d", m.Pipeline)
	}
	if m.HotKeys > 0 {
		fmt.Fprintf(&b, ", %d hot keys %d%%", m.HotKeys, m.HotShare)
	}
	if m.Burst.Max > 0 {
		fmt.Fprintf(&b, ", bursts every %v-%v", m.Burst.Min, m.Burst.Max)
	}
	if m.BurstOnHeal {
		b.WriteString(", bursts on heal")
	}
	if m.AttemptTimeout > 0 {
		fmt.Fprintf(&b, ", attempt timeout %v", m.AttemptTimeout)
	}
	fmt.Fprintf(&b, "; net %s %v", m.Shape, m.Latency)
	if m.Shape == "slow-link" {
		fmt.Fprintf(&b, " s%d<->s%d %v", m.SlowLink[0], m.SlowLink[1], m.SlowLat)
	}
	fmt.Fprintf(&b, ", loss %g dup %g", m.Loss, m.Dup)
	if m.Late > 0 {
		fmt.Fprintf(&b, " late %g after %v", m.Late, m.LateDelay)
	}
	if m.BatchRaft {
		b.WriteString(", raft batched")
	}
	if len(m.Lossy) > 0 {
		fmt.Fprintf(&b, ", loss %g in", m.PeakLoss)
		for _, w := range m.Lossy {
			fmt.Fprintf(&b, " %v+%v", w.At, w.Hold)
		}
	}
	fmt.Fprintf(&b, "; net faults %v x%d, node faults %v x%d", m.NetKinds, len(m.Net), m.NodeKinds, len(m.Node))
	if k := m.Kill; k != nil {
		fmt.Fprintf(&b, "; kill s%d at %v", k.Store, k.At)
		if k.Revive > 0 {
			fmt.Fprintf(&b, ", back at %v", k.Revive)
		}
	}
	return b.String()
}

func kib(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
}

// swarm is the swarm scenario: a world drawn per seed (3 or 5 replicas,
// maybe a store more, a layout, a split threshold, keys and op mix), and
// the mix of drawMix on it.
func swarm() Scenario {
	cfg := base("swarm")
	cfg.PD = pd.Config{
		ScheduleInterval: time.Second,
		OperatorTimeout:  60 * time.Second,
		MaxStoreDownTime: 10 * time.Second,
	}
	cfg.PerSeed = func(c sim.Config, seed uint64) sim.Config {
		return drawMix(seed, c, true).Apply(c)
	}
	return Scenario{
		Name:        "swarm",
		Description: "swarm testing: every seed draws its own world (3 or 5 replicas, maybe a store more, layout, split threshold), knobs (election and heartbeat ticks, log compaction, snapshot chunks, tick drift, crash keep share), clients (count, think time, hot keys, bursts, attempt timeout), network (latency shape, loss, lossy windows, duplication, raft messages batched per pair of stores or not) and which faults strike how often (isolations, leader cuts, minority partitions with clients and PD on either side, one-way cuts, PD isolated, clogs; crashes, torn writes, failing disks, leader transfers; at most one store killed for good where PD can replace it)",
		Config:      cfg,
	}
}

// Swarmed is s under swarm testing (multiraft sim --swarm): every seed
// draws a mix as the swarm scenario does, on s's world. s keeps what it is
// about — its stores and layout, split threshold, keys and op mix, and its
// own fault plan, to which the swarm's is added — and the swarm kills no
// store for good. Log compaction and snapshot chunks only ever get tighter
// than s's own.
func Swarmed(s Scenario) Scenario {
	if s.Name == "swarm" {
		return s // it draws its mix already
	}
	prev := s.Config.PerSeed
	s.Config.PerSeed = func(c sim.Config, seed uint64) sim.Config {
		if prev != nil {
			c = prev(c, seed)
		}
		return drawMix(seed, c, false).Apply(c)
	}
	return s
}
