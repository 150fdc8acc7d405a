package storage

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/sim/simfs"
)

// ---- the model: what an engine should hold, kept independently of it

type mVal struct {
	value   string
	version uint64
}

type mEntry struct {
	index, term uint64
	data        string
}

type mRegion struct {
	meta             *pb.Region
	applied          uint64
	trunc, truncTerm uint64
	hard             [3]uint64 // term, vote, commit
	voters           []uint64
	entries          []mEntry // entries[i].index == trunc+1+i
	kv               map[string]mVal
}

func (r *mRegion) last() uint64 { return r.trunc + uint64(len(r.entries)) }

func (r *mRegion) term(i uint64) uint64 {
	if i == r.trunc {
		return r.truncTerm
	}
	return r.entries[i-r.trunc-1].term
}

type model struct {
	regions map[uint64]*mRegion
}

func newMRegion(meta *pb.Region) *mRegion {
	var voters []uint64
	for _, p := range meta.GetPeers() {
		voters = append(voters, p.GetId())
	}
	return &mRegion{
		meta: proto.Clone(meta).(*pb.Region), applied: 5, trunc: 5, truncTerm: 5,
		hard: [3]uint64{5, 0, 5}, voters: voters, kv: map[string]mVal{},
	}
}

func (m *model) clone() *model {
	c := &model{regions: map[uint64]*mRegion{}}
	for id, r := range m.regions {
		cr := *r
		cr.meta = proto.Clone(r.meta).(*pb.Region)
		cr.voters = slices.Clone(r.voters)
		cr.entries = slices.Clone(r.entries)
		cr.kv = maps.Clone(r.kv)
		c.regions[id] = &cr
	}
	return c
}

func (m *model) ids() []uint64 {
	return slices.Sorted(maps.Keys(m.regions))
}

func (m *model) view() engineView {
	v := engineView{Ident: "none"}
	for _, id := range m.ids() {
		r := m.regions[id]
		rv := regionView{
			ID: id, Meta: metaString(r.meta), State: pb.PeerState_NORMAL, Applied: r.applied,
			Trunc: r.trunc, TruncTerm: r.truncTerm, Hard: r.hard,
			Conf: confString(&raftpb.ConfState{Voters: r.voters}),
		}
		for _, e := range r.entries {
			rv.Entries = append(rv.Entries, entryString(ent(e.index, e.term, e.data)))
		}
		for _, k := range slices.Sorted(maps.Keys(r.kv)) {
			rv.Keys = append(rv.Keys, kvString([]byte(k), []byte(r.kv[k].value), r.kv[k].version))
		}
		v.Regions = append(v.Regions, rv)
	}
	return v
}

// regionFor is the region whose range holds key.
func (m *model) regionFor(key string) uint64 {
	for _, id := range m.ids() {
		meta := m.regions[id].meta
		if key >= string(meta.GetStartKey()) && (len(meta.GetEndKey()) == 0 || key < string(meta.GetEndKey())) {
			return id
		}
	}
	panic("model: regions do not cover key " + key)
}

// ---- the state machine

var modelKeys = strings.Split("a b c d e f g h i j k l m n o p q r s t", " ")

type machine struct {
	ffs  *simfs.FaultFS
	eng  *Engine
	opts Options

	model   *model // the engine's state now
	durable *model // the state on disk: as of the last record or checkpoint made durable
	nextID  uint64
	armed   bool // a crash point is set on ffs
	calm    int  // steps since the last crash

	stats *modelStats
}

type modelStats struct {
	steps, crashes, failures, sameAsDurable, nextRecordKept, checkpoints, splits int
}

func newMachine(t *rapid.T, stats *modelStats) *machine {
	m := &machine{nextID: 2, stats: stats}
	// Small WALs checkpoint often; large ones replay many records.
	m.opts = Options{CheckpointBytes: rapid.SampledFrom([]int64{120, 500, 5000}).Draw(t, "checkpoint bytes")}
	m.ffs = simfs.NewFaultFS(vfs.NewMem(), rng.New(rapid.Uint64().Draw(t, "fault seed")))
	m.eng = mustOpen(t, m.ffs, m.opts)
	meta := regionMeta(1, "", "", 1)
	_, err := m.eng.CreateRegion(bootstrapState(meta))
	check(t, err)
	check(t, m.eng.SyncAll())
	m.model = &model{regions: map[uint64]*mRegion{1: newMRegion(meta)}}
	m.durable = m.model.clone()
	return m
}

func (m *machine) pickRegion(t *rapid.T) (*Region, *mRegion) {
	id := rapid.SampledFrom(m.model.ids()).Draw(t, "region")
	return m.eng.Region(id), m.model.regions[id]
}

func (m *machine) keyRegion(t *rapid.T) (string, *Region, *mRegion) {
	key := rapid.SampledFrom(modelKeys).Draw(t, "key")
	id := m.model.regionFor(key)
	return key, m.eng.Region(id), m.model.regions[id]
}

func (m *machine) Put(t *rapid.T) {
	key, r, mr := m.keyRegion(t)
	value := fmt.Sprintf("v%d%s", rapid.IntRange(0, 99).Draw(t, "value"),
		strings.Repeat("x", rapid.SampledFrom([]int{0, 0, 10, 300}).Draw(t, "pad")))
	want := mr.kv[key].version + 1
	if v := r.Put([]byte(key), []byte(value)); v != want {
		t.Fatalf("put %q: version %d, want %d", key, v, want)
	}
	mr.kv[key] = mVal{value, want}
}

func (m *machine) Delete(t *rapid.T) {
	key, r, mr := m.keyRegion(t)
	_, had := mr.kv[key]
	if ok := r.Delete([]byte(key)); ok != had {
		t.Fatalf("delete %q: %v, want %v", key, ok, had)
	}
	delete(mr.kv, key)
}

func (m *machine) CAS(t *rapid.T) {
	key, r, mr := m.keyRegion(t)
	expected := rapid.Uint64Range(0, 3).Draw(t, "expected")
	value := fmt.Sprintf("c%d", rapid.IntRange(0, 99).Draw(t, "value"))
	cur := mr.kv[key].version
	ok, v := r.CompareAndSwap([]byte(key), expected, []byte(value))
	switch {
	case cur == expected && (!ok || v != cur+1):
		t.Fatalf("cas %q at version %d: %v %d, want a write at %d", key, cur, ok, v, cur+1)
	case cur != expected && (ok || v != cur):
		t.Fatalf("cas %q expecting %d at version %d: %v %d, want no write", key, expected, cur, ok, v)
	}
	if ok {
		mr.kv[key] = mVal{value, v}
	}
}

func (m *machine) Append(t *rapid.T) {
	r, mr := m.pickRegion(t)
	// Offsets count down from the top: rapid draws small numbers more
	// often, and most appends go at the end of the log.
	lo := max(mr.applied, mr.trunc) + 1
	first := mr.last() + 1 - rapid.Uint64Range(0, mr.last()+1-lo).Draw(t, "back")
	n := rapid.IntRange(1, 3).Draw(t, "count")
	term := mr.hard[0] + rapid.Uint64Range(0, 1).Draw(t, "term")
	var ents []*raftpb.Entry
	mr.entries = mr.entries[:first-mr.trunc-1]
	for i := 0; i < n; i++ {
		e := mEntry{first + uint64(i), term, fmt.Sprintf("e%d", rapid.IntRange(0, 99).Draw(t, "data"))}
		ents = append(ents, ent(e.index, e.term, e.data))
		mr.entries = append(mr.entries, e)
	}
	check(t, r.Append(ents))
}

func (m *machine) SetHardState(t *rapid.T) {
	r, mr := m.pickRegion(t)
	term := mr.hard[0] + rapid.Uint64Range(0, 1).Draw(t, "term")
	vote := rapid.Uint64Range(0, 3).Draw(t, "vote")
	top := max(mr.hard[2], mr.last())
	commit := top - rapid.Uint64Range(0, top-mr.hard[2]).Draw(t, "commit back")
	mr.hard = [3]uint64{term, vote, commit}
	r.SetHardState(hardState(term, vote, commit))
}

func (m *machine) SetApplied(t *rapid.T) {
	r, mr := m.pickRegion(t)
	top := max(mr.applied, mr.last())
	mr.applied = top - rapid.Uint64Range(0, top-mr.applied).Draw(t, "applied back")
	r.SetApplied(mr.applied)
}

func (m *machine) Compact(t *rapid.T) {
	r, mr := m.pickRegion(t)
	if mr.applied <= mr.trunc {
		t.Skip("nothing applied to compact")
	}
	to := mr.applied - rapid.Uint64Range(0, mr.applied-mr.trunc-1).Draw(t, "compact back")
	check(t, r.Compact(to))
	mr.truncTerm = mr.term(to)
	mr.entries = slices.Clone(mr.entries[to-mr.trunc:])
	mr.trunc = to
}

func (m *machine) Split(t *rapid.T) {
	if len(m.model.regions) >= 5 {
		t.Skip("enough regions")
	}
	r, mr := m.pickRegion(t)
	start, end := string(mr.meta.GetStartKey()), string(mr.meta.GetEndKey())
	var inside []string
	for _, k := range modelKeys {
		if k > start && (end == "" || k < end) {
			inside = append(inside, k)
		}
	}
	if len(inside) == 0 {
		t.Skip("region too narrow")
	}
	at := rapid.SampledFrom(inside).Draw(t, "split key")
	version := mr.meta.GetEpoch().GetVersion() + 1
	left := proto.Clone(mr.meta).(*pb.Region)
	left.EndKey = []byte(at)
	left.Epoch.Version = version
	id := m.nextID
	m.nextID++
	rightMeta := regionMeta(id, at, end, version)
	nr, err := r.Split(left, bootstrapState(rightMeta))
	check(t, err)
	if nr == nil || nr.ID() != id {
		t.Fatalf("split returned %v", nr)
	}
	right := newMRegion(rightMeta)
	for k, v := range mr.kv {
		if k >= at {
			right.kv[k] = v
			delete(mr.kv, k)
		}
	}
	mr.meta = left
	m.model.regions[id] = right
	m.stats.splits++
}

func (m *machine) SyncForce(t *rapid.T) {
	if err := m.eng.SyncAll(); err != nil {
		m.failed(t, err)
		return
	}
	m.durable = m.model.clone()
}

func (m *machine) SyncLazy(t *rapid.T) {
	critical := m.eng.NeedsSync()
	before := m.eng.Stats()
	if err := m.eng.Sync(); err != nil {
		m.failed(t, err)
		return
	}
	if critical {
		m.durable = m.model.clone()
	} else if m.eng.Stats() != before {
		t.Fatalf("Sync(false) without critical records wrote: %+v -> %+v", before, m.eng.Stats())
	}
}

func (m *machine) Checkpoint(t *rapid.T) {
	before := m.eng.Stats().Checkpoints
	if err := m.eng.MaybeCheckpoint(); err != nil {
		m.failed(t, err)
		return
	}
	if m.eng.Stats().Checkpoints > before {
		m.durable = m.model.clone()
		m.stats.checkpoints++
	}
}

// ArmCrash makes the FS fail from a few operations on: the next Sync or
// checkpoint stops in the middle.
func (m *machine) ArmCrash(t *rapid.T) {
	if m.armed || m.calm < 8 {
		t.Skip("armed already, or crashed just now")
	}
	m.ffs.CrashAfter(rapid.IntRange(0, 6).Draw(t, "crash after"))
	m.armed = true
}

func (m *machine) Crash(t *rapid.T) {
	if m.calm < 8 {
		t.Skip("crashed just now")
	}
	m.crash(t, []*model{m.durable})
}

// failed handles a write that failed: the engine stops, and the disk holds
// the durable state or, if the crash kept all of it, what the failed write
// was carrying.
func (m *machine) failed(t *rapid.T, err error) {
	if !errors.Is(err, simfs.ErrCrashed) && !errors.Is(err, simfs.ErrInjected) {
		t.Fatalf("engine error not caused by the disk: %v", err)
	}
	m.stats.failures++
	m.crash(t, []*model{m.durable, m.model.clone()})
}

func drawKeep(t *rapid.T, label string) int {
	keep := rapid.SampledFrom([]int{0, 100, -1}).Draw(t, label)
	if keep < 0 {
		keep = rapid.IntRange(1, 99).Draw(t, label+" %")
	}
	return keep
}

func (m *machine) crashImage(t *rapid.T, fs *simfs.FaultFS) *simfs.FaultFS {
	return crashFS(t, fs, rapid.Uint64().Draw(t, "crash seed"), drawKeep(t, "keep"))
}

// crash stops the engine, crashes the disk, reopens, and checks that the
// recovered state is one of the candidates.
func (m *machine) crash(t *rapid.T, candidates []*model) {
	m.stats.crashes++
	m.calm = 0
	m.eng.Close()
	img := m.crashImage(t, m.ffs)
	if rapid.IntRange(0, 3).Draw(t, "crash in reopen") == 0 {
		// Crash again in the middle of the recovery's own checkpoint.
		img.CrashAfter(rapid.IntRange(0, 10).Draw(t, "reopen crash after"))
		if e, err := Open(img, testDir, m.opts); err == nil {
			e.Close()
		} else if !errors.Is(err, simfs.ErrCrashed) {
			t.Fatalf("open stopped by a crash: %v", err)
		}
		img = m.crashImage(t, img)
	}
	m.ffs = img
	e, err := Open(m.ffs, testDir, m.opts)
	if err != nil {
		t.Fatalf("reopen after a crash: %v", err)
	}
	m.eng = e
	m.armed = false
	m.ffs.SetErrorRate(rapid.SampledFrom([]float64{0, 0, 0, 0.02, 0.1}).Draw(t, "error rate"))
	got := viewOf(t, e).String()
	for i, c := range candidates {
		if got == c.view().String() {
			if i == 0 {
				m.stats.sameAsDurable++
			} else {
				m.stats.nextRecordKept++
			}
			m.model = c.clone()
			m.durable = c.clone()
			return
		}
	}
	var b bytes.Buffer
	for i, c := range candidates {
		fmt.Fprintf(&b, "---- candidate %d\n%s", i, c.view())
	}
	t.Fatalf("recovered state is no candidate:\n---- recovered\n%s%s", got, b.String())
}

func (m *machine) Check(t *rapid.T) {
	m.stats.steps++
	m.calm++
	sameView(t, "engine vs model", viewOf(t, m.eng), m.model.view())
	if !m.eng.HasPending() {
		if got, want := m.model.view().String(), m.durable.view().String(); got != want {
			t.Fatalf("nothing pending, yet the model is ahead of the durable state:\n---- model\n%s---- durable\n%s", got, want)
		}
	}
}

// TestModel runs the engine against a model through random sequences of
// changes, syncs, checkpoints, disk errors and crashes (keep 0..100% of the
// unsynced data, some in the middle of a write or of the recovery itself).
// After every step the engine must hold what the model holds; after every
// crash the recovered state must be the last durable state or, when a write
// failed, the state that write was carrying, whole.
func TestModel(t *testing.T) {
	rounds := 6
	if testing.Short() {
		rounds = 1
	}
	stats := &modelStats{}
	for i := 0; i < rounds; i++ {
		t.Run(fmt.Sprintf("round%d", i), func(t *testing.T) { runModel(t, stats) })
	}
	t.Logf("%+v", *stats)
	if !t.Failed() && !testing.Short() && (stats.crashes == 0 || stats.failures == 0 || stats.checkpoints == 0 || stats.splits == 0) {
		t.Fatalf("the model test missed a kind of event: %+v", *stats)
	}
}

func runModel(t *testing.T, stats *modelStats) {
	rapid.Check(t, func(t *rapid.T) {
		m := newMachine(t, stats)
		t.Repeat(map[string]func(*rapid.T){
			"Put":          m.Put,
			"Delete":       m.Delete,
			"CAS":          m.CAS,
			"Append":       m.Append,
			"SetHardState": m.SetHardState,
			"SetApplied":   m.SetApplied,
			"Compact":      m.Compact,
			"Split":        m.Split,
			"SyncForce":    m.SyncForce,
			"SyncLazy":     m.SyncLazy,
			"Checkpoint":   m.Checkpoint,
			"ArmCrash":     m.ArmCrash,
			"Crash":        m.Crash,
			"":             m.Check,
		})
	})
}
