package raftstore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/multiraft/multiraft/core/pb"
)

// MembershipChangePending (for observers: the simulator's kill of a store
// waits while it holds) is true on every replica that holds a membership
// change it has not applied, from the leader's proposal until each applies
// it, and false before and after.
func TestMembershipChangePendingUntilApplied(t *testing.T) {
	c, leader, _, _ := moveSetup(t)
	pending := func() string {
		var on []string
		for _, id := range []uint64{1, 2, 3} {
			if c.store(id).MembershipChangePending(1) {
				on = append(on, fmt.Sprint(id))
			}
		}
		return strings.Join(on, ",")
	}
	if got := pending(); got != "" {
		t.Fatalf("before any change, pending on stores %q", got)
	}
	meta := c.meta(leader, 1)
	c.net.Send(pb.NewEnvelope(pdNode, leader, &pb.RegionOrder{
		RegionId: 1, RegionEpoch: meta.GetEpoch(),
		ChangePeers: &pb.ChangePeers{
			Header:  &pb.RequestHeader{RegionId: 1, RegionEpoch: meta.GetEpoch()},
			Changes: []*pb.PeerChange{change(pb.ChangeType_ADD_LEARNER, 1000, 4)},
		},
	}))
	c.round() // the leader proposes and persists the change, and sends it
	if got := pending(); got != fmt.Sprint(leader) {
		t.Fatalf("after the proposal, pending on stores %q, want the leader's %d", got, leader)
	}
	c.round() // the followers persist it, not yet knowing it committed
	if got := pending(); got != "1,2,3" {
		t.Fatalf("once the followers hold it, pending on stores %q, want 1,2,3", got)
	}
	c.waitMeta(1, meta.GetEpoch().GetConfVer()+1, describePeers(meta)+",1000@4:LEARNER", 1, 2, 3)
	if got := pending(); got != "" {
		t.Fatalf("once applied, pending on stores %q", got)
	}
	if c.store(4).MembershipChangePending(99) {
		t.Fatal("pending for a region the store does not have")
	}
}
