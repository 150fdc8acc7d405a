// Package scenarios names the simulations multiraft is proven by: topology,
// initial regions, workload and fault plan of each, as data for package sim.
package scenarios

import (
	"fmt"
	"sort"
	"time"

	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/netsim"
	"github.com/multiraft/multiraft/sim"
)

// Scenario is a named simulation.
type Scenario struct {
	Name        string
	Description string
	Config      sim.Config
}

// base is the static layout of Phase 1: three stores, regions ["", "m")
// and ["m", +inf), three replicas each, six clients.
func base(name string) sim.Config {
	return sim.Config{
		Name:      name,
		Stores:    3,
		SplitKeys: []string{"m"},
		Replicas:  3,
		Store: raftstore.Config{
			TickInterval:            50 * time.Millisecond,
			ElectionTicks:           10,
			HeartbeatTicks:          2,
			RegionHeartbeatInterval: time.Second,
			StoreHeartbeatInterval:  2 * time.Second,
			LogCompactEntries:       200,
			LogKeepEntries:          50,
			CheckpointBytes:         256 << 10,
		},
		PDHeartbeat:       time.Second,
		Net:               netsim.DefaultConfig(),
		DiskLatency:       sim.Latency{Min: 200 * time.Microsecond, Max: time.Millisecond},
		CrashKeepUnsynced: 50,
		Clients:           6,
		Workload: sim.Workload{
			Keys: 52, Get: 30, Put: 25, Delete: 8, Cas: 22, Scan: 15,
			ScanLimit: 8, ValueSize: 16,
			Think: sim.Latency{Min: 10 * time.Millisecond, Max: 60 * time.Millisecond},
		},
		Duration: 60 * time.Second,
		Settle:   3 * time.Second,
		Probe:    true,
	}
}

func static() Scenario {
	return Scenario{
		Name:        "static",
		Description: "3 stores, regions [\"\",\"m\") and [\"m\",+inf), 3 replicas each; 6 clients doing get/put/delete/cas/scan on both ranges; misrouted-request probes",
		Config:      base("static"),
	}
}

// staticPartition cycles through network faults: the leader of a region
// isolated, a minority store isolated, PD isolated, a one-way cut; each
// healed before the next.
func staticPartition() Scenario {
	cfg := base("static-partition")
	cfg.Faults = func(p *sim.Planner) {
		t := 3 * time.Second
		i := 0
		for t < p.Dur-6*time.Second {
			hold := time.Duration(2000+p.R.Intn(5000)) * time.Millisecond
			switch (i + p.R.Intn(4)) % 4 {
			case 0:
				// Cut the leader off from its peers but not from clients or
				// PD: the case where a deposed leader could serve stale reads.
				p.At(t, "partition a region leader from its peers", func(w *sim.World) {
					regions := w.RegionIDs()
					r := regions[p.R.Intn(len(regions))]
					if s := w.LeaderStore(r); s != 0 {
						w.Partition([]uint64{s}, others(w.StoreIDs(), s))
					}
				})
			case 1:
				if p.R.Intn(2) == 0 {
					p.At(t, "isolate a minority store", func(w *sim.World) {
						ids := w.StoreIDs()
						w.Isolate(ids[p.R.Intn(len(ids))])
					})
				} else {
					p.At(t, "partition a minority store with PD", func(w *sim.World) {
						ids := w.StoreIDs()
						s := ids[p.R.Intn(len(ids))]
						w.Partition([]uint64{s, sim.PDNode}, others(ids, s))
					})
				}
			case 2:
				p.At(t, "isolate PD", func(w *sim.World) { w.Isolate(sim.PDNode) })
			case 3:
				p.At(t, "one-way cut from a region leader", func(w *sim.World) {
					regions := w.RegionIDs()
					r := regions[p.R.Intn(len(regions))]
					if s := w.LeaderStore(r); s != 0 {
						for _, o := range w.StoreIDs() {
							if o != s {
								w.BlockOneWay(s, o)
							}
						}
					}
				})
			}
			p.At(t+hold, "heal", func(w *sim.World) { w.Heal() })
			t += hold + time.Duration(1000+p.R.Intn(3000))*time.Millisecond
			i++
		}
	}
	return Scenario{
		Name:        "static-partition",
		Description: "static layout under partitions: a region leader cut from its peers (clients still reach it), a minority isolated, PD isolated, one-way cuts; each healed",
		Config:      cfg,
	}
}

// staticCrash crashes stores (sometimes a leader, sometimes two at once)
// and restarts them from what their disks kept.
func staticCrash() Scenario {
	cfg := base("static-crash")
	cfg.Faults = func(p *sim.Planner) {
		t := 3 * time.Second
		for t < p.Dur-6*time.Second {
			down := time.Duration(500+p.R.Intn(4000)) * time.Millisecond
			var victims []uint64
			p.At(t, "crash", func(w *sim.World) {
				ids := w.StoreIDs()
				victims = victims[:0]
				if p.R.Intn(2) == 0 {
					regions := w.RegionIDs()
					if s := w.LeaderStore(regions[p.R.Intn(len(regions))]); s != 0 {
						victims = append(victims, s)
					}
				}
				if len(victims) == 0 {
					victims = append(victims, ids[p.R.Intn(len(ids))])
				}
				if p.R.Intn(5) == 0 { // now and then lose quorum for a while
					other := ids[p.R.Intn(len(ids))]
					if other != victims[0] {
						victims = append(victims, other)
					}
				}
				for _, v := range victims {
					w.Crash(v)
				}
			})
			p.At(t+down, "restart", func(w *sim.World) {
				for _, v := range victims {
					w.Restart(v)
				}
			})
			t += down + time.Duration(1500+p.R.Intn(4000))*time.Millisecond
		}
	}
	return Scenario{
		Name:        "static-crash",
		Description: "static layout while stores crash (a leader, a follower, now and then two at once) and restart from their synced data",
		Config:      cfg,
	}
}

func others(ids []uint64, not uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id != not {
			out = append(out, id)
		}
	}
	return out
}

// All returns every scenario, in a fixed order.
func All() []Scenario {
	return []Scenario{static(), staticPartition(), staticCrash()}
}

// Get returns the scenario called name.
func Get(name string) (Scenario, error) {
	var names []string
	for _, s := range All() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return Scenario{}, fmt.Errorf("unknown scenario %q (have: %v)", name, names)
}
