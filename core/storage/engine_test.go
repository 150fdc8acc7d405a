package storage

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
)

func TestOpenEmpty(t *testing.T) {
	fs := newFaultFS(0)
	e := mustOpen(t, fs, Options{})
	if e.Ident() != nil || len(e.RegionIDs()) != 0 || e.HasPending() || e.NeedsSync() {
		t.Fatalf("new engine not empty: ident %v regions %v", e.Ident(), e.RegionIDs())
	}
	if got, want := listDir(t, fs), []string{ckptName(1), walName(1)}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	check(t, e.Close())
	// A crash right after Open keeps the (empty) store: Open synced it all.
	e = mustOpen(t, crashFS(t, fs, 1, 0), Options{})
	if len(e.RegionIDs()) != 0 {
		t.Fatalf("regions %v after reopen", e.RegionIDs())
	}
}

// fill puts a bootstrap region through every kind of change and syncs.
func fill(t *testing.T, e *Engine) *Region {
	t.Helper()
	e.SetIdent(&pb.StoreIdent{ClusterId: 7, StoreId: 2})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b"), ent(8, 6, "c")}))
	r.SetHardState(hardState(6, 12, 7))
	if v := r.Put([]byte("k1"), []byte("v1")); v != 1 {
		t.Fatalf("first put version %d", v)
	}
	if v := r.Put([]byte("k1"), []byte("v1b")); v != 2 {
		t.Fatalf("second put version %d", v)
	}
	r.Put([]byte("k2"), []byte("v2"))
	r.Put([]byte("k3"), []byte("v3"))
	if !r.Delete([]byte("k2")) || r.Delete([]byte("k2")) {
		t.Fatal("delete")
	}
	if ok, v := r.CompareAndSwap([]byte("k3"), 1, []byte("v3b")); !ok || v != 2 {
		t.Fatalf("cas: %v %d", ok, v)
	}
	if ok, v := r.CompareAndSwap([]byte("k3"), 1, []byte("nope")); ok || v != 2 {
		t.Fatalf("failed cas: %v %d", ok, v)
	}
	if ok, v := r.CompareAndSwap([]byte("k4"), 0, []byte("new")); !ok || v != 1 {
		t.Fatalf("create cas: %v %d", ok, v)
	}
	r.SetApplied(7)
	check(t, e.SyncAll())
	return r
}

func TestReopenRestoresState(t *testing.T) {
	fs := newFaultFS(0)
	e := mustOpen(t, fs, Options{})
	fill(t, e)
	want := viewOf(t, e)
	if e.HasPending() || e.NeedsSync() {
		t.Fatal("pending records after Sync(true)")
	}
	check(t, e.Close())

	e2 := mustOpen(t, fs, Options{})
	sameView(t, "reopen", viewOf(t, e2), want)
	r := e2.Region(1)
	if got := string(mustGet(t, r, "k1")); got != "v1b" {
		t.Fatalf("k1 = %q", got)
	}
	if r.Applied() != 7 || r.HardState().GetCommit() != 7 || !slices.Equal(r.ConfState().GetVoters(), []uint64{11, 12, 13}) {
		t.Fatalf("applied %d hard %v conf %v", r.Applied(), r.HardState(), r.ConfState())
	}
	if id := e2.Ident(); id.GetClusterId() != 7 || id.GetStoreId() != 2 {
		t.Fatalf("ident %v", id)
	}
	check(t, e2.Close())

	// Once more from a crash image (everything was synced) and after a
	// reopen's checkpoint: the same again.
	e3 := mustOpen(t, crashFS(t, fs, 3, 0), Options{})
	sameView(t, "crash and reopen", viewOf(t, e3), want)
}

func mustGet(t *testing.T, r *Region, key string) []byte {
	t.Helper()
	it, ok := r.Data().Get([]byte(key))
	if !ok {
		t.Fatalf("region %d: key %q missing", r.ID(), key)
	}
	return it.Value
}

func TestCreateRegionTwiceFails(t *testing.T) {
	e := mustOpen(t, vfs.NewCrashableMem(), Options{})
	_, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	if _, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1))); err == nil {
		t.Fatal("second CreateRegion of region 1 succeeded")
	}
	if _, err := e.CreateRegion(&pb.RegionCheckpoint{}); err == nil {
		t.Fatal("CreateRegion without an id succeeded")
	}
}

func TestRaftStorageContract(t *testing.T) {
	e := mustOpen(t, vfs.NewCrashableMem(), Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	hs, cs, err := r.InitialState()
	check(t, err)
	if hs.GetTerm() != 5 || hs.GetCommit() != 5 || !slices.Equal(cs.GetVoters(), []uint64{11, 12, 13}) {
		t.Fatalf("initial state %v %v", hs, cs)
	}
	first, _ := r.FirstIndex()
	last, _ := r.LastIndex()
	if first != 6 || last != 5 {
		t.Fatalf("empty log: first %d last %d", first, last)
	}
	if term, err := r.Term(5); err != nil || term != 5 {
		t.Fatalf("Term(5) of a fresh log = %d, %v", term, err)
	}
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "bb"), ent(8, 6, "ccc"), ent(9, 6, "dddd"), ent(10, 7, "eeeee")}))
	first, _ = r.FirstIndex()
	last, _ = r.LastIndex()
	if first != 6 || last != 10 {
		t.Fatalf("first %d last %d", first, last)
	}
	for i, want := range map[uint64]uint64{5: 5, 6: 5, 7: 5, 8: 6, 9: 6, 10: 7} {
		if term, err := r.Term(i); err != nil || term != want {
			t.Fatalf("Term(%d) = %d, %v; want %d", i, term, err, want)
		}
	}
	if _, err := r.Term(4); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Term(4): %v, want ErrCompacted", err)
	}
	if _, err := r.Term(11); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(11): %v, want ErrUnavailable", err)
	}
	if _, err := r.Entries(5, 8, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(5,8): %v, want ErrCompacted", err)
	}
	if _, err := r.Entries(6, 12, math.MaxUint64); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries(6,12): %v, want ErrUnavailable", err)
	}
	all, err := r.Entries(6, 11, math.MaxUint64)
	check(t, err)
	if len(all) != 5 || all[0].GetIndex() != 6 || all[4].GetIndex() != 10 {
		t.Fatalf("Entries(6,11): %d entries", len(all))
	}
	// maxSize: always at least one entry, then as many as fit.
	for _, c := range []struct {
		lo, hi, max uint64
		want        int
	}{
		{6, 11, 0, 1},
		{8, 11, 1, 1},
		{6, 11, uint64(proto.Size(all[0]) + proto.Size(all[1])), 2},
		{6, 11, uint64(proto.Size(all[0]) + proto.Size(all[1]) + proto.Size(all[2]) - 1), 2},
		{7, 9, math.MaxUint64, 2},
		{7, 7, math.MaxUint64, 0},
	} {
		got, err := r.Entries(c.lo, c.hi, c.max)
		check(t, err)
		if len(got) != c.want {
			t.Fatalf("Entries(%d,%d,%d): %d entries, want %d", c.lo, c.hi, c.max, len(got), c.want)
		}
		if c.want > 0 && got[0].GetIndex() != c.lo {
			t.Fatalf("Entries(%d,...) starts at %d", c.lo, got[0].GetIndex())
		}
	}
	// A returned slice must not see later appends that overwrite its range.
	held, err := r.Entries(8, 11, math.MaxUint64)
	check(t, err)

	// Append cuts the log at the first new index.
	check(t, r.Append([]*raftpb.Entry{ent(9, 8, "x"), ent(10, 8, "y"), ent(11, 8, "z")}))
	if last, _ := r.LastIndex(); last != 11 {
		t.Fatalf("last %d after overwrite", last)
	}
	if term, _ := r.Term(9); term != 8 {
		t.Fatalf("Term(9) = %d after overwrite", term)
	}
	if held[1].GetTerm() != 6 || string(held[1].GetData()) != "dddd" {
		t.Fatalf("an earlier Entries result changed: %v", held[1])
	}
	if err := r.Append([]*raftpb.Entry{ent(13, 8, "gap")}); err == nil {
		t.Fatal("append leaving a gap succeeded")
	}

	// Compact only applied entries.
	if err := r.Compact(8); err == nil {
		t.Fatal("compact beyond applied succeeded")
	}
	r.SetApplied(8)
	check(t, r.Compact(8))
	check(t, r.Compact(7)) // behind: a no-op
	if first, _ := r.FirstIndex(); first != 9 {
		t.Fatalf("first %d after compact", first)
	}
	if term, err := r.Term(8); err != nil || term != 6 {
		t.Fatalf("Term(8) = %d, %v after compact to 8", term, err)
	}
	if _, err := r.Term(7); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Term(7) after compact: %v", err)
	}
	if _, err := r.Entries(8, 10, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(8,..) after compact: %v", err)
	}
	// Appending entries the compaction covers skips them.
	check(t, r.Append([]*raftpb.Entry{ent(7, 5, "old"), ent(8, 6, "old"), ent(9, 8, "x")}))
	if first, _ := r.FirstIndex(); first != 9 {
		t.Fatalf("first %d after append below the compaction", first)
	}
	if last, _ := r.LastIndex(); last != 9 {
		t.Fatalf("last %d after append below the compaction", last)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	fs := newFaultFS(0)
	e := mustOpen(t, fs, Options{})
	r := fill(t, e)
	snap, err := r.Snapshot()
	check(t, err)
	md := snap.GetMetadata()
	if md.GetIndex() != 7 || md.GetTerm() != 5 || !slices.Equal(md.GetConfState().GetVoters(), []uint64{11, 12, 13}) {
		t.Fatalf("snapshot metadata %v", md)
	}
	img := r.SnapshotImage(7)
	if img == nil || r.SnapshotImage(6) != nil {
		t.Fatal("no image at the snapshot's index, or one at another")
	}
	// Changes after the snapshot do not leak into its image.
	r.Put([]byte("k9"), []byte("later"))
	var pairs []*pb.KvPair
	img.Data.Ascend(func(it kv.Item) bool {
		pairs = append(pairs, &pb.KvPair{Key: it.Key, Value: it.Value, Version: it.Version})
		return true
	})

	fs2 := newFaultFS(0)
	e2 := mustOpen(t, fs2, Options{})
	// A placeholder peer, as created by an early raft message.
	ph, err := e2.CreateRegion(&pb.RegionCheckpoint{Region: &pb.Region{Id: 1}})
	check(t, err)
	ph.SetHardState(hardState(6, 0, 0))
	check(t, e2.SyncAll())
	check(t, ph.ApplySnapshot(snap, pairs))
	got := e2.Region(1)
	if got.Applied() != 7 || got.HardState().GetCommit() != 7 || got.HardState().GetTerm() != 6 {
		t.Fatalf("after snapshot: applied %d hard %v", got.Applied(), got.HardState())
	}
	if first, _ := got.FirstIndex(); first != 8 {
		t.Fatalf("first index %d after snapshot at 7", first)
	}
	if term, _ := got.Term(7); term != 5 {
		t.Fatalf("Term(7) = %d after snapshot", term)
	}
	if metaString(got.Meta()) != metaString(r.Meta()) {
		t.Fatalf("meta %s, want %s", metaString(got.Meta()), metaString(r.Meta()))
	}
	var keys, want []string
	for _, k := range []string{"k1", "k3", "k4"} {
		it, _ := r.Data().Get([]byte(k))
		want = append(want, kvString(it.Key, it.Value, it.Version))
	}
	for _, it := range got.Data().Scan(nil, nil, 0) {
		keys = append(keys, kvString(it.Key, it.Value, it.Version))
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if !e2.NeedsSync() {
		t.Fatal("an applied snapshot is not critical")
	}
	check(t, e2.Sync())
	v := viewOf(t, e2)
	check(t, e2.Close())
	e3 := mustOpen(t, crashFS(t, fs2, 1, 0), Options{})
	sameView(t, "reopen after snapshot", viewOf(t, e3), v)

	// A snapshot for another region is refused.
	other, err := e3.CreateRegion(&pb.RegionCheckpoint{Region: &pb.Region{Id: 2}})
	check(t, err)
	if err := other.ApplySnapshot(snap, pairs); err == nil {
		t.Fatal("snapshot of region 1 applied to region 2")
	}
}

func TestLazyVsCritical(t *testing.T) {
	fs := newFaultFS(0)
	e := mustOpen(t, fs, Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	if !e.NeedsSync() {
		t.Fatal("a new region is not critical")
	}
	check(t, e.Sync())
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b")}))
	r.SetHardState(hardState(5, 0, 7))
	check(t, e.Sync())
	r.Put([]byte("durable"), []byte("1"))
	r.SetApplied(6)
	check(t, e.SyncAll())
	synced := viewOf(t, e)

	// Apply-side changes only: lazy.
	r.Put([]byte("lazy"), []byte("2"))
	r.Delete([]byte("durable"))
	r.SetApplied(7)
	check(t, r.Compact(6))
	if !e.HasPending() || e.NeedsSync() {
		t.Fatalf("after lazy changes: pending %v needs sync %v", e.HasPending(), e.NeedsSync())
	}
	before := e.Stats()
	check(t, e.Sync())
	if e.Stats() != before || !e.HasPending() {
		t.Fatalf("Sync(false) with only lazy records wrote: %+v -> %+v", before, e.Stats())
	}
	lazy := viewOf(t, e)

	// The crash loses the lazy changes and nothing else.
	img := crashFS(t, fs, 1, 0)
	e2 := mustOpen(t, img, Options{})
	sameView(t, "crash after Sync(false)", viewOf(t, e2), synced)
	check(t, e2.Close())

	// Sync(true) writes them.
	check(t, e.SyncAll())
	if got := e.Stats(); got.Records != before.Records+1 || got.Syncs != before.Syncs+1 {
		t.Fatalf("Sync(true) did not write one record: %+v -> %+v", before, got)
	}
	e3 := mustOpen(t, crashFS(t, fs, 1, 0), Options{})
	sameView(t, "crash after Sync(true)", viewOf(t, e3), lazy)

	// Lazy records ride along with the next critical record.
	r.Put([]byte("rides"), []byte("3"))
	check(t, r.Append([]*raftpb.Entry{ent(8, 6, "c")}))
	if !e.NeedsSync() {
		t.Fatal("an append is not critical")
	}
	check(t, e.Sync())
	both := viewOf(t, e)
	e4 := mustOpen(t, crashFS(t, fs, 1, 0), Options{})
	sameView(t, "crash after a critical record", viewOf(t, e4), both)
	if _, ok := e4.Region(1).Data().Get([]byte("rides")); !ok {
		t.Fatal("the lazy put written with the critical record is lost")
	}
}

// splitFixture makes region 1 over everything with keys a..h, synced.
func splitFixture(t *testing.T, fs vfs.FS) (*Engine, *Region) {
	t.Helper()
	e := mustOpen(t, fs, Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		r.Put([]byte(k), []byte("v"+k))
	}
	r.Put([]byte("e"), []byte("ve2"))
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "split")}))
	r.SetApplied(6)
	check(t, e.SyncAll())
	return e, r
}

func doSplit(t *testing.T, r *Region) *Region {
	t.Helper()
	right := bootstrapState(regionMeta(2, "d", "", 2))
	nr, err := r.Split(regionMeta(1, "", "d", 2), right)
	check(t, err)
	return nr
}

func keysOf(r *Region) []string {
	var out []string
	for _, it := range r.Data().Scan(nil, nil, 0) {
		out = append(out, kvString(it.Key, it.Value, it.Version))
	}
	return out
}

func TestSplit(t *testing.T) {
	fs := newFaultFS(0)
	e, r := splitFixture(t, fs)
	before := viewOf(t, e)
	nr := doSplit(t, r)
	if nr == nil || e.Region(2) != nr {
		t.Fatal("split did not return the new region")
	}
	if got, want := keysOf(r), []string{`"a"="va"@1`, `"b"="vb"@1`, `"c"="vc"@1`}; !slices.Equal(got, want) {
		t.Fatalf("left keys %v", got)
	}
	if got, want := keysOf(nr), []string{`"d"="vd"@1`, `"e"="ve2"@2`, `"f"="vf"@1`, `"g"="vg"@1`, `"h"="vh"@1`}; !slices.Equal(got, want) {
		t.Fatalf("right keys %v", got)
	}
	if string(r.Meta().GetEndKey()) != "d" || r.Meta().GetEpoch().GetVersion() != 2 || string(nr.Meta().GetStartKey()) != "d" {
		t.Fatalf("metas %s / %s", metaString(r.Meta()), metaString(nr.Meta()))
	}
	if !e.NeedsSync() {
		t.Fatal("a split is not critical")
	}
	// A second split creating region 2 again is refused.
	if _, err := r.Split(regionMeta(1, "", "b", 3), bootstrapState(regionMeta(2, "b", "d", 3))); err == nil {
		t.Fatal("split over an existing initialized region succeeded")
	}
	after := viewOf(t, e)

	// Not synced: a crash loses the whole split.
	e2 := mustOpen(t, crashFS(t, fs, 1, 0), Options{})
	sameView(t, "crash before the split record", viewOf(t, e2), before)
	check(t, e2.Close())

	// One record makes both halves durable.
	records := e.Stats().Records
	check(t, e.Sync())
	if e.Stats().Records != records+1 {
		t.Fatalf("split took %d records", e.Stats().Records-records)
	}
	e3 := mustOpen(t, crashFS(t, fs, 1, 0), Options{})
	sameView(t, "crash after the split record", viewOf(t, e3), after)
	check(t, e3.Close())
}

// The split record is torn at every possible point: recovery shows the whole
// split or none of it.
func TestSplitRecordIsAtomic(t *testing.T) {
	outcomes := map[string]int{}
	for seed := uint64(0); seed < 60; seed++ {
		ffs := newFaultFS(seed)
		e, r := splitFixture(t, ffs)
		before := viewOf(t, e)
		doSplit(t, r)
		after := viewOf(t, e)
		ffs.CrashAfter(int(seed % 2)) // in the write, or in the sync after it
		if err := e.Sync(); err == nil {
			t.Fatal("sync past the crash point succeeded")
		}
		keep := int(seed*37) % 101
		e2 := mustOpen(t, crashFS(t, ffs, seed, keep), Options{})
		switch got := viewOf(t, e2).String(); got {
		case before.String():
			outcomes["none"]++
		case after.String():
			outcomes["whole"]++
		default:
			t.Fatalf("seed %d keep %d: recovered a state that is neither before nor after the split:\n%s", seed, keep, got)
		}
	}
	if outcomes["none"] == 0 || outcomes["whole"] == 0 {
		t.Fatalf("outcomes %v: want both", outcomes)
	}
}

func TestSplitDropsKeysWithoutRight(t *testing.T) {
	fs := newFaultFS(0)
	e, r := splitFixture(t, fs)
	if _, err := r.Split(regionMeta(1, "", "d", 2), nil); err != nil {
		t.Fatal(err)
	}
	if e.Region(2) != nil || len(keysOf(r)) != 3 {
		t.Fatalf("split without right: regions %v keys %v", e.RegionIDs(), keysOf(r))
	}
	check(t, e.Sync())
	want := viewOf(t, e)
	sameView(t, "reopen", viewOf(t, mustOpen(t, crashFS(t, fs, 1, 0), Options{})), want)
	// A split whose left half does not start the region is refused.
	if _, err := r.Split(regionMeta(1, "b", "c", 3), nil); err == nil {
		t.Fatal("split with a misplaced left half succeeded")
	}
}

func TestCheckpoints(t *testing.T) {
	fs := newFaultFS(0)
	opts := Options{CheckpointBytes: 1024}
	e := mustOpen(t, fs, opts)
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync())
	checkpoints := uint64(0)
	for i := uint64(6); i < 200; i++ {
		check(t, r.Append([]*raftpb.Entry{ent(i, 5, "entry")}))
		r.SetHardState(hardState(5, 11, i))
		r.Put([]byte{byte('a' + i%26)}, bytes.Repeat([]byte{byte(i)}, 20))
		r.SetApplied(i)
		if i%10 == 0 {
			check(t, r.Compact(i-5))
		}
		check(t, e.Sync())
		ck := e.Stats().Checkpoints
		check(t, e.MaybeCheckpoint())
		if e.WALBytes() >= opts.CheckpointBytes {
			t.Fatalf("WAL at %d bytes after MaybeCheckpoint", e.WALBytes())
		}
		if e.Stats().Checkpoints > ck {
			checkpoints++
			// The old checkpoint and WAL are gone.
			names := listDir(t, fs)
			if len(names) != 2 || names[0] != ckptName(e.walSeq) || names[1] != walName(e.walSeq) {
				t.Fatalf("files after checkpoint %d: %v", e.walSeq, names)
			}
		}
		if i%50 == 0 {
			want := viewOf(t, e)
			check(t, e.Close())
			fs = crashFS(t, fs, i, 0)
			e = mustOpen(t, fs, opts)
			sameView(t, "reopen", viewOf(t, e), want)
			r = e.Region(1)
		}
	}
	if checkpoints < 5 {
		t.Fatalf("only %d checkpoints", checkpoints)
	}
	want := viewOf(t, e)
	check(t, e.Close())
	sameView(t, "final reopen", viewOf(t, mustOpen(t, fs, opts)), want)
}

// A round whose updates together exceed the batch limit (lazy applied keys
// of one round piled onto the next round's entries) is written as several
// records under one sync and reads back whole. Before, the one oversized
// record failed the store on every replica, on every restart.
func TestRoundOverTheBatchLimitIsSplit(t *testing.T) {
	fs := newFaultFS(1)
	opts := Options{MaxBatchBytes: 64 << 10}
	e := mustOpen(t, fs, opts)
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.SyncAll())
	big := strings.Repeat("x", 40<<10)
	r.Put([]byte("k1"), []byte(big)) // applied: lazy, waits for the next sync
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, big)}))
	r.Put([]byte("k2"), []byte(big))
	check(t, r.Append([]*raftpb.Entry{ent(7, 5, big)}))
	records := e.Stats().Records
	check(t, e.Sync())
	if n := e.Stats().Records - records; n < 2 {
		t.Fatalf("%d records for a round of about 160 KiB with a 64 KiB limit", n)
	}
	check(t, e.Close())
	e = mustOpen(t, crashFS(t, fs, 1, 0), opts)
	got := e.Region(1)
	if last, _ := got.LastIndex(); last != 7 || got.Data().Len() != 2 {
		t.Fatalf("after reopen: last index %d, %d keys", last, got.Data().Len())
	}
	// One update over the limit on its own is refused before anything is
	// written, and the engine stops.
	check(t, got.Append([]*raftpb.Entry{ent(8, 5, strings.Repeat("y", 70<<10))}))
	if err := e.Sync(); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("oversized update: %v", err)
	}
	if err := e.SyncAll(); err == nil {
		t.Fatal("the engine wrote after failing")
	}
}

// Every open is a new incarnation, durable before Open returns, also across
// a crash that keeps nothing unsynced.
func TestIncarnationGrowsWithEveryOpen(t *testing.T) {
	fs := newFaultFS(1)
	var seen []uint64
	for i := 0; i < 3; i++ {
		e := mustOpen(t, fs, Options{})
		seen = append(seen, e.Incarnation())
		check(t, e.Close())
		fs = crashFS(t, fs, uint64(i), 0)
	}
	if !slices.Equal(seen, []uint64{1, 2, 3}) {
		t.Fatalf("incarnations %v, want 1, 2, 3", seen)
	}
}

// One region's append larger than half a batch (a follower catching up) is
// cut into consecutive appends across records and reads back whole.
func TestLargeAppendIsSplitAcrossRecords(t *testing.T) {
	fs := newFaultFS(2)
	opts := Options{MaxBatchBytes: 64 << 10}
	e := mustOpen(t, fs, opts)
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.SyncAll())
	var ents []*raftpb.Entry
	for i := uint64(6); i < 16; i++ {
		ents = append(ents, ent(i, 5, strings.Repeat("e", 20<<10)))
	}
	check(t, r.Append(ents))
	records := e.Stats().Records
	check(t, e.Sync())
	if n := e.Stats().Records - records; n < 4 {
		t.Fatalf("%d records for 200 KiB of entries with a 64 KiB limit", n)
	}
	check(t, e.Close())
	e = mustOpen(t, crashFS(t, fs, 1, 0), opts)
	if last, _ := e.Region(1).LastIndex(); last != 15 {
		t.Fatalf("last index %d after reopen, want 15", last)
	}
}

// A hard state that moves only the commit index is lazy (raft's MustSync):
// it rides with the next synced record. A new term or vote is critical.
func TestCommitOnlyHardStateIsLazy(t *testing.T) {
	e := mustOpen(t, newFaultFS(0), Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b")}))
	r.SetHardState(hardState(5, 2, 6))
	check(t, e.Sync())
	r.SetHardState(hardState(5, 2, 7))
	if !e.HasPending() || e.NeedsSync() {
		t.Fatalf("commit-only hard state: pending %v, needs sync %v; want pending and lazy", e.HasPending(), e.NeedsSync())
	}
	r.SetHardState(hardState(5, 3, 7))
	if !e.NeedsSync() {
		t.Fatal("a new vote is not critical")
	}
	check(t, e.Sync())
	r.SetHardState(hardState(6, 0, 7))
	if !e.NeedsSync() {
		t.Fatal("a new term is not critical")
	}
}

// pendingBatches encodes into a buffer it reuses from one Sync to the next:
// a record must still be exactly the batch's encoding, whatever an earlier
// (longer) record left in the buffer.
func TestReusedEncodeBufferWritesTheBatch(t *testing.T) {
	e := mustOpen(t, newFaultFS(0), Options{})
	r := fill(t, e) // a long first record
	r.Put([]byte("k5"), []byte("v5"))
	r.SetHardState(hardState(7, 1, 8))
	want, err := (&pb.WalBatch{Seq: e.batchSeq, Updates: e.pending}).MarshalVT()
	check(t, err)
	got, err := e.pendingBatches()
	check(t, err)
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("batches %x, want one: %x", got, want)
	}
}
