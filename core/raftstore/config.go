package raftstore

import (
	"time"

	"github.com/multiraft/multiraft/core/session"
)

// Config tunes a store.
type Config struct {
	StoreID uint64
	PD      uint64 // PD's node id
	// Join: the store is not in PD's initial layout and joins an existing
	// cluster (PD gives it no regions; its schedulers fill it).
	Join bool

	// TickInterval is how often the driver calls Tick.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks are raft's timeouts in ticks.
	ElectionTicks  int
	HeartbeatTicks int

	// Heartbeat intervals to PD. When both are zero the store uses the
	// interval PD names at bootstrap (PD's default: 30 s).
	RegionHeartbeatInterval time.Duration
	StoreHeartbeatInterval  time.Duration

	// SplitThreshold is the approximate region size in bytes (keys plus
	// values) at which a region splits. 0 disables splitting.
	SplitThreshold int64

	// LogCompactEntries: once more than this many applied entries are in a
	// region's raft log, the log is compacted, keeping LogKeepEntries.
	LogCompactEntries uint64
	LogKeepEntries    uint64

	// SnapshotTimeout: a snapshot transfer that makes no progress (no chunk
	// acknowledged) for this long fails; raft sends a fresh one later.
	// Default 20 election timeouts.
	SnapshotTimeout time.Duration
	// SnapshotChunkBytes bounds the keys and values of one snapshot chunk
	// (default 1 MiB); MaxSnapshotsOut and MaxSnapshotsIn bound the
	// transfers a store sends and receives at once (defaults 2 and 4).
	SnapshotChunkBytes int
	MaxSnapshotsOut    int
	MaxSnapshotsIn     int
	// StalePeerCheck: a peer that has heard from no leader for this long
	// (or a placeholder still without data) asks PD whether it is still a
	// member of its region, and destroys itself if not. Default 10
	// election timeouts, at least twice the region heartbeat interval. A
	// peer that never campaigns (a learner, a placeholder) asks first after
	// 3 election timeouts, then after twice as long each time, up to every
	// StalePeerCheck (checkStale).
	StalePeerCheck time.Duration

	// MaxKeyBytes and MaxValueBytes bound what a request may write or name;
	// larger ones are refused with InvalidRequest. Defaults 8 KiB and 8 MiB.
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxScanPairs and MaxScanBytes bound one scan answer (defaults 10,000
	// pairs, 4 MiB); a scan cut short says so and the client asks on.
	MaxScanPairs int
	MaxScanBytes int

	// QuietAfter: a region idle this long goes quiet (quiet.go): its peers
	// stop ticking until something happens. Default 10 election timeouts;
	// negative: never. QuietLeaderTimeout: a quiet follower whose leader's
	// store has been silent this long wakes up. Default 3 election timeouts.
	QuietAfter         time.Duration
	QuietLeaderTimeout time.Duration
	// QuietHeartbeatFactor: a quiet leader reports to PD every this many
	// region heartbeat intervals (default 10). PD names the regions it has
	// operators for in its store heartbeat answers, which wakes them.
	QuietHeartbeatFactor int
	// QuietStaleCheck: a quiet peer asks PD this often whether it is still
	// a member of its region (a removed one whose GC notice was lost
	// destroys itself). Default: StalePeerCheck or QuietHeartbeatFactor
	// region heartbeat intervals, whichever is longer (5 minutes with the
	// default intervals).
	QuietStaleCheck time.Duration

	// SessionLimits bound each region's client-session table (lifetime,
	// sessions, results per session). They decide what the state machine
	// does: every store of a cluster must use the same.
	SessionLimits session.Limits

	CheckpointBytes int64
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// MaxCommittedSizePerReady bounds the bytes of committed entries one
	// ready round applies (raft's option of that name; at least one entry
	// a round). 0: MaxSizePerMsg, raft's default. A replica that learns
	// many entries committed at once applies them over several rounds,
	// and reads wait until it has applied up to their read index.
	MaxCommittedSizePerReady uint64
}

// Defaults for a real deployment.
const (
	DefaultTickInterval      = 100 * time.Millisecond
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultSplitThreshold    = 96 << 20
	DefaultMaxKeyBytes       = 8 << 10
	DefaultMaxValueBytes     = 8 << 20
)

func (c *Config) fill() {
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 2
	}
	if c.RegionHeartbeatInterval <= 0 {
		c.RegionHeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.StoreHeartbeatInterval <= 0 {
		c.StoreHeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.LogCompactEntries == 0 {
		c.LogCompactEntries = 1000
	}
	if c.LogKeepEntries == 0 || c.LogKeepEntries > c.LogCompactEntries {
		c.LogKeepEntries = c.LogCompactEntries / 4
	}
	if c.SnapshotTimeout <= 0 {
		c.SnapshotTimeout = 20 * c.ElectionTick()
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.QuietAfter == 0 {
		c.QuietAfter = 10 * c.ElectionTick()
	}
	if c.QuietHeartbeatFactor <= 0 {
		c.QuietHeartbeatFactor = 10
	}
	if c.QuietLeaderTimeout <= 0 {
		c.QuietLeaderTimeout = 3 * c.ElectionTick()
	}
	if c.SnapshotChunkBytes <= 0 {
		c.SnapshotChunkBytes = 1 << 20
	}
	if c.MaxSnapshotsOut <= 0 {
		c.MaxSnapshotsOut = 2
	}
	if c.MaxSnapshotsIn <= 0 {
		c.MaxSnapshotsIn = 4
	}
	if c.StalePeerCheck <= 0 {
		c.StalePeerCheck = max(10*c.ElectionTick(), 2*c.RegionHeartbeatInterval)
	}
	if c.QuietStaleCheck <= 0 {
		c.QuietStaleCheck = max(c.StalePeerCheck, time.Duration(c.QuietHeartbeatFactor)*c.RegionHeartbeatInterval)
	}
	if c.MaxScanPairs <= 0 {
		c.MaxScanPairs = 10_000
	}
	if c.MaxScanBytes <= 0 {
		c.MaxScanBytes = 4 << 20
	}
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
}

// ElectionTick is the election timeout as a duration.
func (c Config) ElectionTick() time.Duration {
	return time.Duration(c.ElectionTicks) * c.TickInterval
}
