package netsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/rng"
)

// run routes a fixed traffic pattern and renders every decision.
func run(seed uint64, cfg Config) string {
	n := New(cfg, rng.Stream(seed, "net"))
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		from, to := NodeID(i%5+1), NodeID((i*7)%5+1)
		if i == 500 {
			n.Partition([]NodeID{1, 2}, []NodeID{3, 4})
		}
		if i == 1000 {
			n.Heal()
			n.SetLinkLatency(2, 3, Latency{Min: 40 * time.Millisecond, Max: 60 * time.Millisecond})
		}
		fmt.Fprintln(&b, from, to, n.Route(from, to))
	}
	fmt.Fprintln(&b, n.Stats(), n.Describe())
	return b.String()
}

func lossyConfig() Config {
	cfg := DefaultConfig()
	cfg.Latency.TailProb = 0.2
	cfg.Loss = 0.1
	cfg.Duplicate = 0.1
	return cfg
}

func TestDeterministic(t *testing.T) {
	a, b := run(42, lossyConfig()), run(42, lossyConfig())
	if a != b {
		t.Fatal("same seed and calls gave different results")
	}
}

func TestSeedMatters(t *testing.T) {
	if run(1, lossyConfig()) == run(2, lossyConfig()) {
		t.Fatal("different seeds gave identical results")
	}
}

// A blocked message must not shift the random draws of later messages.
func TestBlockedMessageKeepsStream(t *testing.T) {
	cfg := lossyConfig()
	a := New(cfg, rng.New(7))
	b := New(cfg, rng.New(7))
	b.Isolate(9)
	for i := 0; i < 100; i++ {
		a.Route(9, 1)
		if got := b.Route(9, 1); got != nil {
			t.Fatalf("isolated send delivered: %v", got)
		}
		if x, y := a.Route(1, 2), b.Route(1, 2); !slices.Equal(x, y) {
			t.Fatalf("send %d: %v vs %v", i, x, y)
		}
	}
}

func TestLossRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Loss = 0.3
	n := New(cfg, rng.New(3))
	const total = 20000
	lost := 0
	for i := 0; i < total; i++ {
		if len(n.Route(1, 2)) == 0 {
			lost++
		}
	}
	rate := float64(lost) / total
	if rate < 0.27 || rate > 0.33 {
		t.Fatalf("loss rate %.3f, want ~0.3", rate)
	}
	s := n.Stats()
	if s.Sent != total || s.Dropped != uint64(lost) || s.Delivered != uint64(total-lost) || s.Partitioned != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNoLossByDefault(t *testing.T) {
	n := New(DefaultConfig(), rng.New(3))
	for i := 0; i < 5000; i++ {
		if got := n.Route(1, 2); len(got) != 1 {
			t.Fatalf("default config routed %v", got)
		}
	}
}

func TestDuplicate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duplicate = 1
	n := New(cfg, rng.New(4))
	for i := 0; i < 100; i++ {
		if got := n.Route(1, 2); len(got) != 2 {
			t.Fatalf("duplicate=1 routed %v", got)
		}
	}
	if s := n.Stats(); s.Duplicated != 100 || s.Delivered != 200 {
		t.Fatalf("stats %+v", s)
	}

	cfg.Duplicate = 0.2
	n = New(cfg, rng.New(4))
	dups, differ := 0, false
	for i := 0; i < 10000; i++ {
		got := n.Route(1, 2)
		if len(got) == 2 {
			dups++
			differ = differ || got[0] != got[1]
		}
	}
	if dups < 1700 || dups > 2300 {
		t.Fatalf("%d duplicates of 10000, want ~2000", dups)
	}
	if !differ {
		t.Fatal("duplicate copies never got their own latency")
	}
}

func TestLatencyBounds(t *testing.T) {
	l := Latency{Min: 2 * time.Millisecond, Max: 7 * time.Millisecond, TailProb: 0.1, TailMax: 30 * time.Millisecond}
	n := New(Config{Latency: l}, rng.New(5))
	var lo, hi time.Duration = time.Hour, 0
	tail := 0
	for i := 0; i < 20000; i++ {
		d := n.Route(1, 2)[0]
		if d < l.Min || d > l.Max+l.TailMax {
			t.Fatalf("delay %v outside [%v,%v]", d, l.Min, l.Max+l.TailMax)
		}
		lo, hi = min(lo, d), max(hi, d)
		if d > l.Max {
			tail++
		}
	}
	if lo > l.Min+100*time.Microsecond || hi < l.Max+l.TailMax-time.Millisecond {
		t.Fatalf("delays span only [%v,%v]", lo, hi)
	}
	if tail < 1000 || tail > 2200 {
		t.Fatalf("%d tail delays of 20000, want ~1600 (10%% beyond Max, some tails are tiny)", tail)
	}

	// Without a tail, delays stay in [Min, Max].
	l.TailProb = 0
	n = New(Config{Latency: l}, rng.New(5))
	for i := 0; i < 5000; i++ {
		if d := n.Route(1, 2)[0]; d < l.Min || d > l.Max {
			t.Fatalf("delay %v outside [%v,%v]", d, l.Min, l.Max)
		}
	}
}

func TestSelfSend(t *testing.T) {
	cfg := lossyConfig()
	cfg.Loss = 1
	n := New(cfg, rng.New(6))
	n.Isolate(1)
	n.Partition([]NodeID{1}, []NodeID{2})
	for i := 0; i < 100; i++ {
		if got := n.Route(1, 1); !slices.Equal(got, []time.Duration{cfg.Latency.Min}) {
			t.Fatalf("self-send routed %v", got)
		}
	}
	if !n.Connected(1, 1) {
		t.Fatal("node not connected to itself")
	}
}

// delivered reports whether a message from -> to got through, and checks that
// Route agrees with Connected.
func delivered(t *testing.T, n *Network, from, to NodeID) bool {
	t.Helper()
	ok := len(n.Route(from, to)) > 0
	if ok != n.Connected(from, to) {
		t.Fatalf("%d->%d: Route delivered=%v, Connected=%v", from, to, ok, n.Connected(from, to))
	}
	return ok
}

func TestPartition(t *testing.T) {
	n := New(DefaultConfig(), rng.New(8))
	n.Partition([]NodeID{1, 2}, []NodeID{3, 4})
	for _, c := range []struct {
		from, to NodeID
		want     bool
	}{
		{1, 2, true}, {2, 1, true}, {3, 4, true}, {4, 3, true},
		{1, 3, false}, {3, 1, false}, {2, 4, false}, {4, 2, false},
		// 5 is in no group: talks to everyone.
		{5, 1, true}, {1, 5, true}, {5, 3, true}, {4, 5, true},
	} {
		if got := delivered(t, n, c.from, c.to); got != c.want {
			t.Errorf("%d->%d delivered=%v, want %v", c.from, c.to, got, c.want)
		}
	}
	if s := n.Stats(); s.Partitioned != 4 {
		t.Errorf("partitioned %d, want 4", s.Partitioned)
	}

	// A second partition composes with the first.
	n.Partition([]NodeID{1}, []NodeID{2, 5})
	if delivered(t, n, 1, 2) || delivered(t, n, 5, 1) || !delivered(t, n, 2, 5) || delivered(t, n, 1, 3) {
		t.Error("second partition did not compose")
	}

	n.Heal()
	for from := NodeID(1); from <= 5; from++ {
		for to := NodeID(1); to <= 5; to++ {
			if !delivered(t, n, from, to) {
				t.Errorf("after heal %d->%d blocked", from, to)
			}
		}
	}
}

func TestPartitionDuplicateNodePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("node in two groups did not panic")
		}
	}()
	New(DefaultConfig(), rng.New(1)).Partition([]NodeID{1, 2}, []NodeID{2, 3})
}

func TestIsolate(t *testing.T) {
	n := New(DefaultConfig(), rng.New(9))
	n.Isolate(2)
	for _, peer := range []NodeID{1, 3, 100} {
		if delivered(t, n, 2, peer) || delivered(t, n, peer, 2) {
			t.Errorf("isolated node 2 talks with %d", peer)
		}
	}
	if !delivered(t, n, 1, 3) || !delivered(t, n, 3, 1) {
		t.Error("isolation of 2 blocked 1<->3")
	}
	n.Heal()
	if !delivered(t, n, 2, 1) || !delivered(t, n, 1, 2) {
		t.Error("heal did not end isolation")
	}
}

func TestBlockOneWay(t *testing.T) {
	n := New(DefaultConfig(), rng.New(10))
	n.BlockOneWay(1, 2)
	if delivered(t, n, 1, 2) {
		t.Error("1->2 delivered despite one-way block")
	}
	if !delivered(t, n, 2, 1) {
		t.Error("2->1 blocked by one-way block 1->2")
	}
	if !delivered(t, n, 1, 3) || !delivered(t, n, 3, 2) {
		t.Error("one-way block leaked to other links")
	}
	n.Heal()
	if !delivered(t, n, 1, 2) {
		t.Error("heal did not remove one-way block")
	}
}

func TestLinkLatency(t *testing.T) {
	n := New(DefaultConfig(), rng.New(11))
	slow := Latency{Min: 100 * time.Millisecond, Max: 120 * time.Millisecond}
	n.SetLinkLatency(1, 2, slow)
	for i := 0; i < 1000; i++ {
		if d := n.Route(1, 2)[0]; d < slow.Min || d > slow.Max {
			t.Fatalf("1->2 delay %v outside override [%v,%v]", d, slow.Min, slow.Max)
		}
		def := DefaultConfig().Latency
		if d := n.Route(2, 1)[0]; d < def.Min || d > def.Max+def.TailMax {
			t.Fatalf("2->1 delay %v: override not directional", d)
		}
	}
	// The override survives SetConfig; Heal removes it.
	n.SetConfig(Config{Latency: Latency{Min: time.Millisecond, Max: time.Millisecond}})
	if d := n.Route(1, 2)[0]; d < slow.Min {
		t.Fatalf("override lost on SetConfig: %v", d)
	}
	n.Heal()
	if d := n.Route(1, 2)[0]; d != time.Millisecond {
		t.Fatalf("after heal 1->2 delay %v, want 1ms", d)
	}
}

func TestSetConfig(t *testing.T) {
	n := New(DefaultConfig(), rng.New(12))
	n.Partition([]NodeID{1}, []NodeID{2})
	cfg := DefaultConfig()
	cfg.Loss = 1
	n.SetConfig(cfg)
	if n.Connected(1, 2) {
		t.Error("SetConfig healed a partition")
	}
	if got := n.Route(1, 3); got != nil {
		t.Errorf("loss=1 delivered %v", got)
	}
	n.Heal()
	if n.Config().Loss != 1 {
		t.Error("Heal reset the config")
	}
}

func TestInvalidConfigPanics(t *testing.T) {
	for _, cfg := range []Config{
		{Latency: Latency{Min: 5, Max: 1}},
		{Latency: Latency{Min: -1, Max: 1}},
		{Latency: Latency{Max: 1, TailProb: 2}},
		{Loss: 1.5},
		{Duplicate: -0.1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("config %+v did not panic", cfg)
				}
			}()
			New(cfg, rng.New(1))
		}()
	}
}

func TestDescribe(t *testing.T) {
	build := func(order bool) *Network {
		n := New(DefaultConfig(), rng.New(13))
		ops := []func(){
			func() { n.Isolate(9) },
			func() { n.Isolate(4) },
			func() { n.BlockOneWay(5, 6) },
			func() { n.BlockOneWay(1, 7) },
			func() { n.SetLinkLatency(3, 1, Latency{Min: time.Second, Max: time.Second}) },
			func() { n.SetLinkLatency(1, 3, Latency{Min: 50 * time.Millisecond, Max: 80 * time.Millisecond}) },
		}
		if order {
			slices.Reverse(ops)
		}
		n.Partition([]NodeID{3, 1, 2}, []NodeID{8})
		for _, op := range ops {
			op()
		}
		return n
	}
	want := "latency=[1ms,5ms]+tail(0.01,20ms) loss=0 dup=0; partition {1,2,3}|{8}; isolate 4; isolate 9; " +
		"block 1->7; block 5->6; link 1->3 [50ms,80ms]; link 3->1 [1s,1s]"
	for _, order := range []bool{false, true} {
		if got := build(order).Describe(); got != want {
			t.Errorf("Describe:\n got %s\nwant %s", got, want)
		}
	}
	n := build(false)
	n.Heal()
	if got := n.Describe(); got != "latency=[1ms,5ms]+tail(0.01,20ms) loss=0 dup=0" {
		t.Errorf("healed Describe: %s", got)
	}
}
