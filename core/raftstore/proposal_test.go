package raftstore_test

import (
	"fmt"
	"testing"

	"github.com/multiraft/multiraft/core/pb"
)

// A proposal is answered by its own entry only: the one this store, in
// this life, proposed under that id. Proposal ids are counted per store
// from 1 in every life, so another store's entry can carry the same id.
// After a restart of every store, store x (leading) proposes a put as its
// first write (id 1); the entry reaches follower f, whose acknowledgement
// is lost, and x is cut off. f, whose log is the longest, leads next, and
// its first write is a cas that must fail (id 1 too) proposed before x's
// put commits under f. Applying x's put must not answer f's client: the
// cas is answered by its own entry, as a failed cas.
func TestProposalAnsweredOnlyByItsOwnEntry(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	c.ok(1, put("a", "v0"))
	c.restartAll() // every store's proposal ids start again at 1
	x := c.waitLeader(1)
	var f, z uint64
	for _, id := range c.ids {
		if id == x {
			continue
		}
		if f == 0 {
			f = id
		} else {
			z = id
		}
	}
	// x's appends reach f only, and nothing comes back to x.
	c.filter = func(e *pb.Envelope) bool {
		if e.GetRaft() == nil {
			return false
		}
		return (e.GetFrom() == x && e.GetTo() == z) || (e.GetTo() == x && e.GetFrom() != clientNode)
	}
	put1 := c.post(x, &pb.KvRequest{Header: c.header(x, 1), Op: &pb.KvRequest_Put{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("from x")}}})
	c.deliver()
	c.isolate(x, true)
	// f leads (z cannot: its log is behind f's). Its appends to z are held
	// until its first write, the cas, is proposed.
	hold := true
	c.filter = func(e *pb.Envelope) bool {
		return hold && e.GetFrom() == f && e.GetTo() == z && len(e.GetRaft().GetMessage().GetEntries()) > 0
	}
	c.waitFor(200, fmt.Sprintf("store %d to lead region 1", f), func() bool {
		rs := c.region(f, 1)
		return rs != nil && rs.IsLeader
	})
	casReq := c.post(f, &pb.KvRequest{Header: c.header(f, 1), Op: &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: []byte("a"), ExpectedVersion: 99, Value: []byte("from f")}}})
	c.deliver()
	hold = false
	resp := c.await(casReq)
	if resp.GetRegionError() != nil || resp.GetCas() == nil || resp.GetCas().GetSucceeded() {
		t.Fatalf("the cas proposed by store %d was answered %v: want its own entry's answer, a failed cas", f, resp)
	}
	// x's put committed under f; its client is never answered by x (cut off).
	c.mustGet(1, "a", "from x", 2)
	if r := c.responses[put1]; r != nil {
		t.Fatalf("the cut-off store %d answered its put: %v", x, r)
	}
}
