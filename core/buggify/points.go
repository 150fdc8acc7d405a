package buggify

import "fmt"

// Point is a fault hook: one place in the code and what it does there when
// it fires. docs/testing.md describes each (where, what, why it is
// dangerous).
type Point int

// The hooks. Their order is the order in which a run draws whether each is
// enabled: append new ones at the end, so that existing seeds keep their
// draws.
const (
	// Splits (core/raftstore/split.go, apply.go).
	SplitProposeDrop     Point = iota // PD's split ids arrive; the split is not proposed
	SplitProposeDelay                 // ... the split is proposed 50 ms-2 s later
	SplitProposeRepeat                // ... proposed now and once more 0-2 s later
	SplitProposeCrash                 // ... proposed; the store crashes before its next ready round
	SplitProposeTransfer              // ... proposed; the leader hands its leadership away at once
	SplitApplyCrash                   // a replica applied a split in memory; crash before it is synced
	SplitReportDrop                   // the leader applied a split; its ReportSplit to PD is lost
	SplitCampaignSkip                 // the new region does not campaign at once on the leader's store
	// Snapshots (core/raftstore/snapshot.go, peer.go).
	SnapChunkDrop     // a snapshot chunk is not sent (the sender resends it after a while)
	SnapChunkRepeat   // a snapshot chunk is sent twice
	SnapAckDrop       // the receiver's acknowledgement of a chunk is lost
	SnapDeliverRefuse // a complete snapshot is refused at the last check
	SnapInstallCrash  // a snapshot is being installed; crash before it is synced
	// Membership changes (core/raftstore/confchange.go, membership.go).
	ConfProposeDrop     // PD's membership order arrives at the leader; it is not proposed
	ConfProposeRepeat   // ... proposed, and the same change proposed again 0-2 s later, unchecked
	ConfProposeTransfer // ... proposed; the leader hands its leadership away at once
	ConfApplyCrash      // a replica applied a membership change in memory; crash before it is synced
	LeaveJointCrash     // a replica is about to apply the leave-joint; crash instead
	JointTransfer       // the leader entered a joint configuration; it hands its leadership away
	// Leader transfer (core/raftstore/membership.go).
	TransferOrderDrop // PD's leader transfer order is ignored
	// PD operators (core/pd/operators.go).
	OrderDrop   // PD's order for an operator step is not sent
	OrderRepeat // ... sent twice
	OrderDelay  // ... sent 100 ms-3 s later, from PD's tick (perhaps stale by then)
	// The ready round (core/raftstore/store.go).
	SyncDelay       // the ready round waits for the next tick (a slow disk)
	SyncCrashBefore // crash after the round's records are queued, before its synced write
	SyncCrashAfter  // crash after the round's synced write, before its messages leave
	// Reads (core/raftstore/read.go).
	ReadIndexDelay // a batch of reads waits for the next tick before its ReadIndex
	// Region heartbeats (core/raftstore/peer.go).
	RegionHeartbeatDelay // a region heartbeat reaches PD 0.5-4 s late (stale by then)
	// Client writes (core/raftstore/propose.go).
	WriteProposeRepeat // a session write is proposed again 0-1 s later, as a retry would be

	NumPoints
)

type pointInfo struct {
	name string
	fire float64 // chance to fire each time the code passes it, when enabled
}

// The chance to fire is set by how often the code passes the hook: points
// passed a few times a run (splits, membership changes) fire often; the
// ready round, passed tens of thousands of times, rarely.
var points = [NumPoints]pointInfo{
	SplitProposeDrop:     {"split.propose.drop", 0.25},
	SplitProposeDelay:    {"split.propose.delay", 0.3},
	SplitProposeRepeat:   {"split.propose.repeat", 0.3},
	SplitProposeCrash:    {"split.propose.crash", 0.15},
	SplitProposeTransfer: {"split.propose.transfer", 0.25},
	SplitApplyCrash:      {"split.apply.crash", 0.08},
	SplitReportDrop:      {"split.report.drop", 0.3},
	SplitCampaignSkip:    {"split.campaign.skip", 0.3},
	SnapChunkDrop:        {"snapshot.chunk.drop", 0.05},
	SnapChunkRepeat:      {"snapshot.chunk.repeat", 0.05},
	SnapAckDrop:          {"snapshot.ack.drop", 0.05},
	SnapDeliverRefuse:    {"snapshot.deliver.refuse", 0.15},
	SnapInstallCrash:     {"snapshot.install.crash", 0.1},
	ConfProposeDrop:      {"confchange.propose.drop", 0.2},
	ConfProposeRepeat:    {"confchange.propose.repeat", 0.25},
	ConfProposeTransfer:  {"confchange.propose.transfer", 0.2},
	ConfApplyCrash:       {"confchange.apply.crash", 0.03},
	LeaveJointCrash:      {"confchange.leave-joint.crash", 0.1},
	JointTransfer:        {"confchange.joint.transfer", 0.25},
	TransferOrderDrop:    {"transfer.order.drop", 0.3},
	OrderDrop:            {"pd.order.drop", 0.1},
	OrderRepeat:          {"pd.order.repeat", 0.1},
	OrderDelay:           {"pd.order.delay", 0.1},
	SyncDelay:            {"sync.delay", 0.005},
	SyncCrashBefore:      {"sync.crash-before", 0.00005},
	SyncCrashAfter:       {"sync.crash-after", 0.00005},
	ReadIndexDelay:       {"read.index.delay", 0.03},
	RegionHeartbeatDelay: {"region-heartbeat.delay", 0.05},
	WriteProposeRepeat:   {"write.propose.repeat", 0.01},
}

// String is the hook's name, e.g. "split.propose.delay".
func (p Point) String() string {
	if p < 0 || p >= NumPoints {
		return fmt.Sprintf("Point(%d)", int(p))
	}
	return points[p].name
}

// FireProb is the chance that the hook fires each time the code passes it,
// when it is enabled.
func (p Point) FireProb() float64 { return points[p].fire }

// PointByName returns the hook called name.
func PointByName(name string) (Point, bool) {
	for p := Point(0); p < NumPoints; p++ {
		if points[p].name == name {
			return p, true
		}
	}
	return 0, false
}
