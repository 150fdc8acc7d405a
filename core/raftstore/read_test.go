package raftstore_test

import (
	"fmt"
	"testing"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// TestReadWaitsForApply: a read is served only once the peer has applied up
// to its read index. raft hands committed entries to the store at most
// MaxSizePerMsg bytes per Ready (its MaxCommittedSizePerReady), so a leader
// that commits many entries at once applies them over several rounds, and a
// ReadIndex issued in between is answered with the commit index, past what
// is applied. With MaxSizePerMsg 1 every Ready applies one entry: twenty
// puts committed in one round take twenty rounds to apply, and a get of the
// last key sent right after the commit must see it.
func TestReadWaitsForApply(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxSizePerMsg = 1
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("k00", "warm")) // settles the leader's first entries
	const n = 20
	var puts []uint64
	for i := range n {
		req := &pb.KvRequest{Header: c.header(leader, 1)}
		put(fmt.Sprintf("k%02d", i+1), fmt.Sprintf("v%d", i+1))(req)
		puts = append(puts, c.send(leader, req))
	}
	// Proposed, replicated, acknowledged: the leader commits all twenty.
	lead := func() raftstore.RegionStatus {
		rs, _ := c.store(leader).Region(1)
		return rs
	}
	for i := 0; i < 10 && lead().Commit < lead().Applied+n/2; i++ {
		c.round()
	}
	st := lead()
	if st.Commit < st.Applied+n/2 {
		t.Fatalf("leader applied %d of commit %d: wanted a lag of at least %d entries to read into", st.Applied, st.Commit, n/2)
	}
	t.Logf("read issued at applied %d, commit %d", st.Applied, st.Commit)
	req := &pb.KvRequest{Header: c.header(leader, 1)}
	get(fmt.Sprintf("k%02d", n))(req)
	g := c.await(c.send(leader, req))
	if e := g.GetRegionError(); e != nil {
		t.Fatalf("get: region error %v", e)
	}
	if got := g.GetGet(); !got.GetFound() || string(got.GetValue()) != fmt.Sprintf("v%d", n) {
		t.Fatalf("get k%02d after its put committed = (found %v, %q), want %q: a read served before its read index was applied", n, got.GetFound(), got.GetValue(), fmt.Sprintf("v%d", n))
	}
	for _, id := range puts {
		if r := c.await(id); r.GetRegionError() != nil {
			t.Fatalf("put %d: %v", id, r.GetRegionError())
		}
	}
}
