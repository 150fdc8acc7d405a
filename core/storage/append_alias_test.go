package storage

import (
	"math"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestEntriesSlicesSurviveAppends: slices Entries handed out keep their
// entries through appends at the end (which grow the log in place),
// appends that replace a conflicting suffix, and appends by the caller to
// the slice itself (raft may append to what Entries returns).
func TestEntriesSlicesSurviveAppends(t *testing.T) {
	e := mustOpen(t, newFaultFS(0), Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, r.Append([]*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b")}))
	// Room to grow in place.
	for i := uint64(8); i < 40; i++ {
		check(t, r.Append([]*raftpb.Entry{ent(i, 5, "x")}))
	}
	got, err := r.Entries(6, 20, math.MaxUint64)
	check(t, err)
	before := append([]*raftpb.Entry(nil), got...)
	// The caller appends to the slice: the region's log is not touched.
	_ = append(got, ent(99, 9, "caller"))
	if t20, _ := r.Term(20); t20 != 5 {
		t.Fatalf("term of 20 is %d after the caller appended to a slice", t20)
	}
	// In place at the end, then a conflicting suffix from 10.
	check(t, r.Append([]*raftpb.Entry{ent(40, 5, "y"), ent(41, 5, "z")}))
	check(t, r.Append([]*raftpb.Entry{ent(10, 7, "new")}))
	for i := range got {
		if got[i] != before[i] {
			t.Fatalf("entry %d of a handed-out slice changed", i)
		}
	}
	if tm, _ := r.Term(10); tm != 7 {
		t.Fatalf("term of 10 is %d, want 7", tm)
	}
	if li, _ := r.LastIndex(); li != 10 {
		t.Fatalf("last index %d, want 10", li)
	}
	// And grow in place after the conflict, with a slice handed out.
	got2, err := r.Entries(6, 11, math.MaxUint64)
	check(t, err)
	check(t, r.Append([]*raftpb.Entry{ent(11, 7, "p")}))
	_ = append(got2, ent(11, 9, "caller"))
	if tm, _ := r.Term(11); tm != 7 {
		t.Fatalf("term of 11 is %d, want 7", tm)
	}
}
