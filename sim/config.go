package sim

import (
	"time"

	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
)

// Node ids in a simulation: stores are 1..N, PD and clients above them.
const (
	PDNode          = 100
	FirstClientNode = 1000
	ProbeNode       = 999
	AdminNode       = 998 // sends the fault plan's orders to PD (moves, decommission)
)

// Config describes one simulation run, apart from its seed.
type Config struct {
	Name string

	Stores    int      // store ids 1..Stores, the initial layout's
	SplitKeys []string // initial layout
	Replicas  int
	// SpareStores exist (ids Stores+1..Stores+SpareStores) but start only
	// when the fault plan adds them (World.AddStore): they join the
	// cluster after bootstrap.
	SpareStores int

	Store raftstore.Config // template; StoreID and PD are filled in
	PD    pd.Config        // template; ID, Layout and HeartbeatInterval are filled in
	// PDDisk gives PD a (never crashing) disk, so it writes its state after
	// every change as the real PD does; tests use it to check the writes.
	PDDisk      bool
	PDHeartbeat time.Duration
	Net         netsim.Config
	// DiskLatency is the time a ready round (one synced write) takes.
	DiskLatency Latency
	// CrashKeepUnsynced is the chance, in percent, that each unsynced block
	// or directory entry survives a crash.
	CrashKeepUnsynced int

	Clients  int
	Workload Workload
	// ClientClockSkew sets the clocks of the workload's clients off the
	// simulated time that the stores and PD read: client i's clock is
	// ahead of it (behind, if negative) by an offset drawn from
	// ClientClockSkew[i] when the client starts, from a stream of the
	// run's own ("client-clocks"). Clients without an entry, and the
	// liveness client, read the simulated time. A client's clock gives its
	// session writes their started_ms; its deadlines and timeouts are
	// differences and do not move. A region refuses a write started more
	// than the session lifetime ahead of its clock (InvalidRequest,
	// clock dependent), and may accept a later copy of the same write
	// once its clock has caught up.
	ClientClockSkew []Latency

	// Duration is the length of the workload phase; faults happen in it.
	Duration time.Duration
	// Faults schedules the fault plan of the run.
	Faults func(p *Planner)
	// FaultEdits skips or moves the plan's actions by index, so that a
	// reduced fault schedule is an exact configuration (see Shrink).
	FaultEdits FaultEdits
	// Settle is how long the world runs, healed, after the workload,
	// before the final reads.
	Settle time.Duration
	// Probe sends misrouted requests and raft messages for unknown regions
	// and checks that every store refuses them.
	Probe bool
	// CheckWireCopies hands every receiver the message decoded from its
	// bytes, as a real network would, instead of a copy (pb.WireCopy) of
	// what they decode to, and panics where the copy differs. The same
	// seed must give the same trace either way (TestDeterminism).
	CheckWireCopies bool
	// BatchRaft sends the raft messages one store sends another within one
	// event (a ready round, a tick) as one batch, as the real transport
	// does (sim/batch.go): lost, duplicated, delayed and delivered as a
	// whole. Off, each raft message travels alone.
	BatchRaft bool
	// NoSnapshots says that no follower of the world ever falls further
	// behind its leader than the leader's log keeps for an active follower
	// close behind (no crash, no partition, no leader change, no move): a
	// snapshot sent in such a run is a violation.
	NoSnapshots bool
	// Buggify configures the product code's fault hooks (on by default).
	Buggify Buggify

	// StoreTickScale scales, per store (index id-1), the interval between
	// the store's ticks: its timer runs slow (above 1) or fast (below 1)
	// against the others'. Missing entries and 0 mean 1. The store is not
	// told: it counts ticks as if each were Store.TickInterval.
	StoreTickScale []float64

	// PerSeed, when set, derives the configuration of a run from its seed
	// before the run starts (swarm testing: every seed draws its own fault
	// mix and knobs). It must be a pure function of its arguments, drawing
	// only from streams of the seed (rng.Stream(seed, name)). Resolve
	// applies it.
	PerSeed func(cfg Config, seed uint64) Config
	// Mix describes what PerSeed drew for the run; it is noted in the
	// trace and given in the report.
	Mix string
}

// Resolve returns the configuration a run of cfg with seed uses: cfg with
// its PerSeed applied, and cleared (so resolving again changes nothing).
// Overrides of a resolved configuration (Clients, Duration, FaultEdits)
// stick.
func (cfg Config) Resolve(seed uint64) Config {
	if cfg.PerSeed == nil {
		return cfg
	}
	f := cfg.PerSeed
	cfg.PerSeed = nil
	cfg = f(cfg, seed)
	cfg.PerSeed = nil
	return cfg
}

// Workload is what the clients do.
type Workload struct {
	Keys      int // size of the key universe
	Get       int // op mix weights
	Put       int
	Delete    int
	Cas       int
	Scan      int
	ScanLimit int
	ValueSize int // bytes of padding added to every written value
	Think     Latency
	// ScanMax, when set, bounds every scan's end: a scan the workload
	// would run to +inf ends at ScanMax instead (so that ranges beyond it
	// stay untouched by clients).
	ScanMax string
	// Pipeline is how many operations each client keeps in flight (each
	// its own closed loop); 0 means 1. Above 1 a client's writes overlap,
	// as a real application's do: sessions see several sequences waiting
	// at once, and a session switch with writes of the old one in flight.
	Pipeline int

	// HotKeys keys of the universe, spread over it, are hot: HotShare
	// percent of the operations pick their key among them (the others
	// among all keys). Reads and writes of one key from several clients
	// then overlap all the time.
	HotKeys  int
	HotShare int
	// Burst, when its Max is set, makes every client fire one operation
	// at one key at the same instant, every Burst.draw: about half of them
	// read the key, the others write it (a put or a cas). The key is a hot
	// key when there are some. BurstOnHeal fires a burst when the fault
	// plan heals the network (World.Heal), and another soon after. Burst
	// operations are extra: they do not start more closed-loop operations.
	Burst       Latency
	BurstOnHeal bool
	// AttemptTimeout is how long a client waits for one store's answer
	// before it tries another (0: the client's default, 2 s). Below the
	// election timeout, a client cut off from an old leader finds the new
	// one while the old one may still believe it leads.
	AttemptTimeout time.Duration
}

// Latency draws a duration uniformly in [Min, Max].
type Latency struct{ Min, Max time.Duration }

func (l Latency) draw(r *rng.Rand) time.Duration {
	if l.Max <= l.Min {
		return l.Min
	}
	return l.Min + time.Duration(r.Int63n(int64(l.Max-l.Min)+1))
}
