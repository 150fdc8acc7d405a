package pd

// Adversarial review (branch review-hard): tests expected to FAIL on the
// code as reviewed.

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// The version bound is raised by every answered AskSplit, and AskSplit is
// answered to anyone: no check that the sender is a store, let alone the
// region's leader. So the bound that was meant to stop "a huge version
// froze the region in PD" is one unauthenticated request away: node 4242
// asks for a split, then reports the region at version+1 over the same
// range. PD publishes it in place. The store's real split then arrives at
// that same version with a different range and is refused as contradicting
// ("same version, another range"): the region is frozen in PD and its
// right half never becomes routable.
func TestAskSplitFromAnyoneDoesNotLicenseAForgedVersion(t *testing.T) {
	h := newHarness(t, layout())
	a := h.pd.Regions()[0]
	const outsider = 4242
	h.send(outsider, &pb.AskSplitRequest{RequestId: 1, Region: a})
	h.net.sent = nil
	forged := proto.Clone(a).(*pb.Region)
	forged.Epoch.Version++
	h.send(outsider, &pb.RegionHeartbeat{Region: forged, Leader: forged.Peers[0]})

	// The real leader splits the region the ordinary way.
	resp := h.askSplit(t, a)
	if resp.GetError() != "" {
		t.Fatalf("after an outsider's AskSplit and forged heartbeat, region %d is frozen in PD: the real leader's AskSplit is refused: %s",
			a.GetId(), resp.GetError())
	}
	l, r := split(a, "m", resp.GetNewRegionId(), resp.GetNewPeerIds())
	h.send(a.GetPeers()[0].GetStoreId(), &pb.ReportSplit{Left: l, Right: r})
	h.heartbeat(l)
	h.heartbeat(r)
	if got := h.pd.Regions(); len(got) != 2 {
		t.Fatalf("a forged heartbeat licensed by the outsider's AskSplit froze region %d: view %s, stats %+v",
			a.GetId(), describe(got), h.pd.Stats())
	}
}

// A move's swap is ONE order (PROMOTE_LEARNER + DEMOTE_VOTER as a joint
// change) but TWO conf_ver steps: entering the joint configuration, and the
// leave that raft's leader proposes on its own (docs/move.md, steps 4 and 5).
// (expectConfChange once allowed one step per order, so after PD orders a whole
// move (add learner, swap, remove) the region's honest report is one
// conf_ver beyond the bound, and every later heartbeat of the region is
// refused: PD's membership for it is frozen at the state before the move.
func TestMoveOrderedByPDIsAcceptedAfterRaftLeavesTheJointConfig(t *testing.T) {
	h := newHarness(t, layout())
	a := h.pd.Regions()[0]
	after := proto.Clone(a).(*pb.Region)
	// add learner (+1), swap: enter joint (+1) and leave joint (+1), remove (+1)
	// PD's three orders, each made at the epoch it sees: add learner (one
	// step), swap (two), remove (one).
	at := proto.Clone(a.GetEpoch()).(*pb.Epoch)
	for _, steps := range []uint64{1, 2, 1} {
		h.pd.allowConfChange(a.GetId(), at, steps)
		at.ConfVer += steps
	}
	after.Epoch.ConfVer += 4
	h.heartbeat(after)
	if got := h.pd.Regions()[0]; got.GetEpoch().GetConfVer() != after.GetEpoch().GetConfVer() {
		t.Fatalf("after a move of three orders the region reports conf_ver %d; PD keeps %d (stats %+v)",
			after.GetEpoch().GetConfVer(), got.GetEpoch().GetConfVer(), h.pd.Stats())
	}
}

// Stores ask PD for their region by id when a peer has heard from no leader
// for StalePeerCheck (raftstore/membership.go: checkStale), and destroy the
// peer if PD's region is newer and does not list it: the only way a removed
// learner, or a placeholder whose snapshot never came, is ever collected
// (learners never campaign, so no member ever sends them a GC notice). PD
// has no case for RegionByIDRequest: it is counted as malformed and never
// answered. (The store also keeps every unanswered request in
// Store.pdRequests, one more per stale peer every StalePeerCheck, forever.)
func TestPDAnswersRegionByID(t *testing.T) {
	h := newHarness(t, layout())
	a := h.pd.Regions()[0]
	h.send(a.GetPeers()[0].GetStoreId(), &pb.RegionByIDRequest{RequestId: 7, RegionId: a.GetId()})
	if len(h.net.sent) != 1 || h.net.sent[0].GetRegionByIdResponse() == nil {
		t.Fatalf("PD sent %d replies to a RegionByIDRequest (stats %+v)", len(h.net.sent), h.pd.Stats())
	}
	if got := h.net.sent[0].GetRegionByIdResponse(); got.GetRequestId() != 7 || !proto.Equal(got.GetRegion(), a) {
		t.Fatalf("RegionByID answer %v", got)
	}
}
