package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/checker"
)

// historyOf runs cfg and returns its history; the run must pass.
func historyOf(t *testing.T, cfg Config, seed uint64) []checker.Op {
	t.Helper()
	runLock.Lock()
	defer runLock.Unlock()
	w := newWorld(cfg.Resolve(seed), seed, nil)
	w.simulate()
	if lin, _ := w.check(stopwatch(nil)); !lin.OK || len(w.violations) > 0 {
		t.Fatalf("seed %d: linearizable %v, violations %v", seed, lin.OK, w.violations)
	}
	return w.history
}

// Hot keys take their share of the operations; bursts make every client
// call one key at the same instant, and are extra (each client still runs
// its closed loop).
func TestHotKeysAndBursts(t *testing.T) {
	cfg := testConfig("hot")
	cfg.Workload.HotKeys = 2
	cfg.Workload.HotShare = 70
	cfg.Workload.Burst = Latency{Min: time.Second, Max: 2 * time.Second}
	cfg.Workload.BurstOnHeal = true
	cfg.Faults = func(p *Planner) {
		p.At(5*time.Second, "isolate s1", func(w *World) { w.Isolate(1) })
		p.At(7*time.Second, "heal", func(w *World) { w.Heal() })
	}
	hist := historyOf(t, cfg, 1)
	hot := map[string]bool{}
	for _, k := range hotKeys(keyUniverse(cfg.Workload.Keys), 2) {
		hot[k] = true
	}
	if len(hot) != 2 {
		t.Fatalf("hot keys %v", hot)
	}
	onHot, total := 0, 0
	type instant struct {
		at  int64
		key string
	}
	calls := map[instant]map[int]bool{}
	for _, op := range hist {
		if op.Kind == checker.OpScan || op.Call >= int64(cfg.Duration) {
			continue
		}
		total++
		if hot[op.Key] {
			onHot++
		}
		in := instant{op.Call, op.Key}
		if calls[in] == nil {
			calls[in] = map[int]bool{}
		}
		calls[in][op.ClientID] = true
	}
	if share := float64(onHot) / float64(total); share < 0.6 {
		t.Errorf("%d of %d point ops on hot keys (%.2f), want about 0.7 and more", onHot, total, share)
	}
	bursts := 0
	for _, clients := range calls {
		if len(clients) == cfg.Clients {
			bursts++
		}
	}
	// About one every 1.5 s over 20 s, and two after the heal at 7 s.
	if bursts < 10 || bursts > 20 {
		t.Errorf("%d instants where every client called one key, want 10-20", bursts)
	}
}

func keyUniverse(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = KeyName(i)
	}
	return keys
}

// A store whose tick interval is scaled ticks that much more or less often.
func TestStoreTickScale(t *testing.T) {
	cfg := testConfig("drift")
	cfg.Duration = 5 * time.Second
	cfg.StoreTickScale = []float64{1.25, 0, 0.8}
	cfg.Buggify = Buggify{Off: true} // no store crashed by a fault hook (its ticks pause while it is down)
	var trace bytes.Buffer
	rep := Run(cfg, 1, &trace)
	if !rep.OK {
		t.Fatal(rep.Violation)
	}
	ticks := map[string]int{}
	for _, line := range strings.Split(trace.String(), "\n") {
		if i := strings.Index(line, " tick s"); i >= 0 {
			ticks[line[i+1:]]++
		}
	}
	s1, s2, s3 := float64(ticks["tick s1"]), float64(ticks["tick s2"]), float64(ticks["tick s3"])
	if r := s1 / s2; r < 0.78 || r > 0.82 {
		t.Errorf("s1 ticked %v times, s2 %v: ratio %.3f, want 0.8", s1, s2, r)
	}
	if r := s3 / s2; r < 1.22 || r > 1.28 {
		t.Errorf("s3 ticked %v times, s2 %v: ratio %.3f, want 1.25", s3, s2, r)
	}
}

// Resolve applies PerSeed once, and what is set after it sticks.
func TestResolve(t *testing.T) {
	cfg := testConfig("per-seed")
	cfg.PerSeed = func(c Config, seed uint64) Config {
		c.Clients = int(seed)
		c.Mix = "clients=" + strings.Repeat("x", int(seed))
		return c
	}
	r := cfg.Resolve(3)
	if r.Clients != 3 || r.Mix != "clients=xxx" || r.PerSeed != nil {
		t.Fatalf("resolved: clients %d, mix %q, per-seed cleared %v", r.Clients, r.Mix, r.PerSeed == nil)
	}
	r.Clients = 1
	if again := r.Resolve(3); again.Clients != 1 {
		t.Fatalf("resolving again changed the clients to %d", again.Clients)
	}
	r.Duration = 4 * time.Second
	a, b := Run(r, 3, nil), Run(r, 3, nil)
	if a.Mix != "clients=xxx" || a.TraceHash != b.TraceHash {
		t.Fatalf("mix %q, hashes %s %s", a.Mix, a.TraceHash, b.TraceHash)
	}
}
