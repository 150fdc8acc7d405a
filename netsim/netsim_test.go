package netsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/rng"
)

// traffic is message i of a fixed pattern: sent 50µs after the one before,
// between nodes 1-5 (every fifth a self-send), of 0 to 20 kB.
func traffic(i int) (now time.Duration, from, to NodeID, size int) {
	return time.Duration(i) * 50 * time.Microsecond, NodeID(i%5 + 1), NodeID((i*7)%5 + 1), (i * 7919) % 20000
}

// run routes the traffic pattern and renders every decision.
func run(seed uint64, cfg Config) string {
	n := New(cfg, rng.Stream(seed, "net"))
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		now, from, to, size := traffic(i)
		if i == 500 {
			n.Partition([]NodeID{1, 2}, []NodeID{3, 4})
		}
		if i == 1000 {
			n.Heal()
			n.SetLinkLatency(2, 3, Latency{Min: 40 * time.Millisecond, Max: 60 * time.Millisecond})
		}
		fmt.Fprintln(&b, from, to, n.Route(now, from, to, size))
	}
	fmt.Fprintln(&b, n.Stats(), n.Describe())
	return b.String()
}

// lossyConfig loses and duplicates messages, often delays them by a tail,
// and has links slow enough for messages to queue: 50 MB/s, and 1 MB/s
// from 2 to 3.
func lossyConfig() Config {
	cfg := DefaultConfig()
	cfg.Latency.TailProb = 0.2
	cfg.Loss = 0.1
	cfg.Duplicate = 0.1
	cfg.Bandwidth = 50_000_000
	cfg.LinkBandwidth = map[Link]int64{{2, 3}: 1_000_000}
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
		a.Route(0, 9, 1, 0)
		if got := b.Route(0, 9, 1, 0); got != nil {
			t.Fatalf("isolated send delivered: %v", got)
		}
		if x, y := a.Route(0, 1, 2, 0), b.Route(0, 1, 2, 0); !slices.Equal(x, y) {
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
		if len(n.Route(0, 1, 2, 0)) == 0 {
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
		if got := n.Route(0, 1, 2, 0); len(got) != 1 {
			t.Fatalf("default config routed %v", got)
		}
	}
}

func TestDuplicate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duplicate = 1
	n := New(cfg, rng.New(4))
	for i := 0; i < 100; i++ {
		if got := n.Route(0, 1, 2, 0); len(got) != 2 {
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
		got := n.Route(0, 1, 2, 0)
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

// A late copy arrives LateDelay after the message's first copy, last of
// its copies; turning late copies on changes no other decision.
func TestLateCopy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duplicate = 0.3
	cfg.Late = 0.25
	cfg.LateDelay = Latency{Min: time.Second, Max: 4 * time.Second}
	plain := cfg
	plain.Late, plain.LateDelay = 0, Latency{}
	n, p := New(cfg, rng.New(9)), New(plain, rng.New(9))
	late := 0
	for i := 0; i < 10000; i++ {
		now := time.Duration(i) * time.Millisecond
		got := slices.Clone(n.Route(now, 1, 2, 100))
		want := p.Route(now, 1, 2, 100)
		if !slices.Equal(got[:len(want)], want) {
			t.Fatalf("message %d: late copies on routed %v, off %v: the other copies changed", i, got, want)
		}
		switch len(got) - len(want) {
		case 0:
		case 1:
			late++
			if d := got[len(got)-1] - got[0]; d < cfg.LateDelay.Min || d > cfg.LateDelay.Max {
				t.Fatalf("message %d: late copy %v after the first, want within %v", i, d, cfg.LateDelay)
			}
		default:
			t.Fatalf("message %d: late copies on routed %v, off %v", i, got, want)
		}
	}
	if late < 2200 || late > 2800 {
		t.Fatalf("%d late copies of 10000, want ~2500", late)
	}
	if s := n.Stats(); s.Late != uint64(late) || s.Delivered != p.Stats().Delivered+uint64(late) {
		t.Fatalf("stats %+v, %d late", s, late)
	}
	if d := n.Describe(); !strings.Contains(d, "late=0.25 after [1s,4s]") {
		t.Fatalf("Describe() = %q, want the late copies named", d)
	}
	if d := p.Describe(); strings.Contains(d, "late=") {
		t.Fatalf("Describe() = %q without late copies", d)
	}
}

func TestLatencyBounds(t *testing.T) {
	l := Latency{Min: 2 * time.Millisecond, Max: 7 * time.Millisecond, TailProb: 0.1, TailMax: 30 * time.Millisecond}
	n := New(Config{Latency: l}, rng.New(5))
	var lo, hi time.Duration = time.Hour, 0
	tail := 0
	for i := 0; i < 20000; i++ {
		d := n.Route(0, 1, 2, 0)[0]
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
		if d := n.Route(0, 1, 2, 0)[0]; d < l.Min || d > l.Max {
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
		if got := n.Route(0, 1, 1, 0); !slices.Equal(got, []time.Duration{cfg.Latency.Min}) {
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
	ok := len(n.Route(0, from, to, 0)) > 0
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
		if d := n.Route(0, 1, 2, 0)[0]; d < slow.Min || d > slow.Max {
			t.Fatalf("1->2 delay %v outside override [%v,%v]", d, slow.Min, slow.Max)
		}
		def := DefaultConfig().Latency
		if d := n.Route(0, 2, 1, 0)[0]; d < def.Min || d > def.Max+def.TailMax {
			t.Fatalf("2->1 delay %v: override not directional", d)
		}
	}
	// The override survives SetConfig; Heal removes it.
	n.SetConfig(Config{Latency: Latency{Min: time.Millisecond, Max: time.Millisecond}})
	if d := n.Route(0, 1, 2, 0)[0]; d < slow.Min {
		t.Fatalf("override lost on SetConfig: %v", d)
	}
	n.Heal()
	if d := n.Route(0, 1, 2, 0)[0]; d != time.Millisecond {
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
	if got := n.Route(0, 1, 3, 0); got != nil {
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
		{Late: 1.1},
		{Late: 0.1, LateDelay: Latency{Min: 2, Max: 1}},
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
		cfg := DefaultConfig()
		cfg.LinkBandwidth = map[Link]int64{{3, 1}: 1000, {1, 2}: 0, {1, 3}: Unlimited}
		ops := []func(){
			func() { n.SetConfig(cfg) },
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
	want := "latency=[1ms,5ms]+tail(0.01,20ms) loss=0 dup=0 bw=125000000B/s; bw 1->3 unlimited; bw 3->1 1000B/s; " +
		"partition {1,2,3}|{8}; isolate 4; isolate 9; block 1->7; block 5->6; link 1->3 [50ms,80ms]; link 3->1 [1s,1s]"
	for _, order := range []bool{false, true} {
		if got := build(order).Describe(); got != want {
			t.Errorf("Describe:\n got %s\nwant %s", got, want)
		}
	}
	n := build(false)
	n.Heal()
	if got := n.Describe(); got != "latency=[1ms,5ms]+tail(0.01,20ms) loss=0 dup=0 bw=125000000B/s; bw 1->3 unlimited; bw 3->1 1000B/s" {
		t.Errorf("healed Describe: %s", got)
	}
}

// fixed is a latency of exactly d.
func fixed(d time.Duration) Latency { return Latency{Min: d, Max: d} }

// mb is a megabyte: 8ms on a 1 Gbit/s link.
const mb = 1_000_000

// route sends one message and expects exactly one copy, returning its delay.
func route(t *testing.T, n *Network, now time.Duration, from, to NodeID, size int) time.Duration {
	t.Helper()
	got := n.Route(now, from, to, size)
	if len(got) != 1 {
		t.Fatalf("%d->%d at %v: %v, want one copy", from, to, now, got)
	}
	return got[0]
}

// A link transmits one message at a time: messages sent back to back arrive
// one transmission time apart, and a later message waits only for the
// bytes still queued.
func TestBandwidthSerializesLink(t *testing.T) {
	n := New(Config{Latency: fixed(time.Millisecond)}, rng.New(20))
	for i := 1; i <= 10; i++ {
		if got, want := route(t, n, 0, 1, 2, mb), time.Duration(i)*8*time.Millisecond+time.Millisecond; got != want {
			t.Fatalf("megabyte %d of 10 sent at once: delay %v, want %v", i, got, want)
		}
	}
	// Sent at 50ms, behind the 30ms of bytes the link still has to send.
	if got, want := route(t, n, 50*time.Millisecond, 1, 2, mb), 39*time.Millisecond; got != want {
		t.Errorf("megabyte sent into a busy link: delay %v, want %v", got, want)
	}
	// By 1s the link is idle again.
	if got, want := route(t, n, time.Second, 1, 2, mb), 9*time.Millisecond; got != want {
		t.Errorf("megabyte sent into an idle link: delay %v, want %v", got, want)
	}
}

func TestBandwidthLinksIndependent(t *testing.T) {
	n := New(Config{Latency: fixed(time.Millisecond)}, rng.New(21))
	route(t, n, 0, 1, 2, 100*mb) // busy for 800ms
	for _, l := range []Link{{2, 1}, {1, 3}, {3, 2}, {3, 1}} {
		if got, want := route(t, n, 0, l.From, l.To, mb), 9*time.Millisecond; got != want {
			t.Errorf("%d->%d waited for 1->2: delay %v, want %v", l.From, l.To, got, want)
		}
	}
}

func TestLinkBandwidth(t *testing.T) {
	cfg := Config{Latency: fixed(time.Millisecond), LinkBandwidth: map[Link]int64{{1, 2}: mb, {2, 1}: 0}}
	n := New(cfg, rng.New(22))
	cfg.LinkBandwidth[Link{1, 3}] = 1 // the network keeps its own copy
	for _, c := range []struct {
		from, to NodeID
		want     time.Duration
	}{
		{1, 2, time.Second + time.Millisecond}, // the override: 1 MB/s
		{2, 1, 9 * time.Millisecond},           // an override of 0 is ignored
		{1, 3, 9 * time.Millisecond},
	} {
		if got := route(t, n, 0, c.from, c.to, mb); got != c.want {
			t.Errorf("%d->%d: delay %v, want %v", c.from, c.to, got, c.want)
		}
	}
	// Heal keeps the override.
	n.Heal()
	if got, want := route(t, n, 2*time.Second, 1, 2, mb), time.Second+time.Millisecond; got != want {
		t.Errorf("after heal 1->2: delay %v, want %v", got, want)
	}
	// Without the override, the next megabyte still waits for the one
	// queued before at 1 MB/s, then takes 8ms.
	n.SetConfig(Config{Latency: fixed(time.Millisecond)})
	if got, want := route(t, n, 2500*time.Millisecond, 1, 2, mb), 509*time.Millisecond; got != want {
		t.Errorf("after override removed 1->2: delay %v, want %v", got, want)
	}
}

func TestDefaultBandwidth(t *testing.T) {
	if DefaultBandwidth != 125_000_000 || DefaultConfig().Bandwidth != DefaultBandwidth {
		t.Fatalf("default bandwidth %d, DefaultConfig %d, want 1 Gbit/s", DefaultBandwidth, DefaultConfig().Bandwidth)
	}
	for _, bw := range []int64{0, -1, DefaultBandwidth} {
		n := New(Config{Bandwidth: bw}, rng.New(23))
		if got := route(t, n, 0, 1, 2, 125_000_000); got != time.Second {
			t.Errorf("bandwidth %d: 125 MB took %v, want 1s", bw, got)
		}
	}
	// Transmission times are rounded down to the nanosecond.
	n := New(Config{Bandwidth: 3}, rng.New(23))
	if got, want := route(t, n, 0, 1, 2, 1), 333333333*time.Nanosecond; got != want {
		t.Errorf("1 byte at 3 B/s took %v, want %v", got, want)
	}
	n = New(Config{Latency: fixed(time.Millisecond), Bandwidth: Unlimited}, rng.New(23))
	for i := 0; i < 10; i++ {
		if got := route(t, n, 0, 1, 2, 1<<30); got != time.Millisecond {
			t.Fatalf("unlimited link: 1 GiB took %v, want the latency only", got)
		}
	}
}

// A lost message occupies its link, a blocked one does not, a duplicate
// occupies it once and a self-send not at all.
func TestBandwidthFates(t *testing.T) {
	ms := time.Millisecond
	n := New(Config{Latency: fixed(ms), Loss: 1}, rng.New(24))
	if got := n.Route(0, 1, 2, mb); got != nil {
		t.Fatalf("loss=1 delivered %v", got)
	}
	n.SetConfig(Config{Latency: fixed(ms)})
	if got := route(t, n, 0, 1, 2, mb); got != 17*ms {
		t.Errorf("after a lost megabyte: delay %v, want 17ms", got)
	}

	n = New(Config{Latency: fixed(ms)}, rng.New(24))
	n.Isolate(2)
	if got := n.Route(0, 1, 2, mb); got != nil {
		t.Fatalf("isolated node reached: %v", got)
	}
	n.Heal()
	if got := route(t, n, 0, 1, 2, mb); got != 9*ms {
		t.Errorf("after a blocked megabyte: delay %v, want 9ms", got)
	}

	n = New(Config{Latency: fixed(ms), Duplicate: 1}, rng.New(24))
	for _, want := range []time.Duration{9 * ms, 17 * ms} {
		if got := n.Route(0, 1, 2, mb); !slices.Equal(got, []time.Duration{want, want}) {
			t.Errorf("duplicated megabyte: delays %v, want two of %v", got, want)
		}
	}

	n = New(Config{Latency: fixed(ms), Bandwidth: 1}, rng.New(24))
	for i := 0; i < 3; i++ {
		if got := route(t, n, 0, 1, 1, mb); got != ms {
			t.Errorf("self-send: delay %v, want 1ms", got)
		}
	}
}

// Bandwidth only adds each message's wait for its link: every message
// meets the same fate, with the same latencies, as on unlimited links.
func TestBandwidthKeepsDraws(t *testing.T) {
	slow := lossyConfig()
	fast := lossyConfig()
	fast.Bandwidth, fast.LinkBandwidth = Unlimited, nil
	a, b := New(fast, rng.New(25)), New(slow, rng.New(25))
	busy := map[Link]time.Duration{}
	for i := 0; i < 2000; i++ {
		now, from, to, size := traffic(i)
		x, y := a.Route(now, from, to, size), b.Route(now, from, to, size)
		var wait time.Duration
		if from != to {
			l := Link{from, to}
			bw := slow.Bandwidth
			if o := slow.LinkBandwidth[l]; o > 0 {
				bw = o
			}
			busy[l] = max(now, busy[l]) + time.Duration(int64(size)*int64(time.Second)/bw)
			wait = busy[l] - now
		}
		if len(x) != len(y) {
			t.Fatalf("message %d: %v unlimited, %v limited", i, x, y)
		}
		for j := range x {
			if y[j]-x[j] != wait {
				t.Fatalf("message %d: %v unlimited, %v limited, want a wait of %v", i, x, y, wait)
			}
		}
	}
	if busy[Link{2, 3}] < time.Second {
		t.Fatalf("the slow link 2->3 queued only until %v", busy[Link{2, 3}])
	}
}

func TestBandwidthOverflowPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a link busy beyond the largest time.Duration did not panic")
		}
	}()
	n := New(Config{Bandwidth: 1}, rng.New(26))
	n.Route(0, 1, 2, 1<<62) // a few million years
}

// A slow link in the Config lasts the whole run: Heal keeps it, a fault
// override on the same link wins while it lasts.
func TestConfigLinkLatency(t *testing.T) {
	slow := fixed(80 * time.Millisecond)
	cfg := Config{Latency: fixed(time.Millisecond), LinkLatency: map[Link]Latency{{1, 2}: slow}}
	n := New(cfg, rng.New(14))
	cfg.LinkLatency[Link{2, 1}] = slow // the network keeps its own copy
	if d := route(t, n, 0, 1, 2, 0); d != slow.Min {
		t.Fatalf("1->2 %v, want %v", d, slow.Min)
	}
	if d := route(t, n, 0, 2, 1, 0); d != time.Millisecond {
		t.Fatalf("2->1 %v, want 1ms: the slow link is directed", d)
	}
	n.SetLinkLatency(1, 2, fixed(time.Second))
	if d := route(t, n, 0, 1, 2, 0); d != time.Second {
		t.Fatalf("fault override: 1->2 %v, want 1s", d)
	}
	n.Heal()
	if d := route(t, n, 0, 1, 2, 0); d != slow.Min {
		t.Fatalf("after heal 1->2 %v, want the slow link's %v", d, slow.Min)
	}
	if got := n.Describe(); !strings.Contains(got, "; slow 1->2 [80ms,80ms]") {
		t.Fatalf("Describe does not list the slow link: %s", got)
	}
	bad := Config{LinkLatency: map[Link]Latency{{1, 2}: {Min: 2, Max: 1}}}
	if bad.Validate() == nil {
		t.Fatal("an invalid link latency passed Validate")
	}
}

// A clog holds a node's messages, both ways, until it ends: they arrive as
// much later as the clog had left, nothing is lost, and the draws of the
// messages are those of an unclogged run.
func TestClog(t *testing.T) {
	cfg := Config{Latency: Latency{Min: time.Millisecond, Max: 3 * time.Millisecond}, Bandwidth: Unlimited}
	plain, clogged := New(cfg, rng.New(15)), New(cfg, rng.New(15))
	clogged.Clog(2, 500*time.Millisecond)
	clogged.Clog(2, 100*time.Millisecond) // never shortens
	clogged.Clog(3, 200*time.Millisecond)
	for i, c := range []struct {
		now      time.Duration
		from, to NodeID
		held     time.Duration
	}{
		{0, 1, 2, 500 * time.Millisecond},
		{100 * time.Millisecond, 2, 1, 400 * time.Millisecond},
		{150 * time.Millisecond, 3, 2, 350 * time.Millisecond}, // the later clog of the two ends
		{150 * time.Millisecond, 1, 3, 50 * time.Millisecond},
		{150 * time.Millisecond, 1, 4, 0},
		{300 * time.Millisecond, 3, 1, 0}, // 3's clog is over
		{600 * time.Millisecond, 1, 2, 0},
	} {
		want := route(t, plain, c.now, c.from, c.to, 0)
		if got := route(t, clogged, c.now, c.from, c.to, 0); got != want+c.held {
			t.Errorf("message %d (%d->%d at %v): %v, want %v + %v held", i, c.from, c.to, c.now, got, want, c.held)
		}
	}
	if d := route(t, clogged, 0, 2, 2, 0); d != time.Millisecond {
		t.Errorf("a clogged node's self-send took %v", d)
	}
	n := New(cfg, rng.New(16))
	n.Clog(1, time.Second)
	n.Clog(2, time.Second)
	if !strings.Contains(n.Describe(), "; clog 1 until 1s; clog 2 until 1s") {
		t.Errorf("Describe: %s", n.Describe())
	}
	n.Unclog(1)
	if d := route(t, n, 0, 1, 3, 0); d > 3*time.Millisecond {
		t.Errorf("after Unclog: %v", d)
	}
	n.Heal()
	if d := route(t, n, 0, 2, 3, 0); d > 3*time.Millisecond {
		t.Errorf("after Heal: %v", d)
	}
}
