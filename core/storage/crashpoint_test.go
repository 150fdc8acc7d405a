package storage

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/sim/simfs"
)

// Crash points inside multi-step disk work.
//
// The simulator crashes a store between its events, so the steps of one
// engine call (a checkpoint's write, sync, rename, create and directory
// syncs; the records of a round) are atomic to it, and a missing directory
// sync between two of them goes unseen. TestCrashPoints stops each such
// operation at every one of its mutating disk operations (simfs's operation
// log names them; CrashAfter(i) fails the i-th and every later one, a failed
// write leaving a torn prefix), and for every crash point builds every crash
// image that differs in the directory entries (each subset of the unsynced
// entries keeping its new binding, ALICE/CrashMonkey style), each with the
// unsynced file data all lost (keep 0), all kept (keep 100), and each 4 KiB
// block of it kept or lost by a seeded draw (keep 50). Each image
// must open without error and hold one of the states the operation allows:
// the state before it or after it (for a round written as several records,
// after any prefix of them), never a mix; and never lose what a completed
// sync made durable. The reopened engine must have a new incarnation and
// keep working (a synced record after the recovery survives the next crash).

// maxFullSubsetEntries bounds the subsets explored: up to this many unsynced
// entries every subset is tried (2^n); with more, every subset that keeps at
// most two of the entries' new bindings or drops at most two.
const maxFullSubsetEntries = 10

// subsets returns the subsets of n entries to explore, as bit masks.
func subsets(n int) []uint64 {
	if n <= maxFullSubsetEntries {
		out := make([]uint64, 0, 1<<n)
		for m := uint64(0); m < 1<<n; m++ {
			out = append(out, m)
		}
		return out
	}
	// The subsets of at most two entries, and their complements.
	small := []uint64{0}
	for i := 0; i < n; i++ {
		small = append(small, 1<<i)
		for j := i + 1; j < n; j++ {
			small = append(small, 1<<i|1<<j)
		}
	}
	all := uint64(1)<<n - 1
	out := slices.Clone(small)
	for _, m := range small {
		out = append(out, all&^m)
	}
	return out
}

// milestone is one step after which the operation's next state may be on
// disk: it may be there once op begin has been attempted, and must be once op
// commit has succeeded (indexes into the operation's op log).
type milestone struct {
	what          string
	begin, commit int
}

func isWAL(p string) bool  { return strings.HasPrefix(pathBase(p), "wal-") }
func isCkpt(p string) bool { return strings.HasPrefix(pathBase(p), "ckpt-") }
func pathBase(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// walRecords finds the WAL records in an op log: the writes to a WAL file
// up to the sync that follows them.
func walRecords(log []simfs.Op) []milestone {
	var out []milestone
	begin := -1
	for i, op := range log {
		switch {
		case op.Kind == "write" && isWAL(op.Name) && begin < 0:
			begin = i
		case op.Kind == "sync" && isWAL(op.Name) && begin >= 0:
			out = append(out, milestone{"wal record", begin, i})
			begin = -1
		}
	}
	if begin >= 0 {
		out = append(out, milestone{"wal record", begin, len(log)}) // never committed
	}
	return out
}

// checkpoints finds the checkpoints in an op log: a checkpoint may be in
// effect once renamed to its name, and must be once the directory sync after
// the rename succeeded.
func checkpoints(log []simfs.Op) []milestone {
	var out []milestone
	for i, op := range log {
		if op.Kind != "rename" || !isCkpt(op.To) {
			continue
		}
		m := milestone{"checkpoint", i, len(log)}
		for j := i + 1; j < len(log); j++ {
			if log[j].Kind == "sync dir" {
				m.commit = j
				break
			}
		}
		out = append(out, m)
	}
	return out
}

// bounds returns the states allowed after a crash at op n (ops before n
// succeeded, op n and later failed): states[lo..hi].
func bounds(ms []milestone, log []simfs.Op, n int) (lo, hi int) {
	for _, m := range ms {
		if m.commit < n {
			lo++
		}
		// A failed write may still have reached the disk, whole or torn.
		if m.begin < n || (m.begin == n && n < len(log) && log[n].Kind == "write") {
			hi++
		}
	}
	return lo, hi
}

// crashRun is one run of an operation on a disk.
type crashRun struct {
	t    *testing.T
	fs   *simfs.FaultFS
	opts Options
	// incs are the incarnations of the Opens that returned, with the op
	// count when they did: a later reopen must have a higher one.
	incs []incMark
}

type incMark struct {
	ops int64 // fs.Ops() when Open returned
	inc uint64
}

func (c *crashRun) open() (*Engine, error) {
	e, err := Open(c.fs, testDir, c.opts)
	if err == nil {
		c.incs = append(c.incs, incMark{c.fs.Ops(), e.Incarnation()})
	}
	return e, err
}

func (c *crashRun) mustOpen() *Engine {
	c.t.Helper()
	e, err := c.open()
	if err != nil {
		c.t.Fatalf("open: %v", err)
	}
	return e
}

// nothingPending is the engine's view, which must then be its durable state.
func nothingPending(t *testing.T, e *Engine) engineView {
	t.Helper()
	if e.HasPending() {
		t.Fatalf("records pending where the durable state is taken")
	}
	return viewOf(t, e)
}

// crashCase is one multi-step disk operation.
type crashCase struct {
	name string
	opts Options
	// setup builds the disk the operation starts from (it may replace
	// c.fs) and returns the engine open on it, or nil when run opens it,
	// and the durable state before the operation.
	setup func(c *crashRun) (*Engine, engineView)
	// run does the operation and returns the states it makes durable, one
	// per milestone, in order (valid only when it succeeds).
	run func(c *crashRun, e *Engine) ([]engineView, error)
	// milestones finds the steps that make those states durable in the op
	// log of a run without a crash.
	milestones func(log []simfs.Op) []milestone
}

// crashStats counts what TestCrashPoints explored.
type crashStats struct {
	ops, points, subsets, images, maxEntries int
}

func TestCrashPoints(t *testing.T) {
	var total crashStats
	for _, cc := range crashCases() {
		t.Run(cc.name, func(t *testing.T) {
			st := exploreCrashPoints(t, cc)
			t.Logf("%s: %d disk ops, %d crash points, %d entry subsets, %d images (up to %d unsynced entries)",
				cc.name, st.ops, st.points, st.subsets, st.images, st.maxEntries)
			total.ops += st.ops
			total.points += st.points
			total.subsets += st.subsets
			total.images += st.images
			total.maxEntries = max(total.maxEntries, st.maxEntries)
		})
	}
	t.Logf("%d operations: %d crash points, %d entry subsets, %d crash images opened", len(crashCases()), total.points, total.subsets, total.images)
}

const crashSeed = 7 // seeds the injector: the torn prefix of a failed write

func exploreCrashPoints(t *testing.T, cc crashCase) crashStats {
	// A run without a crash: the op log, the states and the milestones.
	probe := &crashRun{t: t, fs: newFaultFS(crashSeed), opts: cc.opts}
	e, before := cc.setup(probe)
	base := probe.fs.Ops()
	probe.fs.LogOps(true)
	after, err := cc.run(probe, e)
	if err != nil {
		t.Fatalf("the operation without a crash: %v", err)
	}
	log := probe.fs.OpLog()
	ms := cc.milestones(log)
	if len(ms) != len(after) {
		t.Fatalf("%d milestones in the op log, %d states after them: the engine no longer does this operation as the case expects\n%s", len(ms), len(after), opLogString(log))
	}
	for _, m := range ms {
		if m.commit >= len(log) {
			t.Fatalf("%s begun at op %d is never made durable\n%s", m.what, m.begin, opLogString(log))
		}
	}
	states := append([]engineView{before}, after...)
	st := crashStats{ops: len(log)}

	for n := 0; n <= len(log); n++ {
		// The injector's seed gives a failed write its torn prefix: it
		// varies with the crash point.
		c := &crashRun{t: t, fs: newFaultFS(crashSeed + uint64(n)), opts: cc.opts}
		e, _ := cc.setup(c)
		if c.fs.Ops() != base {
			t.Fatalf("setup is not deterministic: %d ops, then %d", base, c.fs.Ops())
		}
		where := "after the operation"
		if n < len(log) {
			where = fmt.Sprintf("crash at op %d (%s %s)", n, log[n].Kind, log[n].Name)
			c.fs.CrashAfter(n)
		}
		_, err := cc.run(c, e)
		switch {
		case n < len(log) && !errors.Is(err, simfs.ErrCrashed):
			t.Fatalf("%s: the operation returned %v, want the crash", where, err)
		case n == len(log) && err != nil:
			t.Fatalf("%s: %v", where, err)
		}
		lo, hi := bounds(ms, log, n)
		minInc := uint64(1)
		for _, m := range c.incs {
			if m.ops <= base+int64(n) {
				minInc = max(minInc, m.inc+1)
			}
		}
		entries := c.fs.UnsyncedEntries()
		st.points++
		st.maxEntries = max(st.maxEntries, len(entries))
		for _, mask := range subsets(len(entries)) {
			st.subsets++
			keep := func(p string) bool {
				i := slices.Index(entries, p)
				return i >= 0 && mask&(1<<i) != 0
			}
			for _, data := range []int{0, 100, 50} {
				img, err := c.fs.CrashChoosing(rng.New(uint64(n)), data, keep)
				if err != nil {
					t.Fatalf("%s: crash image: %v", where, err)
				}
				what := fmt.Sprintf("%s, entries kept %v of %v, data kept %d%%", where, keptOf(entries, mask), entries, data)
				checkCrashImage(t, what, img, cc.opts, states[lo:hi+1], minInc)
				st.images++
			}
		}
	}
	return st
}

func keptOf(entries []string, mask uint64) []string {
	var out []string
	for i, e := range entries {
		if mask&(1<<i) != 0 {
			out = append(out, pathBase(e))
		}
	}
	return out
}

// checkCrashImage opens a crash image and checks that it holds one of the
// allowed states, with a new incarnation, and that the engine works on.
func checkCrashImage(t *testing.T, what string, img *simfs.FaultFS, opts Options, allowed []engineView, minInc uint64) {
	t.Helper()
	e, err := Open(img, testDir, opts)
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	got := viewOf(t, e)
	if !slices.ContainsFunc(allowed, func(v engineView) bool { return v.String() == got.String() }) {
		var b strings.Builder
		for i, v := range allowed {
			fmt.Fprintf(&b, "---- allowed %d\n%s", i, v)
		}
		t.Fatalf("%s: recovered a state the operation does not allow\n---- recovered\n%s%s", what, got, b.String())
	}
	if e.Incarnation() < minInc {
		t.Fatalf("%s: incarnation %d after reopen, an earlier open had %d", what, e.Incarnation(), minInc-1)
	}
	// The recovered store keeps working: a synced record survives the next
	// crash, even one that keeps nothing unsynced.
	e.SetIdent(&pb.StoreIdent{ClusterId: 99, StoreId: 98})
	check(t, e.Sync())
	want := viewOf(t, e)
	again, err := img.Crash(rng.New(1), 0)
	check(t, err)
	e2, err := Open(again, testDir, opts)
	if err != nil {
		t.Fatalf("%s: reopen after a record written on the recovered store: %v", what, err)
	}
	if g := viewOf(t, e2); g.String() != want.String() {
		t.Fatalf("%s: a synced record on the recovered store was lost\n---- got\n%s---- want\n%s", what, g, want)
	}
}

func opLogString(log []simfs.Op) string {
	var b strings.Builder
	for i, op := range log {
		fmt.Fprintf(&b, "%3d %s %s", i, op.Kind, op.Name)
		if op.To != "" {
			fmt.Fprintf(&b, " -> %s", op.To)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ---- the operations

// twoRegions opens a store with regions 1 ["", "m") and 2 ["m", +inf),
// entries, keys and an applied index, and a second checkpoint, so the WAL
// has records and older files exist to be removed.
func twoRegions(c *crashRun) *Engine {
	t := c.t
	e := c.mustOpen()
	e.SetIdent(&pb.StoreIdent{ClusterId: 7, StoreId: 1})
	r1, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "m", 1)))
	check(t, err)
	r2, err := e.CreateRegion(bootstrapState(regionMeta(2, "m", "", 1)))
	check(t, err)
	check(t, e.Sync())
	check(t, e.checkpoint())
	check(t, r1.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b"), ent(8, 6, "c")}))
	r1.SetHardState(hardState(6, 11, 8))
	for _, k := range []string{"a", "d", "g", "k"} {
		r1.Put([]byte(k), []byte("value of "+k))
	}
	r1.SetApplied(8)
	check(t, r2.Append([]*raftpb.Entry{ent(6, 5, "x")}))
	r2.SetHardState(hardState(5, 21, 6))
	r2.Put([]byte("p"), []byte("value of p"))
	r2.Put([]byte("t"), []byte("value of t"))
	r2.SetApplied(6)
	check(t, e.SyncAll())
	return e
}

func big(s string, n int) string { return strings.Repeat(s, n) }

// flushTail ends a round as Store.Flush does: the round's synced record,
// then MaybeCheckpoint (every time, with CheckpointBytes 1), then the next
// round's record (an entry for region 1). It returns the states after each.
func flushTail(c *crashRun, e *Engine) ([]engineView, error) {
	if err := e.Sync(); err != nil {
		return nil, err
	}
	round := nothingPending(c.t, e)
	if err := e.MaybeCheckpoint(); err != nil {
		return nil, err
	}
	ck := nothingPending(c.t, e)
	r1 := e.Region(1)
	last, _ := r1.LastIndex()
	check(c.t, r1.Append([]*raftpb.Entry{ent(last+1, 7, "next round")}))
	if err := e.Sync(); err != nil {
		return nil, err
	}
	return []engineView{round, ck, nothingPending(c.t, e)}, nil
}

// roundMilestones are the milestones of a flushTail: a record, a
// checkpoint, a record.
func roundMilestones(log []simfs.Op) []milestone {
	ms := append(walRecords(log), checkpoints(log)...)
	slices.SortFunc(ms, func(a, b milestone) int { return a.begin - b.begin })
	return ms
}

func crashCases() []crashCase {
	return []crashCase{
		{
			// MaybeCheckpoint subsumes pending lazy records, then the next
			// round's record goes into the new WAL.
			name: "checkpoint",
			opts: Options{CheckpointBytes: 1},
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				before := nothingPending(c.t, e)
				r1 := e.Region(1)
				r1.Put([]byte("b"), []byte("lazy"))
				r1.Delete([]byte("d"))
				return e, before
			},
			run: func(c *crashRun, e *Engine) ([]engineView, error) {
				if err := e.MaybeCheckpoint(); err != nil {
					return nil, err
				}
				if e.Stats().Checkpoints != 3 {
					c.t.Fatalf("MaybeCheckpoint wrote no checkpoint")
				}
				ck := nothingPending(c.t, e)
				r1 := e.Region(1)
				check(c.t, r1.Append([]*raftpb.Entry{ent(9, 6, "after the checkpoint")}))
				r1.SetHardState(hardState(6, 11, 9))
				if err := e.Sync(); err != nil {
					return nil, err
				}
				return []engineView{ck, nothingPending(c.t, e)}, nil
			},
			milestones: func(log []simfs.Op) []milestone { return append(checkpoints(log), walRecords(log)...) },
		},
		{
			// The first Open of a store (directory, checkpoint, WAL), then
			// its first record.
			name:  "open new store",
			setup: func(c *crashRun) (*Engine, engineView) { return nil, engineView{Ident: "none"} },
			run: func(c *crashRun, _ *Engine) ([]engineView, error) {
				e, err := c.open()
				if err != nil {
					return nil, err
				}
				e.SetIdent(&pb.StoreIdent{ClusterId: 7, StoreId: 1})
				if _, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1))); err != nil {
					return nil, err
				}
				if err := e.Sync(); err != nil {
					return nil, err
				}
				return []engineView{nothingPending(c.t, e)}, nil
			},
			milestones: walRecords,
		},
		{
			// Open of a store with a WAL: recovery, the fresh checkpoint
			// and WAL, old files removed; then a record.
			name: "open existing store",
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				v := nothingPending(c.t, e)
				check(c.t, e.Close())
				return nil, v
			},
			run: func(c *crashRun, _ *Engine) ([]engineView, error) {
				e, err := c.open()
				if err != nil {
					return nil, err
				}
				check(c.t, e.Region(2).Append([]*raftpb.Entry{ent(7, 5, "after the reopen")}))
				if err := e.Sync(); err != nil {
					return nil, err
				}
				return []engineView{nothingPending(c.t, e)}, nil
			},
			milestones: walRecords,
		},
		{
			// Open of a store whose last record was torn by a crash: the
			// tail is cut and the state checkpointed; a crash during that
			// must not make the cut tail, or a record after it, matter.
			name: "open after a torn record",
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				v := nothingPending(c.t, e)
				r1 := e.Region(1)
				for i := 0; i < 30; i++ {
					r1.Put([]byte(fmt.Sprintf("e%02d", i)), []byte(big("torn", 100)))
				}
				check(c.t, r1.Append([]*raftpb.Entry{ent(9, 6, "torn")}))
				c.fs.CrashAfter(1) // the record's write goes through, its sync fails
				if err := e.Sync(); !errors.Is(err, simfs.ErrCrashed) {
					c.t.Fatalf("sync at the crash point: %v", err)
				}
				img, err := c.fs.Crash(rng.New(3), 50)
				check(c.t, err)
				c.fs = img
				return nil, v
			},
			run: func(c *crashRun, _ *Engine) ([]engineView, error) {
				e, err := c.open()
				if err != nil {
					return nil, err
				}
				if e.Stats().TornTailCuts != 1 {
					c.t.Fatalf("the setup left no torn tail to cut (pick another crash seed)")
				}
				check(c.t, e.Region(2).Append([]*raftpb.Entry{ent(7, 5, "after the cut")}))
				if err := e.Sync(); err != nil {
					return nil, err
				}
				return []engineView{nothingPending(c.t, e)}, nil
			},
			milestones: walRecords,
		},
		{
			// A round that applies a split: region 1 shrinks to ["", "f")
			// and region 3 ["f", "m") is created with its keys.
			name: "split round",
			opts: Options{CheckpointBytes: 1},
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				return e, nothingPending(c.t, e)
			},
			run: func(c *crashRun, e *Engine) ([]engineView, error) {
				r1 := e.Region(1)
				check(c.t, r1.Append([]*raftpb.Entry{ent(9, 6, "split")}))
				r1.SetHardState(hardState(6, 11, 9))
				left := regionMeta(1, "", "f", 2)
				if _, err := r1.Split(left, bootstrapState(regionMeta(3, "f", "m", 2))); err != nil {
					return nil, err
				}
				r1.SetApplied(9)
				return flushTail(c, e)
			},
			milestones: roundMilestones,
		},
		{
			// A snapshot replaces region 2's whole state.
			name: "snapshot reset",
			opts: Options{CheckpointBytes: 1},
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				return e, nothingPending(c.t, e)
			},
			run: func(c *crashRun, e *Engine) ([]engineView, error) {
				meta := regionMeta(2, "m", "", 3)
				data, err := proto.Marshal(&pb.RegionSnapshot{Region: meta, Pairs: []*pb.KvPair{
					{Key: []byte("n"), Value: []byte("from the snapshot"), Version: 4},
					{Key: []byte("x"), Value: []byte(big("s", 5000)), Version: 2},
				}})
				check(c.t, err)
				snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
					ConfState: &raftpb.ConfState{Voters: []uint64{21, 22, 23}},
					Index:     proto.Uint64(40), Term: proto.Uint64(9),
				}}
				if err := e.Region(2).ApplySnapshot(snap, nil); err != nil {
					return nil, err
				}
				e.Region(2).SetHardState(hardState(9, 0, 40))
				return flushTail(c, e)
			},
			milestones: roundMilestones,
		},
		{
			// This store's peer of region 2 is removed.
			name: "tombstone",
			opts: Options{CheckpointBytes: 1},
			setup: func(c *crashRun) (*Engine, engineView) {
				e := twoRegions(c)
				return e, nothingPending(c.t, e)
			},
			run: func(c *crashRun, e *Engine) ([]engineView, error) {
				meta := regionMeta(2, "m", "", 1)
				meta.Epoch.ConfVer = 3
				e.Region(2).Tombstone(meta)
				return flushTail(c, e)
			},
			milestones: roundMilestones,
		},
		multiRecordCase(),
	}
}

// multiRecordCase is a round over MaxBatchBytes (2 KiB), written as five
// records: an append, a put of another region, two entries of a three-entry
// append the engine cuts, its third entry, and a put with a split and a hard
// state. Any prefix of the records is a state the engine passed through;
// the states are those of a second engine that syncs after each part.
func multiRecordCase() crashCase {
	opts := Options{MaxBatchBytes: 2048}
	e10, e11, e12 := ent(10, 6, big("b", 900)), ent(11, 6, big("c", 900)), ent(12, 6, big("d", 900))
	parts := []func(t *testing.T, e *Engine){
		func(t *testing.T, e *Engine) {
			check(t, e.Region(1).Append([]*raftpb.Entry{ent(9, 6, big("a", 1500))}))
		},
		func(t *testing.T, e *Engine) { e.Region(2).Put([]byte("q"), []byte(big("q", 1500))) },
		func(t *testing.T, e *Engine) { check(t, e.Region(1).Append([]*raftpb.Entry{e10, e11})) },
		func(t *testing.T, e *Engine) { check(t, e.Region(1).Append([]*raftpb.Entry{e12})) },
		func(t *testing.T, e *Engine) {
			r1 := e.Region(1)
			r1.Put([]byte("e"), []byte(big("e", 1200)))
			_, err := r1.Split(regionMeta(1, "", "f", 2), bootstrapState(regionMeta(3, "f", "m", 2)))
			check(t, err)
			r1.SetHardState(hardState(6, 11, 12))
		},
	}
	return crashCase{
		name: "round of several records",
		opts: opts,
		setup: func(c *crashRun) (*Engine, engineView) {
			e := twoRegions(c)
			return e, nothingPending(c.t, e)
		},
		run: func(c *crashRun, e *Engine) ([]engineView, error) {
			// The parts as one round: the two appends of parts 2 and 3
			// are one append of three entries, which the engine cuts.
			parts[0](c.t, e)
			parts[1](c.t, e)
			check(c.t, e.Region(1).Append([]*raftpb.Entry{e10, e11, e12}))
			parts[4](c.t, e)
			records := e.Stats().Records
			if err := e.SyncAll(); err != nil {
				return nil, err
			}
			if n := e.Stats().Records - records; n != uint64(len(parts)) {
				c.t.Fatalf("the round took %d records, want %d", n, len(parts))
			}
			// The states after each record, from an engine syncing each part.
			ref := &crashRun{t: c.t, fs: newFaultFS(crashSeed), opts: opts}
			re := twoRegions(ref)
			var states []engineView
			for _, p := range parts {
				p(c.t, re)
				check(c.t, re.SyncAll())
				states = append(states, nothingPending(c.t, re))
			}
			sameView(c.t, "the round and its parts synced one by one", nothingPending(c.t, e), states[len(states)-1])
			return states, nil
		},
		milestones: walRecords,
	}
}

// The bounds follow the log: a record may be on disk once its first write
// was tried and must be once its sync returned.
func TestCrashPointBounds(t *testing.T) {
	log := []simfs.Op{
		{Kind: "create", Name: "/s/ckpt-2.tmp"}, {Kind: "write", Name: "/s/ckpt-2.tmp"}, {Kind: "sync", Name: "/s/ckpt-2.tmp"},
		{Kind: "rename", Name: "/s/ckpt-2.tmp", To: "/s/ckpt-2"}, {Kind: "create", Name: "/s/wal-2"}, {Kind: "sync dir", Name: "/s"},
		{Kind: "write", Name: "/s/wal-2"}, {Kind: "write", Name: "/s/wal-2"}, {Kind: "sync", Name: "/s/wal-2"},
	}
	ms := append(checkpoints(log), walRecords(log)...)
	if wantMs := []milestone{{"checkpoint", 3, 5}, {"wal record", 6, 8}}; !slices.Equal(ms, wantMs) {
		t.Fatalf("milestones %v, want %v", ms, wantMs)
	}
	want := [][2]int{{0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 1}, {0, 1}, {1, 2}, {1, 2}, {1, 2}, {2, 2}}
	for n, w := range want {
		if lo, hi := bounds(ms, log, n); lo != w[0] || hi != w[1] {
			t.Fatalf("crash at op %d: states %d..%d allowed, want %d..%d", n, lo, hi, w[0], w[1])
		}
	}
}

func TestCrashPointSubsets(t *testing.T) {
	if got := len(subsets(3)); got != 8 {
		t.Fatalf("3 entries: %d subsets, want 8", got)
	}
	got := subsets(12)
	if want := 2 * (1 + 12 + 66); len(got) != want {
		t.Fatalf("12 entries: %d subsets, want %d", len(got), want)
	}
	seen := map[uint64]bool{}
	for _, m := range got {
		if k := bits.OnesCount64(m); (k > 2 && k < 10) || seen[m] {
			t.Fatalf("12 entries: subset %b (%d kept) out of bounds or twice", m, k)
		}
		seen[m] = true
	}
}
