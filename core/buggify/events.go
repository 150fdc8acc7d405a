package buggify

import "fmt"

// Event is a dangerous situation the code counts when it finds itself in
// it (coverage). docs/testing.md lists where each is counted.
type Event int

// The coverage events. Append new ones at the end.
const (
	// Splits.
	LeaderChangeDuringSplit   Event = iota // a leader stepped down with a split asked of PD or proposed, not yet applied
	SplitWhileLearner                      // a leader applied a split while a learner of the region was catching up
	RestartWithSplitInLog                  // a store restarted with a split command in a region's log not yet applied
	SplitPlaceholderTakenOver              // a split's new region replaced a placeholder peer created by an early message
	SplitNewRegionPresent                  // a split's new region was already here (by snapshot, or removed): only shrink
	SplitMessageStashed                    // a message for a region a pending split will create was held back
	SplitSkippedStale                      // a committed split was skipped at apply (epoch changed, or joint)
	// Snapshots.
	SnapshotToLearner     // a leader started a snapshot to a learner being added (a move)
	SnapshotOverExisting  // a snapshot was installed over a range this replica held already
	SnapshotRefused       // a snapshot was refused (overlap, older epoch, busy, mismatch)
	SnapshotNeverApplied  // a snapshot arrived whole but was never applied; the sender gave up on it
	ProposalCoveredBySnap // a proposal of this store was covered by an installed snapshot (outcome unknown)
	// Epochs and stale state.
	StaleEpochRequest       // a store refused a KV request routed by a stale epoch (EpochNotMatch)
	StaleEpochCommand       // a write committed under a stale epoch was refused at apply
	StaleConfChangeSkipped  // a committed membership change was skipped at apply (stale epoch, invalid)
	StaleOrderIgnored       // a store ignored a PD order made for an older epoch
	PDStaleReportAfterSplit // PD refused a region report older in version than its view (the region split)
	PDStaleReportAfterMove  // PD refused a region report older in conf_ver than its view (the region moved)
	PDStaleSplitReport      // PD ignored a split report (not newer, or invalid)
	// Membership.
	StalePeerDestroyed // a peer that missed its removal was destroyed (GC notice, PD, newer peer)
	PeerRemovedItself  // a replica applied its own removal and destroyed itself
	GCNoticeSent       // a member told a removed peer that it is no longer one
	PlaceholderCreated // a message created an uninitialized peer for a region unknown here
	TombstoneRefused   // a message for a region removed from this store was refused by its tombstone
	// Leadership, proposals, reads.
	DeposedLeaderRead         // a leader that had been deposed was asked to read (NotLeader)
	RestartedLeaderOldEntries // a restarted store led again while entries of its previous life were uncommitted
	ProposalStaleCommand      // a proposal was retired with StaleCommand (its index went to another entry)
	StaleTermMessageDropped   // an outgoing raft message of an older term was dropped
	// Sessions.
	SessionExpiredAnswered // a session write was refused with SessionExpired
	SessionRepeatAnswered  // a session write was answered from its stored result, not applied again
	// Quiescence.
	QuietWokenByMessage     // a quiet peer was woken by a raft message
	QuietWokenBySilentStore // a quiet follower woke because its leader's store went silent
	// Recovery.
	TornTailCut // a store recovered by cutting a torn WAL tail
	// PD operators.
	OperatorTimedOut  // a PD operator did not finish by its deadline
	OperatorCancelled // a PD operator could not go on (target store down, step impossible)
	// Client clocks.
	SessionClockAhead        // a session write was refused as started more than the session lifetime ahead of the region's clock
	ClockRefusalAfterTimeout // a client got that refusal for a write an earlier attempt of which had timed out (it may apply yet)
	// Membership.
	PeerUnknownToPD // PD answered an initialized peer that it knows no such region (not yet told of the split that made it)

	NumEvents
)

var eventNames = [NumEvents]string{
	LeaderChangeDuringSplit:   "split.leader-change",
	SplitWhileLearner:         "split.while-learner-catches-up",
	RestartWithSplitInLog:     "split.restart-before-apply",
	SplitPlaceholderTakenOver: "split.placeholder-taken-over",
	SplitNewRegionPresent:     "split.new-region-present",
	SplitMessageStashed:       "split.message-stashed",
	SplitSkippedStale:         "split.skipped-stale",
	SnapshotToLearner:         "snapshot.to-learner",
	SnapshotOverExisting:      "snapshot.over-existing-range",
	SnapshotRefused:           "snapshot.refused",
	SnapshotNeverApplied:      "snapshot.never-applied",
	ProposalCoveredBySnap:     "snapshot.covers-proposal",
	StaleEpochRequest:         "epoch.request-refused",
	StaleEpochCommand:         "epoch.command-refused",
	StaleConfChangeSkipped:    "epoch.confchange-skipped",
	StaleOrderIgnored:         "epoch.order-ignored",
	PDStaleReportAfterSplit:   "pd.stale-report-after-split",
	PDStaleReportAfterMove:    "pd.stale-report-after-move",
	PDStaleSplitReport:        "pd.stale-split-report",
	StalePeerDestroyed:        "peer.stale-destroyed",
	PeerRemovedItself:         "peer.removed-itself",
	GCNoticeSent:              "peer.gc-notice-sent",
	PlaceholderCreated:        "peer.placeholder-created",
	TombstoneRefused:          "peer.tombstone-refused",
	DeposedLeaderRead:         "read.deposed-leader",
	RestartedLeaderOldEntries: "leader.restarted-with-old-entries",
	ProposalStaleCommand:      "proposal.stale-command",
	StaleTermMessageDropped:   "raft.stale-term-message-dropped",
	SessionExpiredAnswered:    "session.expired",
	SessionRepeatAnswered:     "session.repeat",
	QuietWokenByMessage:       "quiet.woken-by-message",
	QuietWokenBySilentStore:   "quiet.woken-by-silent-leader-store",
	TornTailCut:               "recovery.torn-tail-cut",
	OperatorTimedOut:          "pd.operator-timed-out",
	OperatorCancelled:         "pd.operator-cancelled",
	SessionClockAhead:         "session.clock-ahead",
	ClockRefusalAfterTimeout:  "client.clock-refusal-after-timeout",
	PeerUnknownToPD:           "peer.unknown-to-pd",
}

// String is the event's name, e.g. "split.leader-change".
func (e Event) String() string {
	if e < 0 || e >= NumEvents {
		return fmt.Sprintf("Event(%d)", int(e))
	}
	return eventNames[e]
}

// EventByName returns the event called name.
func EventByName(name string) (Event, bool) {
	for e := Event(0); e < NumEvents; e++ {
		if eventNames[e] == name {
			return e, true
		}
	}
	return 0, false
}
