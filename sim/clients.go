package sim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/client"
	"github.com/multiraft/multiraft/core/rng"
)

// clientTick is how often client actors check their timers.
const clientTick = 10 * time.Millisecond

// clientNode is one simulated client: a closed loop of operations drawn
// from the workload stream, each recorded into the history.
type clientNode struct {
	w        *World
	index    int
	node     uint64
	c        *client.Client
	r        *rng.Rand
	inflight map[uint64]int64 // op id -> call time
	seq      int
	versions map[string]uint64 // last version seen per key, for cas
	extra    map[uint64]bool   // burst ops in flight: they start no next op
	// done, when set, takes the client's completions instead of the
	// history (the liveness client's ops are checked on their own).
	done func(client.Completion)
}

// addClient starts client i: its workload loop and the ticks of its timers.
func (w *World) addClient(i int) {
	cn := w.newClient(i)
	for lane := 0; lane < max(1, w.cfg.Workload.Pipeline); lane++ {
		w.k.after(cn.think(), "", cn.next)
	}
}

// newClient starts client i's timers, with no workload of its own.
func (w *World) newClient(i int) *clientNode {
	node := uint64(FirstClientNode + i)
	r := w.rs.work.Fork()
	cn := &clientNode{w: w, index: i, node: node, r: r, inflight: map[uint64]int64{}, versions: map[string]uint64{},
		extra: map[uint64]bool{}}
	env := w.env(node, nil, "", w.rs.node.Fork())
	if i < w.cfg.Clients && i < len(w.cfg.ClientClockSkew) {
		// Drawn only where a skew is configured: the other runs draw
		// nothing (and the stream is the run's own).
		if off := w.cfg.ClientClockSkew[i].draw(w.rs.clock); off != 0 {
			env.Clock = skewedClock{w.k, off}
			w.k.note("client %d clock off by %v", node, off)
		}
	}
	cn.c = client.New(env, client.Config{ID: node, PD: PDNode, AttemptTimeout: w.cfg.Workload.AttemptTimeout})
	w.clients = append(w.clients, cn)
	var tick func()
	tick = func() {
		cn.c.Tick()
		cn.collect()
		w.k.after(clientTick, "", tick)
	}
	w.k.after(clientTick, "", tick)
	return cn
}

// KeyName is the i-th key of the workload's universe. Keys are spread over
// the alphabet so that every initial region gets some.
func KeyName(i int) string {
	return fmt.Sprintf("%c%03d", 'a'+byte(i%26), i/26)
}

func (cn *clientNode) think() time.Duration { return cn.w.cfg.Workload.Think.draw(cn.r) }

// next starts the client's next workload operation.
func (cn *clientNode) next() {
	if cn.w.workloadOver {
		return
	}
	cn.submit(cn.nextOp())
}

func (cn *clientNode) submit(op client.Op) {
	id := cn.c.Submit(op)
	cn.inflight[id] = int64(cn.w.k.now)
	cn.collect()
}

// hotKeys are the workload's n hot keys, spread over the universe: the
// middle key of each of n equal slices of it.
func hotKeys(keys []string, n int) []string {
	n = min(n, len(keys))
	hot := make([]string, n)
	for i := range hot {
		hot[i] = keys[(2*i+1)*len(keys)/(2*n)]
	}
	return hot
}

func (cn *clientNode) nextOp() client.Op {
	wl := cn.w.cfg.Workload
	keys := cn.w.keys
	key := keys[cn.r.Intn(len(keys))]
	if len(cn.w.hot) > 0 && cn.r.Intn(100) < wl.HotShare {
		key = cn.w.hot[cn.r.Intn(len(cn.w.hot))]
	}
	total := wl.Get + wl.Put + wl.Delete + wl.Cas + wl.Scan
	x := cn.r.Intn(total)
	switch {
	case x < wl.Get:
		return client.Op{Kind: client.Get, Key: []byte(key)}
	case x < wl.Get+wl.Put:
		return client.Op{Kind: client.Put, Key: []byte(key), Value: cn.value()}
	case x < wl.Get+wl.Put+wl.Delete:
		return client.Op{Kind: client.Delete, Key: []byte(key)}
	case x < wl.Get+wl.Put+wl.Delete+wl.Cas:
		expected := cn.versions[key]
		if cn.r.Intn(4) == 0 {
			expected = uint64(cn.r.Intn(3)) // sometimes a guess, often wrong
		}
		return client.Op{Kind: client.Cas, Key: []byte(key), ExpectedVersion: expected, Value: cn.value()}
	default:
		end := keys[cn.r.Intn(len(keys))]
		if end <= key {
			end = wl.ScanMax // to +inf, or the workload's bound
		}
		return client.Op{Kind: client.Scan, Start: []byte(key), End: []byte(end), Limit: wl.ScanLimit}
	}
}

// value is unique per write, as the checker requires.
func (cn *clientNode) value() []byte {
	cn.seq++
	v := fmt.Sprintf("c%d-%d", cn.index, cn.seq)
	if pad := cn.w.cfg.Workload.ValueSize - len(v); pad > 0 {
		v += "-" + strings.Repeat("x", pad-1)
	}
	return []byte(v)
}

// collect records finished operations and starts the next ones.
func (cn *clientNode) collect() {
	for _, c := range cn.c.Completed() {
		call, ok := cn.inflight[c.ID]
		if !ok {
			continue
		}
		delete(cn.inflight, c.ID)
		if cn.done != nil {
			cn.done(c)
			continue
		}
		extra := cn.extra[c.ID]
		delete(cn.extra, c.ID)
		cn.w.recordOp(cn.record(c, call), writeID{session: string(c.Session), seq: c.Sequence})
		if c.Outcome == client.OK && c.Op.Kind.IsWrite() && cn.w.probe != nil {
			cn.w.probe.clientWrote(c.Op.Key)
		}
		if c.Outcome != client.OK && c.Op.Kind.IsWrite() && errors.Is(c.Err, client.ErrOpTimeout) {
			cn.w.metrics.writesPastDeadline++
		}
		if c.Outcome == client.OK {
			switch c.Op.Kind {
			case client.Get, client.Put:
				cn.versions[string(c.Op.Key)] = c.Version
			case client.Cas:
				cn.versions[string(c.Op.Key)] = c.Version
			case client.Delete:
				cn.versions[string(c.Op.Key)] = 0
			}
		}
		if !cn.w.workloadOver && !extra {
			cn.w.k.after(cn.think(), "", cn.next)
		}
	}
}

// startBursts schedules the workload's periodic bursts, if it has any.
func (w *World) startBursts() {
	if w.cfg.Workload.Burst.Max <= 0 {
		return
	}
	var next func()
	next = func() {
		if w.workloadOver {
			return
		}
		w.burst()
		w.k.after(w.cfg.Workload.Burst.draw(w.rs.burst), "", next)
	}
	w.k.after(w.cfg.Workload.Burst.draw(w.rs.burst), "", next)
}

// burst makes every workload client send one operation on one key (a hot
// key when there are some) at this instant: each reads it or, half the
// time, writes it (a put, or a cas on the version it saw last). These
// operations are extra: their completion starts no closed-loop operation.
func (w *World) burst() {
	if w.workloadOver || len(w.clients) == 0 {
		return
	}
	keys := w.hot
	if len(keys) == 0 {
		keys = w.keys
	}
	key := keys[w.rs.burst.Intn(len(keys))]
	w.k.note("burst on %q", key)
	for _, cn := range w.clients {
		var op client.Op
		switch w.rs.burst.Intn(4) {
		case 0, 1:
			op = client.Op{Kind: client.Get, Key: []byte(key)}
		case 2:
			op = client.Op{Kind: client.Put, Key: []byte(key), Value: cn.value()}
		default:
			op = client.Op{Kind: client.Cas, Key: []byte(key), ExpectedVersion: cn.versions[key], Value: cn.value()}
		}
		id := cn.c.Submit(op)
		cn.inflight[id] = int64(w.k.now)
		cn.extra[id] = true
	}
	for _, cn := range w.clients {
		cn.collect()
	}
}

func (cn *clientNode) record(c client.Completion, call int64) checker.Op {
	op := checker.Op{
		ClientID:        cn.index,
		Key:             string(c.Op.Key),
		Value:           string(c.Op.Value),
		ExpectedVersion: c.Op.ExpectedVersion,
		ScanStart:       string(c.Op.Start),
		ScanEnd:         string(c.Op.End),
		ScanLimit:       c.Op.Limit,
		Call:            call,
		Return:          int64(cn.w.k.now),
		Found:           c.Found,
		ResultValue:     string(c.Value),
		Version:         c.Version,
		Deleted:         c.Deleted,
		CasSucceeded:    c.CasSucceeded,
	}
	switch c.Op.Kind {
	case client.Get:
		op.Kind = checker.OpGet
	case client.Put:
		op.Kind = checker.OpPut
	case client.Delete:
		op.Kind = checker.OpDelete
	case client.Cas:
		op.Kind = checker.OpCas
	case client.Scan:
		op.Kind = checker.OpScan
	}
	switch c.Outcome {
	case client.OK:
		op.Outcome = checker.OutcomeOK
	case client.Failed:
		op.Outcome = checker.OutcomeFailed
	default:
		op.Outcome = checker.OutcomeAmbiguous
	}
	for _, p := range c.Pairs {
		op.Pairs = append(op.Pairs, checker.Pair{Key: string(p.Key), Value: string(p.Value), Version: p.Version})
	}
	return op
}

// clientsIdle reports whether no client has an operation in flight.
func (w *World) clientsIdle() bool {
	for _, c := range w.clients {
		if len(c.inflight) > 0 {
			return false
		}
	}
	return true
}
