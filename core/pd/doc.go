// Package pd is the placement driver of multiraft as a deterministic, sans-I/O
// state machine: it hands out the initial region layout, tracks stores and
// regions from their heartbeats, answers routing queries, allocates ids for
// splits, and moves replicas and leaders between stores with operators that
// its schedulers (or an operator's manual orders) start.
//
// # Driving it
//
// New builds a PD from a validated Layout. Receive handles one envelope and
// sends any reply through Env.Net, addressed from Config.ID to the sender;
// Tick is the periodic hook (operator deadlines on every call, schedulers at
// most every Config.ScheduleInterval). PD reads time only from Env.Clock,
// starts no goroutines and never lets map order decide anything, so the
// simulator can drive it exactly like the real runtime does. Open, given a
// disk (Env.FS), recovers PD's durable state from it and keeps it there
// (durable.go): replies leave only after the state they depend on is
// saved; without a disk (the simulator) state is in memory. Observers read Stats, Stores, Operators and the routing view,
// and may follow operators with SetHooks.
//
// # Ids
//
// Region ids and peer ids come from one allocator that starts at 1 and only
// grows: New numbers the initial regions in start-key order, each region id
// followed by the ids of its peers (listed by store id). AskSplit draws the
// new region id and then one peer id per peer of the splitting region. An id
// is never handed out twice, even when a request is retried. The allocator
// never learns an id from a report: PD allocates every region and peer id,
// so a report naming an id at or above the allocator's next id is refused
// (an id of 2^64-1 in a heartbeat once wrapped the allocator and handed out
// ids in use); so is one placing a peer on a store PD does not know. The
// operators draw the ids of the peers they add from the same allocator.
//
// # Epoch rules
//
// For each region id PD keeps the newest state reported. A report is older,
// and ignored (counted in Stats), when its version or its conf_ver is lower
// than PD's; an equal epoch refreshes leader and sizes; anything else is
// newer. A report of a region id PD does not know (the right half of a
// split) is ignored when it overlaps a published region of another id whose
// version is >= its own: without merges a region that overlaps another is its
// ancestor or its descendant, and the descendant has the higher version.
//
// # The routing view never has a gap
//
// A split is reported as two independent heartbeats, left and right, in
// either order, and either may be lost or arrive long after the other. Were
// PD to shrink the left region as soon as its heartbeat arrives, the keys it
// gave up would belong to nothing until the right half is heard from. PD
// therefore keeps two sets:
//
//   - the published view: the regions served to clients (Regions, GetRegion,
//     ListRegions). It always tiles the keyspace exactly: no gap, no overlap.
//   - pending states: region states newer than what is published that cannot
//     be published yet. At most one per region id, the newest.
//
// A newer report whose range equals the published one (a membership change,
// a leader change) is published in place at once. Any other newer report
// becomes pending, and then PD settles: for each published region q that a
// pending state falls into, it looks for pending states that are each newer
// than q and together tile q's range exactly (sweeping from q's start, taking
// at each key the pending state that starts there with the highest version).
// If it finds them, q is replaced by them in one step; if not, q stays
// published, wide and with its old epoch, and keeps serving the keys nobody
// else covers yet. A client routed by it to the old epoch gets EpochNotMatch
// from the store, with the current regions, and refreshes. Settling repeats
// until nothing changes, then drops pending states that the published view
// has overtaken. While a region's newer state is pending, its newer leader is
// still copied onto the published entry as a hint (a split does not change
// the raft group or its peers).
//
// So the published view changes only by replacing one region with newer
// regions that cover exactly its keys: it always tiles the keyspace, and the
// version seen at any key never goes down. When every current region has
// reported its latest state, the view equals the cluster's real layout.
// ReportSplit offers both halves before settling, so a split reported that
// way is published in one step.
//
// # Stores
//
// A store is Up while heard from (StoreHello or StoreHeartbeat) within
// Config.StoreDisconnectTime, Disconnected after that (it keeps its
// replicas, gets no new ones), and Down after Config.MaxStoreDownTime (its
// replicas are re-created elsewhere). DecommissionStore makes it Offline
// (emptied by moves); once PD's view shows no peer on it, it is a Tombstone
// and PD refuses it. A store not in the layout registers with
// StoreHello{join}; it starts empty and the balancer fills it. The region,
// leader and byte counts of a store are PD's own, from its view of the
// regions, not the store's word.
//
// # Operators
//
// An operator is a plan of steps on one region (move, add, remove, replace
// a replica; transfer the leadership): at most one per region, each with an
// id, a start and a deadline (Config.OperatorTimeout). It advances only when
// a region report shows its current step done, and ends finished, timed out
// (checked on Tick) or cancelled (its target store went Down, Offline or
// Tombstone; the region's membership changed in a way it cannot build on).
// When a region's leader heartbeats and its operator has something to
// order, PD answers with a RegionOrder at the epoch just reported; it
// re-sends on every heartbeat until it sees the step done (the store
// executes an order only while it leads at that epoch, so repeats are
// harmless). Before a membership change PD raises the region's conf_ver
// bound to the reported conf_ver plus one (plus two for a joint change),
// so the reports that follow are accepted and repeats inflate nothing.
//
// No change of a region's voters (promote, promote-demote, removal of a
// voter) is ordered unless a strict majority of its voters is reachable
// before and after it (quorum.go): the step waits instead, and a
// remove-replica is cancelled so the replica checker can choose again. A
// region without a reachable quorum gets no new operator: nothing can
// commit, and no membership change can give its quorum back.
//
// Operators are part of the durable state: a PD restarted from its disk
// goes on with them (they still time out at their deadline). A PD without
// a disk loses them on restart: whatever they left half done (an extra
// learner, an extra voter, a joint configuration) is safe, and the replica
// checker cleans it up, raft leaving a joint configuration by itself. See docs/placement.md for the steps, the store
// states, the schedulers, their thresholds and limits.
package pd
