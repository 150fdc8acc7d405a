package scenarios

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/multiraft/multiraft/sim"
)

// BenchmarkScenario measures the simulator: simulated seconds per wall
// second and client operations checked per second, per scenario.
//
//	go test ./scenarios/ -run '^$' -bench Scenario -benchtime 5x
func BenchmarkScenario(b *testing.B) {
	for _, s := range All() {
		b.Run(s.Name, func(b *testing.B) {
			var simMs, ops, checked float64
			for i := 0; i < b.N; i++ {
				rep := sim.Run(s.Config, uint64(i+1), nil)
				if !rep.OK {
					b.Fatalf("seed %d: %s", i+1, rep.Violation)
				}
				simMs += rep.SimMs
				ops += float64(rep.OpsTotal)
				checked += float64(rep.OpsChecked)
			}
			wall := b.Elapsed().Seconds()
			b.ReportMetric(simMs/1000/wall, "sim-s/s")
			b.ReportMetric(ops/wall, "client-ops/s")
			b.ReportMetric(checked/wall, "checked-ops/s")
		})
	}
}

// BenchmarkMoveRegionSize measures how long moving one replica of a region
// takes against the region's size, in simulation over 1 Gbit/s links: the
// region is filled by clients writing 64 KiB values (no splits), then one
// replica is moved to a fourth store; the metric is the move operator's
// time from start to done (add learner, snapshot, catch up, swap, remove).
//
//	go test ./scenarios/ -run '^$' -bench MoveRegionSize -benchtime 1x
func BenchmarkMoveRegionSize(b *testing.B) {
	for _, mib := range []int{1, 16, 96} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			var moveMs, snapBytes float64
			for i := 0; i < b.N; i++ {
				rep := sim.Run(moveRegionConfig(mib), uint64(i+1), nil)
				if !rep.OK {
					b.Fatalf("seed %d: %s", i+1, rep.Violation)
				}
				if rep.Moves != 1 {
					b.Fatalf("seed %d: %d moves", i+1, rep.Moves)
				}
				moveMs += rep.MoveMsMax
				snapBytes += float64(rep.SnapshotBytes)
			}
			b.ReportMetric(moveMs/float64(b.N), "move-ms")
			b.ReportMetric(snapBytes/float64(b.N)/(1<<20), "snapshot-MiB")
		})
	}
}

// moveRegionConfig is one region of about mib MiB on stores 1-3, filled by
// puts of 64 KiB values (about three per key in the first 10 s, and on at
// that rate), and moved from store 1 to store 4 at 20 s while the writes go
// on; PD's own schedulers are off.
func moveRegionConfig(mib int) sim.Config {
	cfg := moveBase(fmt.Sprintf("move-%dMiB", mib))
	cfg.SplitKeys = nil
	cfg.Probe = false
	cfg.Store.SplitThreshold = 0
	cfg.Store.SnapshotChunkBytes = 1 << 20
	cfg.Store.CheckpointBytes = 256 << 20
	cfg.Store.LogCompactEntries = 200
	cfg.Store.LogKeepEntries = 50
	cfg.PD.DisableBalanceRegion = true
	cfg.PD.DisableBalanceLeader = true
	cfg.PD.DisableReplicaChecker = true
	cfg.Clients = 8
	think := 10 * time.Second * time.Duration(cfg.Clients) / time.Duration(3*mib*16)
	cfg.Workload = sim.Workload{
		Keys: mib * 16, Put: 1, ValueSize: 64 << 10,
		Think: sim.Latency{Min: think * 9 / 10, Max: think * 11 / 10},
	}
	cfg.Duration = 30 * time.Second
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		p.At(20*time.Second, "move the region", func(w *sim.World) { w.MoveRegion(w.RegionIDs()[0], 1, 4) })
	}
	return cfg
}

// BenchmarkIdleRegions measures what idle regions cost: 3 stores holding n
// regions (3 replicas each), no clients, run for 20 and for 60 simulated
// seconds. The first 20 s hold the boot (PD's layout, 3n peers, n
// elections) and the fall asleep; the next 40 s are steady idle state, and
// their cost, (CPU of the 60 s run - CPU of the 20 s run) / 40 s, is the
// cost of idle regions per simulated second. Metrics: boot-cpu-ms (the 20 s
// run), idle-cpu-ms/sim-s, and idle-cpu-us/region/sim-s. CPU is the
// process's user+system time (the checks are not run: no clients).
//
//	go test ./scenarios/ -run '^$' -bench IdleRegions -benchtime 1x
func BenchmarkIdleRegions(b *testing.B) {
	for _, n := range benchRegionCounts {
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			var boot, idle time.Duration
			for i := 0; i < b.N; i++ {
				short := runIdle(b, n, 20*time.Second, uint64(i+1))
				long := runIdle(b, n, 60*time.Second, uint64(i+1))
				boot += short
				idle += long - short
			}
			perSimS := float64(idle.Microseconds()) / 40 / float64(b.N)
			b.ReportMetric(float64(boot.Milliseconds())/float64(b.N), "boot-cpu-ms")
			b.ReportMetric(perSimS/1000, "idle-cpu-ms/sim-s")
			b.ReportMetric(perSimS/float64(n), "idle-cpu-us/region/sim-s")
		})
	}
}

// runIdle runs idleRegionsConfig(n) for d and returns the CPU it took.
func runIdle(b *testing.B, n int, d time.Duration, seed uint64) time.Duration {
	cfg := idleRegionsConfig(n)
	cfg.Duration = d
	before := processCPU()
	rep := sim.Run(cfg, seed, nil)
	took := processCPU() - before
	for _, v := range rep.Violations {
		if v != "no client operations ran" {
			b.Fatalf("%d regions, seed %d: %s", n, seed, v)
		}
	}
	return took
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleRegionsConfig is n regions on 3 stores, no clients, no faults.
func idleRegionsConfig(n int) sim.Config {
	cfg := base(fmt.Sprintf("idle-%d", n))
	cfg.SplitKeys = nil
	for i := 1; i < n; i++ {
		cfg.SplitKeys = append(cfg.SplitKeys, fmt.Sprintf("k%06d", i))
	}
	cfg.Clients = 0
	cfg.Probe = false
	cfg.Settle = 0
	cfg.PD.DisableBalanceLeader = true
	return cfg
}

var benchRegionCounts = []int{10, 100, 1000, 10000}
