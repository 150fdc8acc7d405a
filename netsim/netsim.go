// Package netsim is the simulated network of the deterministic simulator.
//
// It holds neither messages nor a clock. For every message the simulator
// sends, it asks Route when (if ever) copies of that message arrive, and it
// schedules the deliveries on its own event queue. netsim only decides each
// message's fate: dropped by a fault rule (partition, isolation, one-way
// block), lost at random, delivered once, or twice, or once more long after
// (a late copy), and after which delays (a clogged node's messages are held
// until its clog ends: Clog).
//
// Links have a bandwidth. Every directed link from -> to transmits one
// message at a time, in the order they are sent, at its bandwidth
// (Config.Bandwidth, or a Config.LinkBandwidth override): a message sent
// while the link is still busy with earlier bytes waits behind them. A copy
// arrives after the message has finished transmitting plus its drawn
// latency, so 10 MB sent back to back on a 1 Gbit/s link arrive spread over
// 80 ms. The network keeps, per link, the virtual time at which the link is
// free again; the caller passes the virtual time of every send. A message
// lost at random has been transmitted and occupies its link; a message a
// fault rule blocks never reaches the link; a duplicate is made after the
// link and does not occupy it again; a self-send uses no link.
//
// All randomness comes from the rng.Rand handed to New. Every Route call
// takes exactly one draw from that generator (it forks a private child for
// the message and makes all of its decisions from the child in a fixed
// order), so the same seed and the same sequence of calls give the same
// results, and a fault rule that blocks a message does not shift the random
// draws of the messages after it. Bandwidth takes no draws: it only adds
// each message's wait for its link. No decision depends on map iteration
// order.
package netsim

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/multiraft/multiraft/core/rng"
)

// NodeID identifies an endpoint on the network: a store, PD or a client.
type NodeID = uint64

// Latency is a delay distribution: uniform in [Min, Max], plus, with
// probability TailProb, an extra delay uniform in [0, TailMax]. The tail is
// what reorders messages on one link.
type Latency struct {
	Min, Max time.Duration
	TailProb float64
	TailMax  time.Duration
}

// Validate reports whether l is a usable distribution.
func (l Latency) Validate() error {
	switch {
	case l.Min < 0 || l.Max < 0 || l.TailMax < 0:
		return fmt.Errorf("netsim: negative latency in %v", l)
	case l.Max < l.Min:
		return fmt.Errorf("netsim: latency max %v < min %v", l.Max, l.Min)
	case !(l.TailProb >= 0 && l.TailProb <= 1):
		return fmt.Errorf("netsim: latency tail probability %v not in [0,1]", l.TailProb)
	}
	return nil
}

// String renders l deterministically, e.g. "[1ms,5ms]+tail(0.01,20ms)".
func (l Latency) String() string {
	s := fmt.Sprintf("[%v,%v]", l.Min, l.Max)
	if l.TailProb > 0 && l.TailMax > 0 {
		s += fmt.Sprintf("+tail(%v,%v)", l.TailProb, l.TailMax)
	}
	return s
}

// sample draws one delay from l using r, in a fixed order: base, then tail
// chance, then tail amount (only if the tail is taken).
func (l Latency) sample(r *rng.Rand) time.Duration {
	d := l.Min + uniform(r, l.Max-l.Min)
	if l.TailProb > 0 && l.TailMax > 0 && r.Chance(l.TailProb) {
		d += uniform(r, l.TailMax)
	}
	return d
}

// uniform returns a duration uniform in [0, span].
func uniform(r *rng.Rand, span time.Duration) time.Duration {
	if span <= 0 {
		return 0
	}
	return time.Duration(r.Int63n(int64(span) + 1))
}

// DefaultBandwidth is the bandwidth of a link whose configuration gives
// none: 1 Gbit/s, in bytes per second.
const DefaultBandwidth int64 = 125_000_000

// Unlimited is a bandwidth at which a link transmits any message smaller
// than 9 GB in no time, so it adds no delay of its own.
const Unlimited int64 = math.MaxInt64

// Link is a directed link between two nodes.
type Link struct{ From, To NodeID }

// Config is the network-wide behaviour; fault rules (partitions, blocks,
// per-link latency) are layered on top of it.
type Config struct {
	Latency   Latency // default latency of every link
	Loss      float64 // probability a message is dropped
	Duplicate float64 // probability a delivered message arrives twice; the second copy gets its own latency
	// Late is the probability that a delivered message arrives once more,
	// long after its first copy: a copy held up in a queue somewhere, or
	// resent by a connection that did not know the first got through. The
	// late copy arrives LateDelay after the first one. It is what brings a
	// message to a replica after the replica was removed, or a vote after
	// the election it was for.
	Late      float64
	LateDelay Latency // how long after the first copy a late copy arrives
	// Bandwidth is the rate, in bytes per second, at which every directed
	// link transmits; 0 or less means DefaultBandwidth.
	Bandwidth int64
	// LinkBandwidth overrides Bandwidth for single directed links, for
	// example to make one store slow. An override of 0 or less is ignored.
	LinkBandwidth map[Link]int64
	// LinkLatency overrides Latency for single directed links for the
	// whole run (a slow link): unlike SetLinkLatency, Heal keeps it. A
	// SetLinkLatency fault on the same link takes precedence while it lasts.
	LinkLatency map[Link]Latency
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := c.Latency.Validate(); err != nil {
		return err
	}
	if !(c.Loss >= 0 && c.Loss <= 1) {
		return fmt.Errorf("netsim: loss %v not in [0,1]", c.Loss)
	}
	if !(c.Duplicate >= 0 && c.Duplicate <= 1) {
		return fmt.Errorf("netsim: duplicate %v not in [0,1]", c.Duplicate)
	}
	if !(c.Late >= 0 && c.Late <= 1) {
		return fmt.Errorf("netsim: late %v not in [0,1]", c.Late)
	}
	if err := c.LateDelay.Validate(); err != nil {
		return fmt.Errorf("netsim: late delay: %w", err)
	}
	for _, l := range sortedLinks(c.LinkLatency) {
		if err := c.LinkLatency[l].Validate(); err != nil {
			return fmt.Errorf("netsim: link %d->%d: %w", l.From, l.To, err)
		}
	}
	return nil
}

// DefaultConfig is a healthy LAN: 1-5ms latency, a 1% tail of up to 20ms
// more, 1 Gbit/s links, no loss, no duplication.
func DefaultConfig() Config {
	return Config{
		Latency:   Latency{Min: time.Millisecond, Max: 5 * time.Millisecond, TailProb: 0.01, TailMax: 20 * time.Millisecond},
		Bandwidth: DefaultBandwidth,
	}
}

// linkBandwidth is the rate, in bytes per second, at which l transmits.
func (c Config) linkBandwidth(l Link) int64 {
	if bw := c.LinkBandwidth[l]; bw > 0 {
		return bw
	}
	return c.bandwidth()
}

// bandwidth is the rate, in bytes per second, of a link without an
// override.
func (c Config) bandwidth() int64 {
	if c.Bandwidth > 0 {
		return c.Bandwidth
	}
	return DefaultBandwidth
}

// Stats counts what Route decided.
type Stats struct {
	Sent        uint64 // Route calls
	Delivered   uint64 // copies scheduled for delivery (duplicates included)
	Dropped     uint64 // messages lost at random (Config.Loss)
	Partitioned uint64 // messages blocked by a partition, isolation or one-way block
	Duplicated  uint64 // extra copies scheduled (Config.Duplicate)
	Late        uint64 // late copies scheduled (Config.Late)
}

// partition is one Partition call: the group index of each listed node, and
// the groups as given (sorted, for Describe).
type partition struct {
	group  map[NodeID]int
	groups [][]NodeID
}

// Network decides the fate of messages. It is not safe for concurrent use.
type Network struct {
	cfg        Config
	r          *rng.Rand
	partitions []partition
	isolated   map[NodeID]bool
	oneWay     map[Link]bool
	links      map[Link]Latency
	// clogged holds, per clogged node, the virtual time until which the
	// messages it sends or receives are held (see Clog).
	clogged map[NodeID]time.Duration
	// busy is, per link that has transmitted, the virtual time at which
	// it has sent every byte given to it so far (held by pointer, so that
	// a message costs one map lookup).
	busy  map[Link]*time.Duration
	stats Stats
	// routed holds Route's answer (valid until its next call).
	routed [3]time.Duration
}

// New returns a healed network with cfg, drawing all randomness from r.
// It panics if cfg is invalid.
func New(cfg Config, r *rng.Rand) *Network {
	if r == nil {
		panic("netsim: nil rng")
	}
	n := &Network{r: r, busy: make(map[Link]*time.Duration)}
	n.SetConfig(cfg)
	n.Heal()
	return n
}

// Config returns the current network-wide configuration.
func (n *Network) Config() Config {
	cfg := n.cfg
	cfg.LinkBandwidth = maps.Clone(cfg.LinkBandwidth)
	cfg.LinkLatency = maps.Clone(cfg.LinkLatency)
	return cfg
}

// SetConfig changes latency, loss, duplication and bandwidth from now on;
// fault rules are kept, and so are the bytes links are still transmitting
// (they finish at the rate they were given). It panics if cfg is invalid.
func (n *Network) SetConfig(cfg Config) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.LinkBandwidth = maps.Clone(cfg.LinkBandwidth)
	cfg.LinkLatency = maps.Clone(cfg.LinkLatency)
	n.cfg = cfg
}

// Route decides the fate of one message of size bytes sent at virtual time
// now from -> to, and returns the delays from now after which its copies
// arrive: none if it is dropped, two if it is duplicated, one more if a
// copy comes late (the late copy is last in the list, though a duplicate
// may arrive after it when its latency is longer). Each delay is the
// time until the message has finished transmitting on its link (waiting
// behind the bytes the link is still sending) plus a drawn latency. A
// self-send (from == to) uses no link and always arrives exactly once,
// after the link's minimum latency, regardless of faults, loss and
// duplication. now must not decrease from one call to the next.
//
// Each call takes exactly one draw from the network's generator. The slice
// returned is the network's own: it is valid until the next call.
func (n *Network) Route(now time.Duration, from, to NodeID, size int) []time.Duration {
	var child rng.Rand
	n.r.ForkInto(&child)
	r := &child
	n.stats.Sent++
	lat := n.latency(from, to)
	if from == to {
		n.stats.Delivered++
		n.routed[0] = lat.Min
		return n.routed[:1]
	}
	if n.blocked(from, to) {
		n.stats.Partitioned++
		return nil
	}
	// A message lost on the way has been transmitted all the same.
	sent := n.transmit(now, Link{from, to}, size)
	// Fixed draw order: loss, duplicate, first delay, second delay, late
	// chance, late delay. The late draws come last, so a run without late
	// copies draws as it did before they existed.
	if r.Chance(n.cfg.Loss) {
		n.stats.Dropped++
		return nil
	}
	dup := r.Chance(n.cfg.Duplicate)
	held := n.held(now, from, to)
	out := n.routed[:1]
	out[0] = held + sent + lat.sample(r)
	if dup {
		out = append(out, held+sent+lat.sample(r))
		n.stats.Duplicated++
	}
	if n.cfg.Late > 0 && r.Chance(n.cfg.Late) {
		out = append(out, out[0]+n.cfg.LateDelay.sample(r))
		n.stats.Late++
	}
	n.stats.Delivered += uint64(len(out))
	return out
}

// transmit puts size bytes on link l at virtual time now, behind the bytes
// it is still sending, and returns how long from now until they have all
// left. The transmission time is rounded down to the nanosecond. It panics
// if the link would be busy past the largest time.Duration.
func (n *Network) transmit(now time.Duration, l Link, size int) time.Duration {
	busy := n.busy[l]
	if busy == nil {
		busy = new(time.Duration)
		n.busy[l] = busy
	}
	start := max(now, *busy)
	bw := uint64(n.cfg.linkBandwidth(l))
	hi, lo := bits.Mul64(uint64(size), uint64(time.Second))
	tx := uint64(math.MaxUint64)
	if hi < bw {
		tx, _ = bits.Div64(hi, lo, bw)
	}
	if tx > uint64(math.MaxInt64-start) {
		panic(fmt.Sprintf("netsim: %d bytes at %d B/s on %d->%d overflow the clock", size, bw, l.From, l.To))
	}
	*busy = start + time.Duration(tx)
	return *busy - now
}

func (n *Network) latency(from, to NodeID) Latency {
	if l, ok := n.links[Link{from, to}]; ok {
		return l
	}
	if l, ok := n.cfg.LinkLatency[Link{from, to}]; ok {
		return l
	}
	return n.cfg.Latency
}

// held is how much longer than usual a message sent now from -> to takes
// because of clogs: until the later of the two ends' clogs is over.
func (n *Network) held(now time.Duration, from, to NodeID) time.Duration {
	until := max(n.clogged[from], n.clogged[to])
	if until <= now {
		return 0
	}
	return until - now
}

func (n *Network) blocked(from, to NodeID) bool {
	if n.isolated[from] || n.isolated[to] || n.oneWay[Link{from, to}] {
		return true
	}
	for _, p := range n.partitions {
		gf, okf := p.group[from]
		gt, okt := p.group[to]
		if okf && okt && gf != gt {
			return true
		}
	}
	return false
}

// Connected reports whether a message from -> to can currently get through
// the fault rules (random loss aside). A node is always connected to itself.
func (n *Network) Connected(from, to NodeID) bool {
	return from == to || !n.blocked(from, to)
}

// Partition adds a partition: nodes in different listed groups cannot talk
// (either direction); nodes in the same group can; nodes in no group are
// unaffected by this partition. Partitions compose with each other and with
// isolation and one-way blocks: a message is blocked if any rule blocks it.
// Listing a node in two groups of one partition panics.
func (n *Network) Partition(groups ...[]NodeID) {
	p := partition{group: make(map[NodeID]int)}
	for i, g := range groups {
		for _, id := range g {
			if j, ok := p.group[id]; ok && j != i {
				panic(fmt.Sprintf("netsim: node %d in partition groups %d and %d", id, j, i))
			}
			p.group[id] = i
		}
		g = slices.Clone(g)
		slices.Sort(g)
		p.groups = append(p.groups, slices.Compact(g))
	}
	n.partitions = append(n.partitions, p)
}

// Isolate cuts node off from every other node, both directions.
func (n *Network) Isolate(node NodeID) {
	n.isolated[node] = true
}

// BlockOneWay drops messages from -> to; messages to -> from still flow.
func (n *Network) BlockOneWay(from, to NodeID) {
	if from != to {
		n.oneWay[Link{from, to}] = true
	}
}

// Clog holds every message node sends or receives from now until virtual
// time until (FoundationDB's clogging): such a message is not lost, it
// arrives as much later as the clog had left to run when it was sent (so
// the held messages arrive in a burst when the clog ends, in the order they
// would have). Self-sends are not held. A clog never shortens: clogging a
// node again until an earlier time changes nothing. Unclog and Heal end
// clogs early for messages sent from then on; messages already held stay
// held. Clogs take no random draws.
func (n *Network) Clog(node NodeID, until time.Duration) {
	if until > n.clogged[node] {
		n.clogged[node] = until
	}
}

// Unclog ends node's clog for the messages sent from now on.
func (n *Network) Unclog(node NodeID) {
	delete(n.clogged, node)
}

// SetLinkLatency overrides the latency of the directed link from -> to
// ("clogging"); the reverse direction is unaffected. It panics if l is
// invalid.
func (n *Network) SetLinkLatency(from, to NodeID, l Latency) {
	if err := l.Validate(); err != nil {
		panic(err)
	}
	n.links[Link{from, to}] = l
}

// Heal removes all partitions, isolations, one-way blocks, clogs and link
// latency overrides. The Config, bandwidth and latency overrides included,
// is kept, and so are the bytes links are still transmitting.
func (n *Network) Heal() {
	n.partitions = nil
	n.isolated = make(map[NodeID]bool)
	n.oneWay = make(map[Link]bool)
	n.links = make(map[Link]Latency)
	n.clogged = make(map[NodeID]time.Duration)
}

// Stats returns the counters since New.
func (n *Network) Stats() Stats { return n.stats }

// Describe renders the configuration and current faults deterministically,
// one clause per rule separated by "; ", for the trace. Example:
//
//	latency=[1ms,5ms]+tail(0.01,20ms) loss=0 dup=0 bw=125000000B/s; bw 2->1 1000000B/s; partition {1,2}|{3}; isolate 4; block 5->6; link 1->3 [50ms,80ms]
func (n *Network) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "latency=%v loss=%v dup=%v bw=%s", n.cfg.Latency, n.cfg.Loss, n.cfg.Duplicate,
		formatBandwidth(n.cfg.bandwidth()))
	if n.cfg.Late > 0 {
		fmt.Fprintf(&b, " late=%v after %v", n.cfg.Late, n.cfg.LateDelay)
	}
	for _, l := range sortedLinks(n.cfg.LinkBandwidth) {
		if n.cfg.LinkBandwidth[l] > 0 {
			fmt.Fprintf(&b, "; bw %d->%d %s", l.From, l.To, formatBandwidth(n.cfg.LinkBandwidth[l]))
		}
	}
	for _, l := range sortedLinks(n.cfg.LinkLatency) {
		fmt.Fprintf(&b, "; slow %d->%d %v", l.From, l.To, n.cfg.LinkLatency[l])
	}
	for _, p := range n.partitions {
		parts := make([]string, 0, len(p.groups))
		for _, g := range p.groups {
			ids := make([]string, len(g))
			for i, id := range g {
				ids[i] = fmt.Sprint(id)
			}
			parts = append(parts, "{"+strings.Join(ids, ",")+"}")
		}
		b.WriteString("; partition " + strings.Join(parts, "|"))
	}
	iso := make([]NodeID, 0, len(n.isolated))
	for id := range n.isolated {
		iso = append(iso, id)
	}
	slices.Sort(iso)
	for _, id := range iso {
		fmt.Fprintf(&b, "; isolate %d", id)
	}
	for _, l := range sortedLinks(n.oneWay) {
		fmt.Fprintf(&b, "; block %d->%d", l.From, l.To)
	}
	for _, l := range sortedLinks(n.links) {
		fmt.Fprintf(&b, "; link %d->%d %v", l.From, l.To, n.links[l])
	}
	clogged := make([]NodeID, 0, len(n.clogged))
	for id := range n.clogged {
		clogged = append(clogged, id)
	}
	slices.Sort(clogged)
	for _, id := range clogged {
		fmt.Fprintf(&b, "; clog %d until %v", id, n.clogged[id])
	}
	return b.String()
}

// formatBandwidth renders a bandwidth as "125000000B/s", or "unlimited".
func formatBandwidth(bw int64) string {
	if bw == Unlimited {
		return "unlimited"
	}
	return fmt.Sprintf("%dB/s", bw)
}

func sortedLinks[V any](m map[Link]V) []Link {
	out := make([]Link, 0, len(m))
	for l := range m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if c := cmp.Compare(a.From, b.From); c != 0 {
			return c
		}
		return cmp.Compare(a.To, b.To)
	})
	return out
}
