package sim

import (
	"time"

	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
)

// Node ids in a simulation: stores are 1..N, PD and clients above them.
const (
	PDNode          = 100
	FirstClientNode = 1000
	ProbeNode       = 999
)

// Config describes one simulation run, apart from its seed.
type Config struct {
	Name string

	Stores    int      // store ids 1..Stores
	SplitKeys []string // initial layout
	Replicas  int

	Store       raftstore.Config // template; StoreID and PD are filled in
	PDHeartbeat time.Duration
	Net         netsim.Config
	// DiskLatency is the time a ready round (one synced write) takes.
	DiskLatency Latency
	// CrashKeepUnsynced is the chance, in percent, that each unsynced block
	// or directory entry survives a crash.
	CrashKeepUnsynced int

	Clients  int
	Workload Workload

	// Duration is the length of the workload phase; faults happen in it.
	Duration time.Duration
	// Faults schedules the fault plan of the run.
	Faults func(p *Planner)
	// Settle is how long the world runs, healed, after the workload,
	// before the final reads.
	Settle time.Duration
	// Probe sends misrouted requests and raft messages for unknown regions
	// and checks that every store refuses them.
	Probe bool
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
}

// Planner lets a scenario schedule faults. Times are offsets from the start.
type Planner struct {
	w   *World
	Dur time.Duration
	R   *rng.Rand
}

// At schedules a fault action at time t since the start of the run (at
// once if t has passed).
func (p *Planner) At(t time.Duration, name string, fn func(w *World)) {
	p.w.k.after(t-p.w.k.now, "fault "+name, func() {
		p.w.annotate("faults", name)
		fn(p.w)
	})
}

// CrashFor crashes store id now and restarts it after down.
func (p *Planner) CrashFor(w *World, id uint64, down time.Duration) {
	w.Crash(id)
	p.At(w.Now()+down, "restart", func(w *World) { w.Restart(id) })
}
