package sim

import (
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/netsim"
)

// testConfig is a small world for the tests of this package: three
// stores, two regions, four clients, 20 simulated seconds.
func testConfig(name string) Config {
	return Config{
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
			CheckpointBytes:         64 << 10,
		},
		PDHeartbeat:       time.Second,
		Net:               netsim.DefaultConfig(),
		DiskLatency:       Latency{Min: 200 * time.Microsecond, Max: time.Millisecond},
		CrashKeepUnsynced: 50,
		Clients:           4,
		Workload: Workload{
			Keys: 52, Get: 30, Put: 25, Delete: 8, Cas: 22, Scan: 15,
			ScanLimit: 8, ValueSize: 16,
			Think: Latency{Min: 10 * time.Millisecond, Max: 60 * time.Millisecond},
		},
		Duration: 20 * time.Second,
		Settle:   3 * time.Second,
	}
}

// plantedBug is a test-only world with a planted bug: a fixed fault plan
// of eleven actions, and a "bug" that loses a write — it adds to the
// history a read of a value nobody wrote, so the history is not
// linearizable — when store 2 restarts while PD is cut off from it. Only
// actions #2 (isolate PD), #5 (crash s2) and #6 (restart s2) are needed to
// make it fail, and s2 may restart at once.
//
// The actions, by index:
//
//	#0 1s isolate s3    #1 3s heal              #2 4s isolate PD
//	#3 6s crash s1 (restarted 2s later by an action after #10)
//	#4 8s partition {s1,s2}|{s3}                #5 10s crash s2
//	#6 13s restart s2   #7 14s heal             #8 15s crash s3 (1s)
//	#9 17s isolate s1   #10 18s heal
func plantedBug() Config {
	cfg := testConfig("planted-bug")
	cfg.Faults = func(p *Planner) {
		p.At(1*time.Second, "isolate s3", func(w *World) { w.Isolate(3) })
		p.At(3*time.Second, "heal", func(w *World) { w.Heal() })
		p.At(4*time.Second, "isolate PD", func(w *World) { w.Isolate(PDNode) })
		p.At(6*time.Second, "crash s1", func(w *World) { p.CrashFor(w, 1, 2*time.Second) })
		p.At(8*time.Second, "partition", func(w *World) { w.Partition([]uint64{1, 2}, []uint64{3}) })
		p.At(10*time.Second, "crash s2", func(w *World) { w.Crash(2) })
		p.At(13*time.Second, "restart s2", func(w *World) {
			if !w.Up(2) && !w.net.Connected(PDNode, 2) {
				// The planted bug: an acknowledged read of a value never
				// written.
				w.history = append(w.history, checker.Op{
					ClientID: 0, Kind: checker.OpGet, Key: KeyName(0), Outcome: checker.OutcomeOK,
					Call: int64(w.k.now), Return: int64(w.k.now), Found: true, ResultValue: "planted", Version: 1 << 40,
				})
			}
			w.Restart(2)
		})
		p.At(14*time.Second, "heal", func(w *World) { w.Heal() })
		p.At(15*time.Second, "crash s3", func(w *World) { p.CrashFor(w, 3, time.Second) })
		p.At(17*time.Second, "isolate s1", func(w *World) { w.Isolate(1) })
		p.At(18*time.Second, "heal", func(w *World) { w.Heal() })
	}
	return cfg
}
