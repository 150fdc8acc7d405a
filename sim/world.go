package sim

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/netsim"
)

// World is one simulation in progress: the kernel and random streams, the
// network, PD, the stores and the clients, and what the run records for
// its checks and its report.
type World struct {
	cfg  Config
	seed uint64
	k    *kernel
	rs   streams
	net  *netsim.Network
	log  *slog.Logger
	// wire is the buffer messages are encoded into as they are sent.
	wire []byte
	// outbox holds the raft messages stores sent in the current event,
	// sent on as one batch per pair of stores (batch.go).
	outbox []outBatch

	pd           *pd.PD
	stores       []*storeNode // index = id-1
	clients      []*clientNode
	probe        *probe
	keys         []string // the workload's key universe
	hot          []string // its hot keys (Workload.HotKeys)
	workloadOver bool
	opsReported  bool // the final phase reported operators still running

	// The fault plan's callbacks on splits, membership changes and
	// snapshots (Planner.OnSplitProposed, ...).
	onSplitProposed     []func(w *World, store, region uint64)
	onSplitApplied      []func(w *World, store uint64, left, right *pb.Region)
	onNextLeader        []func(w *World, store, region uint64) // one-shot
	replies             replyWatch
	onMembershipChanged []func(w *World, store uint64, region *pb.Region)
	onSnapshotStarted   []func(w *World, from, to, region uint64)
	onPeerDestroyed     []func(w *World, store, peer uint64, last *pb.Region)
	corruptChunks       map[uint64]int // store -> snapshot chunks to corrupt on arrival
	nextAdminRequest    uint64

	// The fault plan's actions by index (see FaultEdits), and the one
	// running now (-1: none).
	actions []FaultAction
	current int
	// tl records the run for its timeline page; nil unless one was asked
	// for. It only observes.
	tl *Timeline

	history []checker.Op
	// historyWrites ties the history's writes in sessions to their
	// identities (recordOp), and applied says when each identity was first
	// applied by any replica: what turns an ambiguous write into one that
	// took effect by then, or one that never did (resolvedHistory).
	historyWrites []historyWrite
	applied       map[writeID]appliedWrite
	annotations   []checker.Annotation
	violations    []string
	pdWatch       pdWatch
	members       memberWatch
	metrics       *metrics
	// bug is the run's fault hooks and coverage counters (core/buggify),
	// handed to every node in its Env.
	bug *buggify.Run
}

func newWorld(cfg Config, seed uint64, trace io.Writer) *World {
	w := &World{
		cfg:     cfg,
		seed:    seed,
		k:       newKernel(trace),
		rs:      newStreams(seed),
		log:     slog.New(slog.DiscardHandler),
		pdWatch: newPDWatch(),
		metrics: newMetrics(),
		current: -1,
	}
	w.net = netsim.New(cfg.Net, w.rs.net)
	w.k.endEvent = w.sendOutbox
	w.k.run = w.runEvent
	w.bug = newBuggifyRun(cfg.Buggify, cfg.Name, seed, func(s string) { w.k.note("%s", s) })
	for i := 0; i < cfg.Workload.Keys; i++ {
		w.keys = append(w.keys, KeyName(i))
	}
	w.hot = hotKeys(w.keys, cfg.Workload.HotKeys)
	return w
}

// boot starts PD, the stores, the clients, the probe and the fault plan.
// It returns false, with a violation, when PD refuses the layout.
func (w *World) boot() bool {
	if !w.startPD() {
		return false
	}
	for _, id := range w.storeIDs() {
		w.addStore(id)
	}
	for i := 1; i <= w.cfg.SpareStores; i++ {
		w.stores = append(w.stores, w.newStoreNode(uint64(w.cfg.Stores+i)))
	}
	for i := 0; i < w.cfg.Clients; i++ {
		w.addClient(i)
	}
	w.startBursts()
	if w.cfg.Probe {
		w.probe = newProbe(w)
	}
	w.tl.start(w)
	if w.cfg.Faults != nil {
		w.cfg.Faults(&Planner{w: w, Dur: w.cfg.Duration, R: w.rs.fault})
	}
	return true
}

// env is the environment of node: the virtual clock, the simulated
// network, the given disk and random stream, and a discarding logger.
func (w *World) env(node uint64, fs vfs.FS, dir string, r *rng.Rand) core.Env {
	return core.Env{Clock: clock{w.k}, Net: transport{w, node}, FS: fs, Dir: dir, Rand: r, Log: w.log, Buggify: w.bug.Node(node)}
}

func (w *World) storeIDs() []uint64 {
	ids := make([]uint64, w.cfg.Stores)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// transport sends envelopes from one node through the simulated network.
type transport struct {
	w    *World
	from uint64
}

func (t transport) Send(env *pb.Envelope) {
	env.From = t.from
	switch {
	case env.GetRaft() != nil:
		t.w.checkRaftTerm(t.from, env.GetRaft())
	case env.GetKvRequest() != nil && t.from >= FirstClientNode:
		t.w.noteWriteRequest(t.from, env.GetKvRequest())
	case env.GetKvResponse() != nil && env.To >= FirstClientNode:
		t.w.checkValidRefused(t.from, env.To, env.GetKvResponse())
		t.w.checkWriteReply(t.from, env.To, env.GetKvResponse())
	}
	// The bytes are encoded for their size and the trace hash; a raft
	// message reaches its receiver as a copy (pb.WireCopy) of what they
	// decode to, each delivery of a duplicated message its own, and its
	// bytes are not kept.
	size := env.SizeVT()
	if cap(t.w.wire) < size {
		t.w.wire = make([]byte, size, 2*size)
	}
	buf := t.w.wire[:size]
	if _, err := env.MarshalToSizedBufferVT(buf); err != nil {
		panic(fmt.Sprintf("sim: encode envelope: %v", err))
	}
	sum := xxhash.Sum64(buf)
	to := env.To
	copied, _ := pb.WireCopy(env)
	var data []byte // the bytes, kept for a receiver that decodes them
	if copied == nil || t.w.cfg.CheckWireCopies {
		data = bytes.Clone(buf)
	}
	msg := wireMsg{m: copied, data: data, sum: sum, size: size}
	if t.w.cfg.BatchRaft && env.GetRaft() != nil && t.w.isStore(t.from) && t.w.isStore(to) {
		t.w.queueRaft(t.from, to, msg)
		return
	}
	for i, d := range t.w.net.Route(t.w.k.now, t.from, to, size) {
		x := msg
		if i > 0 {
			x = msg.again()
		}
		*t.w.k.schedule(d) = event{kind: evDeliver, from: t.from, to: to, msg: x}
	}
}

// runEvent runs one of the world's frequent events (see event).
func (w *World) runEvent(e *event) {
	switch e.kind {
	case evDeliver:
		w.deliver(e.from, e.to, e.msg)
	case evDeliverBatch:
		w.deliverBatch(e.from, e.to, e.batch)
	case evFlush:
		w.flush(e.node, e.gen)
	case evTick:
		w.tickStore(e.node, e.gen)
	default:
		panic(fmt.Sprintf("sim: event of unknown kind %d", e.kind))
	}
}

func (w *World) isStore(id uint64) bool { return id >= 1 && id <= uint64(len(w.stores)) }

// received is the envelope a node receives: the message's copy, or its
// bytes decoded (and compared with the copy when the run checks copies).
// It records the delivery.
func (w *World) received(from, to uint64, x wireMsg) *pb.Envelope {
	m := x.m
	if m == nil || w.cfg.CheckWireCopies {
		m = w.decode(from, to, x.data, m)
	}
	w.k.noteDelivery(from, to, x.sum, func() string { return bodyName(m) })
	if len(w.corruptChunks) > 0 {
		w.corrupt(to, m)
	}
	return m
}

// deliver hands an envelope that crossed the network to its node.
func (w *World) deliver(from, to uint64, x wireMsg) {
	m := w.received(from, to, x)
	switch {
	case to == PDNode:
		if w.pd != nil {
			w.pd.Receive(m)
			w.observePD()
		}
	case w.isStore(to):
		n := w.stores[to-1]
		if n.up() {
			n.st.Receive(m)
			w.queueFlush(n)
		}
	case to == ProbeNode:
		if w.probe != nil {
			w.probe.receive(m)
		}
	case to == AdminNode:
		if r := m.GetAdminResponse(); r != nil && r.GetError() != "" {
			w.k.note("pd refused order %d: %s", r.GetRequestId(), r.GetError())
		}
	case to >= FirstClientNode && to < FirstClientNode+uint64(len(w.clients)):
		c := w.clients[to-FirstClientNode]
		if resp := m.GetKvResponse(); resp.GetRegionError().GetInvalidRequest().GetClockDependent() {
			w.clockRefusalReached(to, resp)
		}
		c.c.Receive(m)
		c.collect()
	}
}

// decode decodes an envelope's bytes; given the copy made of it (when the
// run checks its copies), it panics if the two differ.
func (w *World) decode(from, to uint64, data []byte, copied *pb.Envelope) *pb.Envelope {
	m := &pb.Envelope{}
	if err := m.UnmarshalVT(data); err != nil {
		panic(fmt.Sprintf("sim: decode envelope %d->%d: %v", from, to, err))
	}
	if copied != nil && !proto.Equal(m, copied) {
		panic(fmt.Sprintf("sim: the copy of a message %d->%d is not what its bytes decode to:\ncopy    %v\ndecoded %v", from, to, copied, m))
	}
	return m
}

func bodyName(m *pb.Envelope) string {
	switch b := m.GetBody().(type) {
	case *pb.Envelope_Raft:
		return fmt.Sprintf("raft r%d %v %d->%d", b.Raft.GetRegionId(), b.Raft.GetMessage().GetType(), b.Raft.GetMessage().GetFrom(), b.Raft.GetMessage().GetTo())
	case *pb.Envelope_KvRequest:
		return fmt.Sprintf("kv-req r%d #%d", b.KvRequest.GetHeader().GetRegionId(), b.KvRequest.GetRequestId())
	case *pb.Envelope_KvResponse:
		return fmt.Sprintf("kv-resp #%d", b.KvResponse.GetRequestId())
	case nil:
		return "empty"
	default:
		return fmt.Sprintf("%T", b)[len("*pb.Envelope_"):]
	}
}

// violate records a broken invariant, noted in the trace; the report keeps
// the first 20.
func (w *World) violate(msg string) {
	w.k.note("VIOLATION %s", msg)
	if len(w.violations) < 20 {
		w.violations = append(w.violations, msg)
	}
}

// annotate marks an event on the linearizability visualization.
func (w *World) annotate(node, text string) {
	w.annotations = append(w.annotations, checker.Annotation{At: int64(w.k.now), Node: node, Text: text})
}
