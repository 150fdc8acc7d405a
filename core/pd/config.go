package pd

import (
	"fmt"
	"time"
)

// Defaults for the zero fields of Config.
const (
	// DefaultHeartbeatInterval is the interval stores are told to heartbeat at.
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultMaxStoreDownTime is how long a store may go unheard before PD
	// calls it Down and re-creates its replicas elsewhere (TiKV's
	// max-store-down-time).
	DefaultMaxStoreDownTime = 30 * time.Minute
	// DefaultOperatorTimeout is how long an operator may run before PD
	// gives up on it.
	DefaultOperatorTimeout = 10 * time.Minute
	// DefaultScheduleInterval is the least time between two scheduler runs.
	DefaultScheduleInterval = time.Second
	// DefaultStoreLimit is how many operators may involve one store at once.
	DefaultStoreLimit = 4
)

// Config configures a PD. Zero durations and limits take the defaults above.
type Config struct {
	ID                uint64        // PD's own NodeID: From of every reply; non-zero, not a store id
	Layout            Layout        // the initial cluster; Layout.Replicas is the replica target of every region
	HeartbeatInterval time.Duration // interval stores are told to use; 0 = DefaultHeartbeatInterval

	// StoreDisconnectTime: a store not heard from (StoreHello or
	// StoreHeartbeat) for this long is Disconnected and gets no new
	// replicas. 0 = three heartbeat intervals (at most MaxStoreDownTime).
	StoreDisconnectTime time.Duration
	// MaxStoreDownTime: a store not heard from for this long is Down, and a
	// peer its leader lists in down_peers for this long is dead: the
	// replica checker replaces them. 0 = DefaultMaxStoreDownTime.
	MaxStoreDownTime time.Duration
	// OperatorTimeout: an operator not finished this long after it started
	// is abandoned (timed out). 0 = DefaultOperatorTimeout.
	OperatorTimeout time.Duration
	// ScheduleInterval: Tick runs the schedulers at most this often.
	// 0 = DefaultScheduleInterval.
	ScheduleInterval time.Duration
	// StoreLimit: schedulers start no operator that would involve a store
	// already involved in this many running operators. 0 = DefaultStoreLimit.
	StoreLimit int

	// Switches: a scenario turns schedulers off by setting these.
	DisableReplicaChecker bool // no repairs (adds, replaces, removes of extra replicas)
	DisableBalanceRegion  bool // no moves for region count or size
	DisableBalanceLeader  bool // no leader transfers for leader count
	DisableDecommission   bool // Offline stores are neither emptied nor tombstoned
}

// settings is a Config with defaults applied and checked.
type settings struct {
	heartbeat        time.Duration
	disconnect       time.Duration
	down             time.Duration
	operatorTimeout  time.Duration
	scheduleInterval time.Duration
	storeLimit       int
	replicas         int
	replicaChecker   bool
	balanceRegion    bool
	balanceLeader    bool
	decommission     bool
}

// settingsOf applies the defaults to cfg's tunables and checks them.
func settingsOf(cfg Config) (settings, error) {
	s := settings{
		heartbeat:        cfg.HeartbeatInterval,
		disconnect:       cfg.StoreDisconnectTime,
		down:             cfg.MaxStoreDownTime,
		operatorTimeout:  cfg.OperatorTimeout,
		scheduleInterval: cfg.ScheduleInterval,
		storeLimit:       cfg.StoreLimit,
		replicas:         cfg.Layout.Replicas,
		replicaChecker:   !cfg.DisableReplicaChecker,
		balanceRegion:    !cfg.DisableBalanceRegion,
		balanceLeader:    !cfg.DisableBalanceLeader,
		decommission:     !cfg.DisableDecommission,
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"heartbeat interval", s.heartbeat},
		{"store disconnect time", s.disconnect},
		{"max store down time", s.down},
		{"operator timeout", s.operatorTimeout},
		{"schedule interval", s.scheduleInterval},
	} {
		if d.v < 0 {
			return s, fmt.Errorf("pd: new: negative %s %v", d.name, d.v)
		}
	}
	if s.storeLimit < 0 {
		return s, fmt.Errorf("pd: new: negative store limit %d", s.storeLimit)
	}
	if s.heartbeat == 0 {
		s.heartbeat = DefaultHeartbeatInterval
	}
	if s.down == 0 {
		s.down = DefaultMaxStoreDownTime
	}
	if s.disconnect == 0 {
		s.disconnect = min(3*s.heartbeat, s.down)
	}
	if s.disconnect > s.down {
		return s, fmt.Errorf("pd: new: store disconnect time %v is longer than the max store down time %v",
			s.disconnect, s.down)
	}
	if s.operatorTimeout == 0 {
		s.operatorTimeout = DefaultOperatorTimeout
	}
	if s.scheduleInterval == 0 {
		s.scheduleInterval = DefaultScheduleInterval
	}
	if s.storeLimit == 0 {
		s.storeLimit = DefaultStoreLimit
	}
	return s, nil
}
