// Package scenarios names the simulations multiraft is proven by: topology,
// initial regions, workload and fault plan of each, as data for package sim.
package scenarios

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/session"
	"github.com/multiraft/multiraft/netsim"
	"github.com/multiraft/multiraft/sim"
)

// Scenario is a named simulation.
type Scenario struct {
	Name        string
	Description string
	Config      sim.Config
}

// base is the static layout of Phase 1: three stores, regions ["", "m")
// and ["m", +inf), three replicas each, six clients.
func base(name string) sim.Config {
	return sim.Config{
		Name:      name,
		Stores:    3,
		SplitKeys: []string{"m"},
		Replicas:  3,
		Store: raftstore.Config{
			TickInterval:            50 * time.Millisecond,
			ElectionTicks:           10,
			HeartbeatTicks:          2,
			RegionHeartbeatInterval: time.Second,
			StoreHeartbeatInterval:  2 * time.Second,
			LogCompactEntries:       200,
			LogKeepEntries:          50,
			CheckpointBytes:         64 << 10,
			// Small, so that the probe's requests one byte over them
			// are cheap (the defaults are 8 KiB and 8 MiB).
			MaxKeyBytes:   1 << 10,
			MaxValueBytes: 8 << 10,
		},
		PDHeartbeat:       time.Second,
		Net:               netsim.DefaultConfig(),
		DiskLatency:       sim.Latency{Min: 200 * time.Microsecond, Max: time.Millisecond},
		CrashKeepUnsynced: 50,
		Clients:           6,
		Workload: sim.Workload{
			Keys: 52, Get: 30, Put: 25, Delete: 8, Cas: 22, Scan: 15,
			ScanLimit: 8, ValueSize: 16,
			Think: sim.Latency{Min: 10 * time.Millisecond, Max: 60 * time.Millisecond},
		},
		Duration: 60 * time.Second,
		Settle:   3 * time.Second,
		Probe:    true,
	}
}

// lateCopies makes one message in 500 arrive once more, 0.5-5 s after its
// first copy: a raft message then reaches a replica after its removal, a
// follower after a newer leader took over, a store after its region split;
// a client's request reaches a store after the client gave up on it.
func lateCopies(cfg *sim.Config) {
	cfg.Net.Late = 0.002
	cfg.Net.LateDelay = netsim.Latency{Min: 500 * time.Millisecond, Max: 5 * time.Second}
}

func static() Scenario {
	return Scenario{
		Name:        "static",
		Description: "3 stores, regions [\"\",\"m\") and [\"m\",+inf), 3 replicas each; 6 clients doing get/put/delete/cas/scan on both ranges; misrouted-request probes",
		Config:      base("static"),
	}
}

// staticPartition cycles through network faults: the leader of a region
// isolated, a minority store isolated, PD isolated, a one-way cut; each
// healed before the next. Half the time a partition splits the clients
// between its sides, so that a client on the old leader's side keeps
// asking it while the others find the new one; two hot keys take half of
// the operations, every client fires at one of them at once every 1-3 s
// and after every heal, and a client tries another store after 500 ms
// without an answer: a deposed leader that served reads from its own
// state would be caught answering with a value already overwritten.
func staticPartition() Scenario {
	cfg := base("static-partition")
	cfg.Net.Loss = 0.005     // and a lossy network that
	cfg.Net.Duplicate = 0.01 // duplicates messages
	lateCopies(&cfg)         // and delivers some once more, seconds later
	cfg.Workload.HotKeys, cfg.Workload.HotShare = 2, 50
	cfg.Workload.Burst = sim.Latency{Min: time.Second, Max: 3 * time.Second}
	cfg.Workload.BurstOnHeal = true
	cfg.Workload.AttemptTimeout = 500 * time.Millisecond
	cfg.Faults = func(p *sim.Planner) {
		t := 3 * time.Second
		i := 0
		for t < p.Dur-6*time.Second {
			hold := time.Duration(2000+p.R.Intn(5000)) * time.Millisecond
			if i%3 == 1 {
				// The whole cluster loses power and comes back, and the
				// first leader elected is cut off from its peers at once
				// (not from PD, nor from the clients on its side), until
				// the heal. Every store counts proposal ids from 1 again
				// after a restart: the cut-off leader goes on taking
				// proposals that will never commit, with the same ids as
				// the entries the new leader's clients write at the same
				// indexes. When it rejoins, its proposals must be answered
				// by their own entries only (here: never applied).
				p.At(t, "power off", func(w *sim.World) {
					for _, id := range w.StoreIDs() {
						w.Crash(id)
					}
				})
				t += time.Duration(200+p.R.Intn(600)) * time.Millisecond
				p.At(t, "power on, cut the first leader", func(w *sim.World) {
					for _, id := range w.StoreIDs() {
						w.Restart(id)
					}
					p.OnNextLeaderElected(func(w *sim.World, _, _ uint64) {
						p.OnNextLeaderElected(func(w *sim.World, s, _ uint64) {
							w.Partition(splitClients(p, w, []uint64{s}, others(w.StoreIDs(), s)))
						})
					})
				})
				p.At(t+hold, "heal", func(w *sim.World) { w.Heal() })
				t += hold + time.Duration(1000+p.R.Intn(3000))*time.Millisecond
				i++
				continue
			}
			switch (i + p.R.Intn(4)) % 4 {
			case 0:
				// Cut the leader off from its peers but not from clients or
				// PD: the case where a deposed leader could serve stale reads.
				p.At(t, "partition a region leader from its peers", func(w *sim.World) {
					regions := w.RegionIDs()
					r := regions[p.R.Intn(len(regions))]
					if hot := w.HotKeys(); p.R.Intn(2) == 0 && len(hot) > 0 {
						r = w.RegionOf([]byte(hot[p.R.Intn(len(hot))]))
					}
					if s := w.LeaderStore(r); s != 0 {
						w.Partition(splitClients(p, w, []uint64{s}, others(w.StoreIDs(), s)))
					}
				})
			case 1:
				if p.R.Intn(2) == 0 {
					p.At(t, "isolate a minority store", func(w *sim.World) {
						ids := w.StoreIDs()
						w.Isolate(ids[p.R.Intn(len(ids))])
					})
				} else {
					p.At(t, "partition a minority store with PD", func(w *sim.World) {
						ids := w.StoreIDs()
						s := ids[p.R.Intn(len(ids))]
						w.Partition(splitClients(p, w, []uint64{s, sim.PDNode}, others(ids, s)))
					})
				}
			case 2:
				p.At(t, "isolate PD", func(w *sim.World) { w.Isolate(sim.PDNode) })
			case 3:
				p.At(t, "one-way cut from a region leader", func(w *sim.World) {
					regions := w.RegionIDs()
					r := regions[p.R.Intn(len(regions))]
					if s := w.LeaderStore(r); s != 0 {
						for _, o := range w.StoreIDs() {
							if o != s {
								w.BlockOneWay(s, o)
							}
						}
					}
				})
			}
			p.At(t+hold, "heal", func(w *sim.World) { w.Heal() })
			t += hold + time.Duration(1000+p.R.Intn(3000))*time.Millisecond
			i++
		}
	}
	return Scenario{
		Name:        "static-partition",
		Description: "static layout under partitions (a region leader cut from its peers while clients still reach it, a minority isolated, PD isolated, one-way cuts; each healed) on a network that loses 0.5% and duplicates 1% of messages",
		Config:      cfg,
	}
}

// staticCrash crashes stores (sometimes a leader, sometimes two at once)
// and restarts them from what their disks kept.
func staticCrash() Scenario {
	cfg := base("static-crash")
	cfg.Faults = func(p *sim.Planner) {
		t := 3 * time.Second
		for t < p.Dur-6*time.Second {
			down := time.Duration(500+p.R.Intn(4000)) * time.Millisecond
			var victims []uint64
			p.At(t, "crash", func(w *sim.World) {
				ids := w.StoreIDs()
				victims = victims[:0]
				if p.R.Intn(2) == 0 {
					regions := w.RegionIDs()
					if s := w.LeaderStore(regions[p.R.Intn(len(regions))]); s != 0 {
						victims = append(victims, s)
					}
				}
				if len(victims) == 0 {
					victims = append(victims, ids[p.R.Intn(len(ids))])
				}
				if p.R.Intn(5) == 0 { // now and then lose quorum for a while
					other := ids[p.R.Intn(len(ids))]
					if other != victims[0] {
						victims = append(victims, other)
					}
				}
				for _, v := range victims {
					w.Crash(v)
				}
			})
			p.At(t+down, "restart", func(w *sim.World) {
				for _, v := range victims {
					w.Restart(v)
				}
			})
			t += down + time.Duration(1500+p.R.Intn(4000))*time.Millisecond
		}
		// Disk faults: a store's disk dies in the middle of a write (the
		// frame is torn), or starts failing writes; either way the store
		// fails stop and is restarted from what reached the disk.
		for t := 5 * time.Second; t < p.Dur-6*time.Second; t += time.Duration(5000+p.R.Intn(7000)) * time.Millisecond {
			p.At(t, "disk fault", func(w *sim.World) {
				ids := w.StoreIDs()
				id := ids[p.R.Intn(len(ids))]
				if p.R.Intn(2) == 0 {
					w.TearNextWrite(id, p.R.Intn(6))
				} else {
					w.DiskErrors(id, 0.05)
				}
			})
		}
	}
	return Scenario{
		Name:        "static-crash",
		Description: "static layout while stores crash (a leader, a follower, now and then two at once) and restart from their synced data; disks die mid-write or fail writes",
		Config:      cfg,
	}
}

// splitClients returns the two sides of a partition: half the time as
// given (the clients, in neither, reach both), else with the clients
// dealt between them at random, at least one on each side.
func splitClients(p *sim.Planner, w *sim.World, a, b []uint64) ([]uint64, []uint64) {
	if p.R.Intn(2) == 0 {
		return a, b
	}
	return dealClients(p, w, a, b)
}

// dealClients returns the two sides of a partition with the clients dealt
// between them at random, at least one on each side.
func dealClients(p *sim.Planner, w *sim.World, a, b []uint64) ([]uint64, []uint64) {
	clients := w.ClientNodes()
	first := p.R.Intn(len(clients))
	for i, c := range clients {
		switch {
		case i == first:
			a = append(a, c)
		case i == (first+1)%len(clients):
			b = append(b, c)
		case p.R.Intn(2) == 0:
			a = append(a, c)
		default:
			b = append(b, c)
		}
	}
	return a, b
}

func others(ids []uint64, not uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id != not {
			out = append(out, id)
		}
	}
	return out
}

// All returns every scenario, in a fixed order.
func All() []Scenario {
	return []Scenario{
		static(), staticPartition(), staticCrash(),
		split(), splitLeaderChange(), splitPartition(), splitCrash(), splitPDDown(),
		fiveReplicas(staticPartition()), fiveReplicas(staticCrash()), fiveReplicas(splitLeaderChange()),
		move(), movePartition(), moveLeaderChange(), moveCrash(), storeDown(), scaleOut(), decommission(), splitAndMove(), splitSnapshot(),
		quiet(staticPartition()), killIdleLeaderAtEnd(quiet(staticCrash())), manyRegions(),
		sessionChurn(), slowFollower(), applyLag(), pdBehind(), pdBehindSplit(), staleVoter(), clientClockAhead(), swarm(),
	}
}

// slowFollower has one follower of every region on a slow, jittery link
// while clients write fast and the leaders compact their logs after a few
// dozen entries: the follower is always a few dozen entries behind, its
// appends arrive out of order and are refused, and the leader must send it
// again what it lacks. Nothing else happens: no follower is ever further
// behind than the leader's compaction guard keeps for an active follower
// close behind, so the log must catch it up, never a snapshot
// (Config.NoSnapshots).
func slowFollower() Scenario {
	cfg := base("slow-follower")
	cfg.Duration = 10 * time.Second
	cfg.Store.LogCompactEntries = 30
	cfg.Store.LogKeepEntries = 2
	cfg.Workload.Get, cfg.Workload.Scan = 10, 0
	cfg.Workload.Think = sim.Latency{Min: 2 * time.Millisecond, Max: 10 * time.Millisecond}
	slow := netsim.Latency{Min: 20 * time.Millisecond, Max: 60 * time.Millisecond}
	cfg.Net.LinkLatency = map[netsim.Link]netsim.Latency{}
	for _, o := range []uint64{1, 2} {
		cfg.Net.LinkLatency[netsim.Link{From: o, To: 3}] = slow
		cfg.Net.LinkLatency[netsim.Link{From: 3, To: o}] = slow
	}
	cfg.PD.DisableBalanceLeader = true // no leader changes
	cfg.Buggify.Off = true             // no hook's crash, delay or transfer
	cfg.Probe = false
	cfg.NoSnapshots = true
	return Scenario{
		Name: "slow-follower",
		Description: "store 3 behind slow, jittery links (20-60 ms) while clients write fast and leaders compact their logs every 30 entries: " +
			"its appends arrive out of order and are sent again; it must always be caught up by log, never by a snapshot",
		Config: cfg,
	}
}

// applyLag gives a new leader a long backlog of entries its old leader
// applied and answered but it has not: raft hands a store at most
// MaxSizePerMsg bytes of committed entries per ready round (here: one
// entry), so a follower that catches up on a few hundred entries learns
// them committed at once and applies them over as many rounds. Again and
// again a follower of a hot key's region is isolated for 2-4 s while the
// clients write, and as soon as the network heals the region's leadership
// is handed to it (the old leader waits until its log has caught up). Its
// first reads get a read index far past what it applied: each must wait
// until it has applied that far, or it answers with values the old leader
// overwrote long ago. The logs are never compacted that far back, so the
// follower catches up by log, not by a snapshot (which would bring its
// applied index along).
func applyLag() Scenario {
	cfg := base("apply-lag")
	cfg.Store.MaxCommittedSizePerReady = 1 // one committed entry applied per ready round
	cfg.DiskLatency = sim.Latency{Min: time.Millisecond, Max: 3 * time.Millisecond}
	cfg.Store.LogCompactEntries = 5000
	cfg.Store.LogKeepEntries = 2000
	cfg.Workload.HotKeys, cfg.Workload.HotShare = 2, 60
	cfg.Workload.Scan = 5
	cfg.Workload.Think = sim.Latency{Min: 5 * time.Millisecond, Max: 30 * time.Millisecond}
	cfg.Workload.BurstOnHeal = true
	cfg.Workload.AttemptTimeout = 500 * time.Millisecond
	cfg.PD.DisableBalanceLeader = true // the plan moves the leaders
	cfg.Faults = func(p *sim.Planner) {
		t := 2 * time.Second
		for t < p.Dur-5*time.Second {
			hold := time.Duration(2000+p.R.Intn(2000)) * time.Millisecond
			var region, follower uint64
			p.At(t, "isolate a follower of a hot region", func(w *sim.World) {
				hot := w.HotKeys()
				region = w.RegionOf([]byte(hot[p.R.Intn(len(hot))]))
				follower = 0
				lead := w.LeaderStore(region)
				if lead == 0 {
					return
				}
				ids := others(w.StoreIDs(), lead)
				follower = ids[p.R.Intn(len(ids))]
				w.Isolate(follower)
			})
			p.At(t+hold, "heal, hand the leadership to the follower", func(w *sim.World) {
				w.Heal()
				if follower != 0 {
					w.TransferLeaderTo(region, follower)
				}
			})
			t += hold + time.Duration(1000+p.R.Intn(2000))*time.Millisecond
		}
	}
	return Scenario{
		Name: "apply-lag",
		Description: "a follower of a hot region isolated for 2-4 s while clients write, then made its leader as the network heals: " +
			"it has hundreds of entries to apply, one per ready round (MaxSizePerMsg 1), while its first reads arrive",
		Config: cfg,
	}
}

// pdBehind has PD learn the regions' changes seconds late while it moves
// replicas: every store's reports reach it 3-4 s after they leave, but for
// the move's target store, whose link to PD is fast. PD orders a learner
// onto the target; its leader adds it and sends it a snapshot, and 300 ms
// later the target is cut off from the other stores. The learner, hearing
// no leader, soon asks PD whether it is still a member, and PD answers
// with what it knows: the region as it was before the learner was added,
// without it. That answer is older than the learner's own membership and
// says nothing about it: the learner must keep its replica.
func pdBehind() Scenario {
	cfg := moveBase("pd-behind")
	cfg.Store.SplitThreshold = 0 // the five regions of the layout, no more
	slow := netsim.Latency{Min: 3 * time.Second, Max: 4 * time.Second}
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		var target, region uint64 // of the move in progress; 0 when none
		t := 5 * time.Second
		for t < p.Dur-12*time.Second {
			p.At(t, "reports to PD slow, move a replica", func(w *sim.World) {
				regions := w.RegionIDs()
				r := w.Region(regions[p.R.Intn(len(regions))])
				from, to := moveCandidates(w, r, w.LeaderStore(r.GetId()))
				if len(from) == 0 || len(to) == 0 {
					return
				}
				region, target = r.GetId(), to[p.R.Intn(len(to))]
				for _, id := range w.AllStoreIDs() {
					if id != target {
						w.SlowLink(id, sim.PDNode, slow)
					}
				}
				w.MoveRegion(region, from[p.R.Intn(len(from))], target)
			})
			p.At(t+9*time.Second, "heal", func(w *sim.World) {
				w.Heal()
				target, region = 0, 0
			})
			t += 9*time.Second + time.Duration(1000+p.R.Intn(2000))*time.Millisecond
		}
		p.OnMembershipChanged(func(w *sim.World, _ uint64, r *pb.Region) {
			if target == 0 || r.GetId() != region {
				return
			}
			if l := r.PeerOnStore(target); l == nil || l.GetRole() != pb.PeerRole_LEARNER {
				return
			}
			cut := target
			target = 0 // once per move
			p.At(w.Now()+300*time.Millisecond, "cut the learner's store off the others", func(w *sim.World) {
				w.Partition([]uint64{cut}, others(w.AllStoreIDs(), cut))
			})
		})
	}
	return Scenario{
		Name: "pd-behind",
		Description: "PD hears the stores 3-4 s late (but for one) while it moves a replica onto that one; " +
			"300 ms after the learner is added its store is cut off from the others, and the learner asks PD, whose answer predates it",
		Config: cfg,
	}
}

// pdBehindSplit has PD learn of a split seconds after a replica that holds
// the new region asks about it. Every 9-11 s a region is split at a key of
// the workload; the moment its leader proposes the split, the reports of
// every store but one of its followers (the cut store) reach PD 6-7 s late
// (World.SlowLink), and the moment the cut store applies the split it is
// cut off from the other stores (not from PD) until the heal, 8 s after the
// episode began. Its peer of the new region, initialized and holding the
// region's keys, hears no leader: after StalePeerCheck (5 s) it asks PD,
// which has not yet received the leader's split report and answers that it
// knows no such region. That says nothing about a replica that holds data:
// it must keep it (only a placeholder goes on such an answer).
func pdBehindSplit() Scenario {
	cfg := base("pd-behind-split")
	slow := netsim.Latency{Min: 6 * time.Second, Max: 7 * time.Second}
	cfg.Faults = func(p *sim.Planner) {
		var region, cut uint64 // the split in progress and its cut store; 0 when none
		var slowed bool
		t := 3 * time.Second
		for t < p.Dur-10*time.Second {
			p.At(t, "split a region", func(w *sim.World) {
				regions := w.RegionIDs()
				id := regions[p.R.Intn(len(regions))]
				lead := w.LeaderStore(id)
				if lead == 0 {
					return
				}
				var followers []uint64
				for _, o := range others(w.StoreIDs(), lead) {
					if w.Up(o) && w.Region(id).PeerOnStore(o) != nil {
						followers = append(followers, o)
					}
				}
				keys := workloadKeysIn(w, cfg.Workload.Keys, id)
				if len(followers) == 0 || len(keys) < 2 {
					return
				}
				region, cut, slowed = id, followers[p.R.Intn(len(followers))], false
				w.RequestSplit(keys[len(keys)/2])
			})
			p.At(t+8*time.Second, "heal", func(w *sim.World) {
				w.Heal()
				region, cut = 0, 0
			})
			t += 9*time.Second + time.Duration(p.R.Intn(2000))*time.Millisecond
		}
		p.OnSplitProposed(func(w *sim.World, _, r uint64) {
			if cut == 0 || r != region || slowed {
				return
			}
			slowed = true
			for _, id := range w.StoreIDs() {
				if id != cut {
					w.SlowLink(id, sim.PDNode, slow)
				}
			}
		})
		p.OnSplitApplied(func(w *sim.World, store uint64, left, _ *pb.Region) {
			if cut == 0 || store != cut || left.GetId() != region {
				return
			}
			cut = 0 // once per split
			w.Partition([]uint64{store}, others(w.StoreIDs(), store))
		})
	}
	return Scenario{
		Name: "pd-behind-split",
		Description: "a region splits while PD hears the stores 6-7 s late (but for one follower), which is cut off from the others as it applies the split: " +
			"its new region's peer, hearing no leader, asks PD, which does not know the region yet",
		Config: cfg,
	}
}

// staleVoter leaves a voter behind a move and lets it canvass the store the
// move emptied. PD moves a replica of a region from a follower's store
// (the source) to a store without one; as the learner is added, the
// region's other follower (the stale voter) is cut off from every store, so
// it misses the rest of the move: it still counts the source's peer among
// the region's three voters. The move goes on with the leader and the
// source, then the target; the source's store applies its own removal and
// keeps a tombstone. Then the stale voter can reach that store, and it
// only, for 3 s: it campaigns in its old configuration and asks the removed
// peer for its vote. The store must refuse every message for the region
// older than its tombstone: a peer created again there (empty, it would
// grant the vote) would give the stale voter a quorum of two, besides the
// real group's, and two leaders serving the same keys.
func staleVoter() Scenario {
	cfg := moveBase("stale-voter")
	cfg.Store.SplitThreshold = 0 // the five regions of the layout, no more
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		// The move in progress (region 0 when none) and its phase: 0
		// ordered, 1 the stale voter cut off, 2 it reaches the source's
		// store only. cycle numbers the moves, for their heals.
		var region, source, target, stale uint64
		var phase, cycle int
		end := func(w *sim.World, c, before int) {
			if c == cycle && region != 0 && phase < before {
				w.Heal()
				region = 0
			}
		}
		t := 5 * time.Second
		for t < p.Dur-12*time.Second {
			p.At(t, "move a follower's replica", func(w *sim.World) {
				cycle++
				regions := w.RegionIDs()
				first := p.R.Intn(len(regions))
				for k := range regions {
					// A region of three voters with a leader, none of
					// them on the way in or out.
					r := w.Region(regions[(first+k)%len(regions)])
					lead := w.LeaderStore(r.GetId())
					from, to := moveCandidates(w, r, lead)
					if lead == 0 || len(r.GetPeers()) != 3 || len(from) != 2 || len(to) == 0 ||
						slices.ContainsFunc(r.GetPeers(), func(o *pb.Peer) bool { return o.GetRole() != pb.PeerRole_VOTER }) {
						continue
					}
					i := p.R.Intn(2)
					region, source, stale, target = r.GetId(), from[i], from[1-i], to[p.R.Intn(len(to))]
					break
				}
				if region == 0 {
					return
				}
				phase = 0
				w.MoveRegion(region, source, target)
				// A move that has not emptied the source in 9 s is given
				// up on (the stale voter's store would soon be counted
				// down, and its replicas replaced).
				c := cycle
				p.At(w.Now()+9*time.Second, "heal if the move is stuck", func(w *sim.World) { end(w, c, 2) })
			})
			t += 14*time.Second + time.Duration(p.R.Intn(2000))*time.Millisecond
		}
		p.OnMembershipChanged(func(w *sim.World, _ uint64, r *pb.Region) {
			if region == 0 || phase != 0 || r.GetId() != region {
				return
			}
			if l := r.PeerOnStore(target); l == nil || l.GetRole() != pb.PeerRole_LEARNER {
				return
			}
			phase = 1 // the learner is added: the joint change is yet to come
			w.Partition([]uint64{stale}, others(w.AllStoreIDs(), stale))
		})
		p.OnPeerDestroyed(func(w *sim.World, store, _ uint64, last *pb.Region) {
			if region == 0 || phase != 1 || last.GetId() != region || store != source {
				return
			}
			phase = 2
			w.Heal()
			w.Partition([]uint64{stale}, others(others(w.AllStoreIDs(), stale), source))
			c := cycle
			p.At(w.Now()+3*time.Second, "heal", func(w *sim.World) { end(w, c, 3) })
		})
	}
	return Scenario{
		Name: "stale-voter",
		Description: "a voter is cut off from every store while PD moves a replica off another follower; " +
			"once the source's store has removed its peer, the stale voter reaches that store only, for 3 s, and campaigns in its old configuration",
		Config: cfg,
	}
}

// idleSplitKeys is the layout of the scenarios with idle regions: the
// workload's keys ("a000" ... "z001") in three busy regions cut at "h" and
// "q", then n idle regions cut at "zz0000", "zz0001", ... that no client
// touches (scans end at "zz": see withIdleRegions).
func idleSplitKeys(n int) []string {
	keys := []string{"h", "q"}
	for i := 0; i < n; i++ {
		keys = append(keys, fmt.Sprintf("zz%04d", i))
	}
	return keys
}

// withIdleRegions gives s the layout of idleSplitKeys(n) and keeps its
// clients' scans short of the idle regions, which then sleep.
func withIdleRegions(s Scenario, n int) Scenario {
	s.Config.SplitKeys = idleSplitKeys(n)
	s.Config.Workload.ScanMax = "zz"
	return s
}

// quiet is s with 64 more regions that no client touches: they go quiet
// (stop ticking) a few seconds in, and s's faults then strike their
// leaders' stores too (a partition or crash picks a region at random, most
// often a quiet one). The liveness phase at the end wakes each of them
// with a write.
func quiet(s Scenario) Scenario {
	s = withIdleRegions(s, 64)
	s.Name = "quiet-" + s.Name
	s.Config.Name = s.Name
	s.Description = "64 idle regions beside the busy ones, asleep, under the faults of " + s.Description
	return s
}

// killIdleLeaderAtEnd ends s's own faults 15 s before the workload does
// (so that the idle regions have fallen asleep), then, 5 s before the end,
// kills for good the store leading a random idle region: the quiet
// followers of every region it led hear no heartbeat, ever, and must notice
// the store's silence and elect another leader, or the liveness phase
// finds those regions leaderless.
func killIdleLeaderAtEnd(s Scenario) Scenario {
	faults := s.Config.Faults
	s.Config.Faults = func(p *sim.Planner) {
		if faults != nil {
			dur := p.Dur
			p.Dur -= 15 * time.Second
			faults(p)
			p.Dur = dur
		}
		p.At(p.Dur-5*time.Second, "kill an idle region's leader store for good", func(w *sim.World) {
			regions := w.RegionIDs()
			if s := w.LeaderStore(regions[3+p.R.Intn(len(regions)-3)]); s != 0 {
				killWhenSurvivable(p, w, s, p.Dur-2*time.Second, nil)
			}
		})
	}
	s.Description += "; 5 s before the end, after 10 s without faults, an idle region's leader store dies for good"
	return s
}

// sessionChurn puts client sessions under pressure: each client keeps
// three operations in flight (so a session has several writes waiting at
// once), sessions expire after 2 s idle in a region (shorter than a
// client's 10 s retry window and than the partitions, so writes are
// retried into regions that forgot their session, and clients switch
// sessions with writes of the old one in flight), and a region keeps at
// most 4 live sessions and 4 markers for 7 clients (so sessions are
// evicted, and markers dropped early, all the time); on static-partition's
// lossy, duplicating network with its partitions.
func sessionChurn() Scenario {
	s := staticPartition()
	s.Name = "session-churn"
	s.Config.Name = s.Name
	s.Config.Clients = 7
	s.Config.Workload.Pipeline = 3
	s.Config.Store.SessionLimits = session.Limits{TTL: 2 * time.Second, MaxSessions: 4, MaxMarkers: 4}
	s.Description = "sessions under pressure (3 ops in flight per client, 2 s session lifetime, 4 live sessions and 4 markers per region for 7 clients) under the faults of " + s.Description
	return s
}

// clientClockAhead runs clients whose clocks are off the stores'. A region
// refuses a session write started more than the session lifetime ahead of
// its clock (the time its leader proposed the entry): InvalidRequest, but
// clock dependent, since a copy of the same write proposed once the
// region's clock has caught up is accepted. So the client must not call
// such a write failed. Here three clients' clocks run ahead of the stores'
// by the session lifetime (2 s) and 80-140 ms more: a write of theirs
// proposed within that margin of its first send is refused, one proposed
// later applies. Every 300-700 ms, for 20-60 ms, the links from every
// client to a region's leader stall: what is sent in that window arrives
// 150-400 ms later (a queue holding it, as a TCP connection holds what it
// could not deliver yet). A client gives up on an attempt after 30 ms: its
// retry reaches the leader within the margin and is refused, and the first
// attempt, arriving after it, applies (report: clock_refused_applied).
// A client calling the write failed says it never took effect while it
// did. The other clients' clocks are 0-1 s ahead, 0-1 s behind, and right:
// within the lifetime, they must change nothing (availability included).
// On a lossy, duplicating network with late copies: a late copy of a
// refused write can apply too.
func clientClockAhead() Scenario {
	const ttl = 2 * time.Second
	cfg := base("client-clock-ahead")
	cfg.Net.Loss = 0.005
	cfg.Net.Duplicate = 0.01
	lateCopies(&cfg)
	cfg.Store.SessionLimits = session.Limits{TTL: ttl}
	ahead := sim.Latency{Min: ttl + 80*time.Millisecond, Max: ttl + 140*time.Millisecond}
	cfg.ClientClockSkew = []sim.Latency{ahead, ahead, ahead,
		{Min: 0, Max: ttl / 2}, {Min: -ttl / 2, Max: 0}, {}}
	cfg.Workload.AttemptTimeout = 30 * time.Millisecond
	cfg.Faults = func(p *sim.Planner) {
		for t := time.Second; t < p.Dur-time.Second; t += time.Duration(300+p.R.Intn(400)) * time.Millisecond {
			window := time.Duration(20+p.R.Intn(40)) * time.Millisecond
			p.At(t, "stall the clients' links to a region's leader", func(w *sim.World) {
				regions := w.RegionIDs()
				s := w.LeaderStore(regions[p.R.Intn(len(regions))])
				if s == 0 {
					return
				}
				for _, c := range w.ClientNodes() {
					w.SlowLink(c, s, netsim.Latency{Min: 150 * time.Millisecond, Max: 400 * time.Millisecond})
				}
			})
			p.At(t+window, "heal", func(w *sim.World) { w.Heal() })
		}
	}
	return Scenario{
		Name: "client-clock-ahead",
		Description: "three clients' clocks 80-140 ms more than the 2 s session lifetime ahead of the stores' (their writes proposed within that margin are refused as clock dependent, later copies apply), three within it; " +
			"every 300-700 ms the clients' links to a region's leader stall for 20-60 ms (150-400 ms delivery) while clients give up on an attempt after 30 ms; 0.5% loss, 1% duplication, 0.2% late copies",
		Config: cfg,
	}
}

// manyRegions is a store's life at scale: 1,000 regions on three stores,
// clients on the three that hold their keys, the rest idle and quiet, while
// stores crash (a region's leader store, most often a quiet region's) and
// disks fail as in static-crash.
func manyRegions() Scenario {
	s := killIdleLeaderAtEnd(withIdleRegions(staticCrash(), 997))
	s.Name = "many-regions"
	s.Config.Name = s.Name
	s.Description = "1,000 regions on 3 stores, clients busy on 3 of them, the rest quiet, while stores crash and disks fail as in static-crash; raft messages batched per pair of stores"
	// As the real transport does: each tick's heartbeats of hundreds of
	// regions to a peer store cross the network as one message.
	s.Config.BatchRaft = true
	return s
}

// fiveReplicas runs a scenario on five stores with five replicas per
// region. Some bugs need five voters: a message of an old term can then
// still find two peers at that term, which three voters never allow.
func fiveReplicas(s Scenario) Scenario {
	s.Name += "-5"
	s.Config.Name = s.Name
	s.Config.Stores = 5
	s.Config.Replicas = 5
	s.Description = "five stores, five replicas per region: " + s.Description
	return s
}

// Get returns the scenario called name.
func Get(name string) (Scenario, error) {
	var names []string
	for _, s := range All() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return Scenario{}, fmt.Errorf("unknown scenario %q (have: %v)", name, names)
}

// splitBase is the Phase 2 setup: the static layout, a 6 KiB split
// threshold, and a write-heavy workload over 160 keys of about 170 bytes
// each, so that regions split several times in every run.
func splitBase(name string) sim.Config {
	cfg := base(name)
	cfg.Store.SplitThreshold = 6 << 10
	cfg.Workload = sim.Workload{
		Keys: 160, Get: 25, Put: 40, Delete: 5, Cas: 15, Scan: 15,
		ScanLimit: 10, ValueSize: 160,
		Think: sim.Latency{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	}
	return cfg
}

func split() Scenario {
	cfg := splitBase("split")
	cfg.Faults = func(p *sim.Planner) {
		// Besides the size-driven splits, an operator splits twice at a
		// chosen key (the manual path: same protocol, key given).
		for _, t := range []time.Duration{20 * time.Second, 40 * time.Second} {
			p.At(t, "manual split", func(w *sim.World) {
				w.RequestSplit([]byte(sim.KeyName(p.R.Intn(160))))
			})
		}
		// Two operators split one region at two keys in the same instant
		// (say an operator's split racing the size checker's): both asks
		// carry the region's epoch and PD answers both. Whichever commits
		// first applies; the other is at an older epoch by the time it
		// applies and must be skipped on every replica, however far
		// inside the remaining half its key lies.
		for _, t := range []time.Duration{10 * time.Second, 30 * time.Second, 50 * time.Second} {
			p.At(t, "two splits at once", func(w *sim.World) {
				keys := workloadKeysIn(w, 160, w.RegionOf([]byte(sim.KeyName(p.R.Intn(160)))))
				if len(keys) < 8 {
					return
				}
				w.RequestSplit(keys[len(keys)*2/3])
				w.RequestSplit(keys[len(keys)/3])
			})
		}
	}
	return Scenario{
		Name:        "split",
		Description: "regions outgrow a 6 KiB threshold and split online, again and again, while clients read and write every range; two manual splits at chosen keys",
		Config:      cfg,
	}
}

// splitLeaderChange moves or kills the leader right when a split is
// proposed or applied, and transfers leaders now and then besides.
func splitLeaderChange() Scenario {
	cfg := splitBase("split-leader-change")
	cfg.Faults = func(p *sim.Planner) {
		p.OnSplitProposed(func(w *sim.World, store, region uint64) {
			switch p.R.Intn(4) {
			case 0, 1:
				w.TransferLeader(region, p.R.Intn)
			case 2:
				if w.Now() < p.Dur-5*time.Second {
					p.CrashFor(w, store, time.Duration(500+p.R.Intn(2500))*time.Millisecond)
				}
			}
		})
		p.OnSplitApplied(func(w *sim.World, store uint64, left, right *pb.Region) {
			if p.R.Intn(3) == 0 {
				w.TransferLeader(left.GetId(), p.R.Intn)
			}
			if p.R.Intn(3) == 0 {
				w.TransferLeader(right.GetId(), p.R.Intn)
			}
		})
		for t := 2 * time.Second; t < p.Dur-3*time.Second; t += time.Duration(1000+p.R.Intn(3000)) * time.Millisecond {
			p.At(t, "transfer a leader", func(w *sim.World) {
				regions := w.RegionIDs()
				w.TransferLeader(regions[p.R.Intn(len(regions))], p.R.Intn)
			})
		}
	}
	return Scenario{
		Name:        "split-leader-change",
		Description: "splits while leaders move: leader transfer or leader crash right at split propose, transfers right at split apply, and at random",
		Config:      cfg,
	}
}

// splitPartition cuts one follower store off through several splits; it
// must catch up (by log or snapshot) without overlap once healed.
func splitPartition() Scenario {
	cfg := splitBase("split-partition")
	cfg.Net.Loss = 0.005
	cfg.Net.Duplicate = 0.01
	lateCopies(&cfg)
	cfg.Store.LogCompactEntries = 100
	cfg.Store.LogKeepEntries = 20
	cfg.Faults = func(p *sim.Planner) {
		t := 3 * time.Second
		for t < p.Dur-10*time.Second {
			hold := time.Duration(8000+p.R.Intn(12000)) * time.Millisecond
			if t+hold > p.Dur-5*time.Second {
				hold = p.Dur - 5*time.Second - t
			}
			p.At(t, "isolate a store through splits", func(w *sim.World) {
				ids := w.StoreIDs()
				w.Isolate(ids[p.R.Intn(len(ids))])
			})
			p.At(t+hold, "heal", func(w *sim.World) { w.Heal() })
			t += hold + time.Duration(3000+p.R.Intn(5000))*time.Millisecond
		}
	}
	return Scenario{
		Name:        "split-partition",
		Description: "a store is cut off while regions split several times, then heals and catches up by log or snapshot without overlap; 0.5% of messages lost, 1% duplicated",
		Config:      cfg,
	}
}

// splitCrash crashes a store right after it applied a split (before its
// next ready round made anything more durable), and at random.
func splitCrash() Scenario {
	cfg := splitBase("split-crash")
	cfg.Faults = func(p *sim.Planner) {
		// One store down at a time: the regions keep a quorum, so every
		// write must be answered (a store that crashes on each split it
		// replays while another is down would keep regions without a
		// quorum for longer than a write's deadline).
		p.OnSplitApplied(func(w *sim.World, store uint64, left, right *pb.Region) {
			if w.Now() >= p.Dur-5*time.Second || !w.Up(store) || !othersUp(w, store) {
				return
			}
			switch p.R.Intn(6) {
			case 0, 1:
				p.CrashFor(w, store, time.Duration(300+p.R.Intn(2500))*time.Millisecond)
			case 2:
				// The next ready round writes the split record: tear it.
				w.TearNextWrite(store, p.R.Intn(3))
			}
		})
		for t := 4 * time.Second; t < p.Dur-6*time.Second; t += time.Duration(4000+p.R.Intn(6000)) * time.Millisecond {
			p.At(t, "crash a store", func(w *sim.World) {
				ids := w.StoreIDs()
				id := ids[p.R.Intn(len(ids))]
				if !othersUp(w, id) {
					return
				}
				p.CrashFor(w, id, time.Duration(500+p.R.Intn(3000))*time.Millisecond)
			})
		}
	}
	return Scenario{
		Name:        "split-crash",
		Description: "stores crash right after applying a split (losing what was not yet synced), or their disk dies while writing the split record, and at random; then restart",
		Config:      cfg,
	}
}

// othersUp reports whether every store but id is up.
func othersUp(w *sim.World, id uint64) bool {
	for _, other := range w.StoreIDs() {
		if other != id && !w.Up(other) {
			return false
		}
	}
	return true
}

// splitPDDown makes PD unreachable again and again while splits are due:
// they must wait or retry, and nothing may be lost.
func splitPDDown() Scenario {
	cfg := splitBase("split-pd-down")
	cfg.Faults = func(p *sim.Planner) {
		t := 2 * time.Second
		for t < p.Dur-8*time.Second {
			hold := time.Duration(4000+p.R.Intn(8000)) * time.Millisecond
			p.At(t, "isolate PD", func(w *sim.World) { w.Isolate(sim.PDNode) })
			p.At(t+hold, "heal", func(w *sim.World) { w.Heal() })
			t += hold + time.Duration(2000+p.R.Intn(4000))*time.Millisecond
		}
	}
	return Scenario{
		Name:        "split-pd-down",
		Description: "PD unreachable for seconds at a time while regions outgrow the threshold: splits wait and retry, nothing is lost",
		Config:      cfg,
	}
}

// moveBase is the Phase 3 setup: five regions on stores 1-3 (three
// replicas each) and a fourth store that joins at the start, PD's
// schedulers on with short timings, snapshots in 4 KiB chunks (so that a
// catch-up takes several), and the split workload over 160 keys. Regions
// split as they grow (a higher threshold than the split scenarios, so
// moves dominate).
func moveBase(name string) sim.Config {
	cfg := splitBase(name)
	cfg.SplitKeys = []string{"e", "j", "o", "t"}
	cfg.SpareStores = 1
	cfg.Store.SplitThreshold = 16 << 10
	cfg.Store.SnapshotChunkBytes = 4 << 10
	cfg.Store.LogCompactEntries = 50
	cfg.Store.LogKeepEntries = 10
	cfg.PD = pd.Config{
		ScheduleInterval: time.Second,
		OperatorTimeout:  60 * time.Second,
		MaxStoreDownTime: 10 * time.Second,
	}
	return cfg
}

// joinAtStart adds the spare store right away.
func joinAtStart(p *sim.Planner) {
	p.At(0, "store 4 joins", func(w *sim.World) { w.AddStore(4) })
}

// moveCandidates are the stores a replica of r may move from (those that
// hold one, but store keep) and to (the up stores that hold none).
func moveCandidates(w *sim.World, r *pb.Region, keep uint64) (from, to []uint64) {
	for _, id := range w.AllStoreIDs() {
		if r.PeerOnStore(id) != nil {
			if id != keep {
				from = append(from, id)
			}
		} else if w.Up(id) {
			to = append(to, id)
		}
	}
	return from, to
}

// manualMoves orders two moves at chosen times, each of a random region from
// a store that holds it to one that does not.
func manualMoves(p *sim.Planner, at ...time.Duration) {
	for _, t := range at {
		p.At(t, "manual move", func(w *sim.World) {
			regions := w.RegionIDs()
			r := w.Region(regions[p.R.Intn(len(regions))])
			from, to := moveCandidates(w, r, 0)
			if len(from) > 0 && len(to) > 0 {
				w.MoveRegion(r.GetId(), from[p.R.Intn(len(from))], to[p.R.Intn(len(to))])
			}
		})
	}
}

func move() Scenario {
	cfg := moveBase("move")
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		manualMoves(p, 25*time.Second, 40*time.Second)
	}
	return Scenario{
		Name:        "move",
		Description: "4 stores, five regions starting on stores 1-3; store 4 joins and PD's balancer spreads replicas and leaders onto it, plus two manual moves, while clients read and write and regions split; no faults",
		Config:      cfg,
	}
}

// movePartition partitions the stores of a move while the learner catches
// up and while the group is in its joint configuration.
func movePartition() Scenario {
	cfg := moveBase("move-partition")
	cfg.Net.Loss = 0.005
	cfg.Net.Duplicate = 0.01
	lateCopies(&cfg)
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		manualMoves(p, 20*time.Second, 35*time.Second)
		busy := false
		heal := func(w *sim.World, after time.Duration) {
			p.At(w.Now()+after, "heal", func(w *sim.World) { w.Heal(); busy = false })
		}
		p.OnSnapshotStarted(func(w *sim.World, from, to, region uint64) {
			if busy || w.Now() > p.Dur-8*time.Second || p.R.Intn(2) != 0 {
				return
			}
			busy = true
			if p.R.Intn(2) == 0 {
				w.Isolate(to) // the learner is cut off while it catches up
			} else {
				w.Isolate(from) // the leader is
			}
			heal(w, time.Duration(1000+p.R.Intn(4000))*time.Millisecond)
		})
		p.OnMembershipChanged(func(w *sim.World, store uint64, region *pb.Region) {
			if busy || w.Now() > p.Dur-8*time.Second || !region.InJointConfig() || p.R.Intn(2) != 0 {
				return
			}
			busy = true
			// Cut the group in two: its quorum may be lost mid-move.
			var a, b []uint64
			for _, id := range w.AllStoreIDs() {
				if p.R.Intn(2) == 0 {
					a = append(a, id)
				} else {
					b = append(b, id)
				}
			}
			w.Partition(a, append(b, sim.PDNode))
			heal(w, time.Duration(1000+p.R.Intn(5000))*time.Millisecond)
		})
	}
	return Scenario{
		Name:        "move-partition",
		Description: "moves under partitions: the learner or the leader cut off while a snapshot streams, the stores split in two while a group is joint (quorum may be lost mid-move); 0.5% loss, 1% duplication",
		Config:      cfg,
	}
}

// moveLeaderChange moves replicas away from their leaders' stores and
// moves or crashes leaders at every step of a move.
func moveLeaderChange() Scenario {
	cfg := moveBase("move-leader-change")
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		// Manual moves of a region's replica off its leader's store.
		for _, t := range []time.Duration{15 * time.Second, 30 * time.Second, 45 * time.Second} {
			p.At(t, "move a leader's replica", func(w *sim.World) {
				regions := w.RegionIDs()
				r := w.Region(regions[p.R.Intn(len(regions))])
				leader := w.LeaderStore(r.GetId())
				for _, id := range w.AllStoreIDs() {
					if leader != 0 && r.PeerOnStore(id) == nil && w.Up(id) {
						w.MoveRegion(r.GetId(), leader, id)
						return
					}
				}
			})
		}
		p.OnMembershipChanged(func(w *sim.World, store uint64, region *pb.Region) {
			if w.Now() > p.Dur-6*time.Second || w.LeaderStore(region.GetId()) != store {
				return
			}
			switch p.R.Intn(4) {
			case 0:
				w.TransferLeader(region.GetId(), p.R.Intn)
			case 1:
				p.CrashFor(w, store, time.Duration(500+p.R.Intn(2500))*time.Millisecond)
			}
		})
	}
	return Scenario{
		Name:        "move-leader-change",
		Description: "moves whose source is the leader; at each membership change the leader is moved or crashed",
		Config:      cfg,
	}
}

// moveCrash crashes the target while it installs a snapshot, the source
// right after it is demoted, and tears the disk write of a snapshot or a
// tombstone.
func moveCrash() Scenario {
	cfg := moveBase("move-crash")
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		manualMoves(p, 20*time.Second, 35*time.Second)
		p.OnSnapshotStarted(func(w *sim.World, from, to, region uint64) {
			if w.Now() > p.Dur-6*time.Second || !w.Up(to) {
				return
			}
			switch p.R.Intn(4) {
			case 0:
				p.At(w.Now()+time.Duration(p.R.Intn(20))*time.Millisecond, "crash a snapshot's target", func(w *sim.World) {
					p.CrashFor(w, to, time.Duration(500+p.R.Intn(2500))*time.Millisecond)
				})
			case 1:
				w.TearNextWrite(to, p.R.Intn(3)) // the snapshot's durable record
			case 2:
				if p.R.Intn(2) == 0 {
					w.CorruptSnapshotChunk(to) // it must be refused and sent again
				}
			}
		})
		p.OnMembershipChanged(func(w *sim.World, store uint64, region *pb.Region) {
			if w.Now() > p.Dur-6*time.Second || !w.Up(store) {
				return
			}
			self := region.PeerOnStore(store)
			switch {
			case self == nil: // removed: the next write is the tombstone
				if p.R.Intn(2) == 0 {
					w.TearNextWrite(store, p.R.Intn(2))
				}
			case self.GetRole() == pb.PeerRole_DEMOTING_VOTER && p.R.Intn(2) == 0:
				p.CrashFor(w, store, time.Duration(500+p.R.Intn(2500))*time.Millisecond)
			}
		})
	}
	return Scenario{
		Name:        "move-crash",
		Description: "moves under crashes: the target crashes while a snapshot streams to it, the source right after its demotion, disks die writing a snapshot or a tombstone; now and then a snapshot chunk arrives corrupted",
		Config:      cfg,
	}
}

// killRetry is how long a kill waits before it looks again at a world in
// which losing the store is not survivable yet (sim.World.KillHazard).
const killRetry = 100 * time.Millisecond

// killWhenSurvivable kills store id for good now or, while losing its disk
// could leave a region without a leader for good (a membership change under
// way, a voter down elsewhere: sim.World.KillHazard), as soon after as it no
// longer could, looking again every killRetry; not at all from deadline on.
// killed, if set, is told how late the kill came.
func killWhenSurvivable(p *sim.Planner, w *sim.World, id uint64, deadline time.Duration, killed func(w *sim.World, late time.Duration)) {
	start, told := w.Now(), ""
	var try func(w *sim.World)
	try = func(w *sim.World) {
		if w.Now() >= deadline {
			if w.Now() > start { // put off until too late
				w.Note("store %d not killed: no time it was survivable before %v", id, deadline)
			}
			return
		}
		if why := w.KillHazard(id); why != "" {
			if why != told {
				w.Note("kill of store %d put off: %s", id, why)
				told = why
			}
			p.At(w.Now()+killRetry, "kill a store for good, put off", try)
			return
		}
		w.KillStore(id)
		if killed != nil {
			killed(w, w.Now()-start)
		}
	}
	try(w)
}

// workloadKeysIn returns, sorted, the keys of a workload of n keys that
// region holds now.
func workloadKeysIn(w *sim.World, n int, region uint64) [][]byte {
	var keys [][]byte
	for i := 0; i < n; i++ {
		if k := []byte(sim.KeyName(i)); w.RegionOf(k) == region {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

// storeDown kills a store for good: PD re-creates its replicas elsewhere;
// the store comes back later and finds its peers removed.
func storeDown() Scenario {
	cfg := moveBase("store-down")
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		p.At(12*time.Second, "kill a store for good", func(w *sim.World) {
			victim := uint64(1 + p.R.Intn(3))
			// It returns at 45 s, or as much later as its death was put
			// off: PD has its 10 s and the moves to replace it either way.
			killWhenSurvivable(p, w, victim, 25*time.Second, func(w *sim.World, late time.Duration) {
				p.At(45*time.Second+late, "the dead store returns", func(w *sim.World) { w.Revive(victim) })
			})
		})
	}
	return Scenario{
		Name:        "store-down",
		Description: "a store dies; after 10 s PD re-creates its replicas on the others; it returns at 45 s, finds its peers removed (GC notice or PD) and destroys them",
		Config:      cfg,
	}
}

func scaleOut() Scenario {
	cfg := moveBase("scale-out")
	cfg.SpareStores = 2
	cfg.Faults = func(p *sim.Planner) {
		p.At(8*time.Second, "store 4 joins", func(w *sim.World) { w.AddStore(4) })
		p.At(25*time.Second, "store 5 joins", func(w *sim.World) { w.AddStore(5) })
	}
	return Scenario{
		Name:        "scale-out",
		Description: "two stores join while clients work; PD's balancer fills them",
		Config:      cfg,
	}
}

func decommission() Scenario {
	cfg := moveBase("decommission")
	// A change proposed again 0-2 s later: the learner the first copy
	// added may be removed by then (its store is decommissioned at once).
	cfg.Buggify.Also = []buggify.Point{buggify.ConfProposeRepeat}
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		// The store a learner is being added to is decommissioned the
		// moment the learner is in (after 2 s; store 2 at 15 s if none):
		// the move is cancelled and PD removes the learner at once.
		done := false
		p.OnMembershipChanged(func(w *sim.World, store uint64, region *pb.Region) {
			if done || w.Now() < 2*time.Second || w.LeaderStore(region.GetId()) != store {
				return
			}
			for _, pp := range region.GetPeers() {
				if pp.GetRole() == pb.PeerRole_LEARNER {
					done = true
					w.Decommission(pp.GetStoreId())
					return
				}
			}
		})
		p.At(15*time.Second, "decommission store 2", func(w *sim.World) {
			if !done {
				done = true
				w.Decommission(2)
			}
		})
	}
	return Scenario{
		Name:        "decommission",
		Description: "the store a learner is being added to is decommissioned at that moment (store 2 at 15 s if none): PD cancels the move, removes the learner, moves every replica away, then tombstones it",
		Config:      cfg,
	}
}

// splitSnapshot splits regions while their new learner's snapshot is in
// flight. Store 4 joins and PD moves replicas onto it (and three manual
// moves later), over slow links into store 4 (200 KB/s) with 2 KB values
// written by three clients, so a snapshot takes a while. The first four times a leader starts a
// snapshot to store 4, the plan splits that region at once and holds store
// 4's messages for 1.5 s: the split commits without the learner, the new
// region's leader talks to store 4, which holds only a placeholder of the
// parent and so creates one for the new region, and PD removes the new
// region's extra replica there. When the parent's snapshot lands (from
// before the split) and store 4 applies the split from the log, the new
// region is a placeholder to take over, or already removed from the store.
func splitSnapshot() Scenario {
	cfg := moveBase("split-snapshot")
	cfg.Workload.ValueSize = 2000
	cfg.Clients = 3
	cfg.Store.SplitThreshold = 64 << 10
	cfg.Net.LinkBandwidth = map[netsim.Link]int64{}
	for i := uint64(1); i <= 3; i++ {
		cfg.Net.LinkBandwidth[netsim.Link{From: i, To: 4}] = 200_000
	}
	keys := cfg.Workload.Keys
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		manualMoves(p, 15*time.Second, 30*time.Second, 45*time.Second)
		splits := 0
		p.OnSnapshotStarted(func(w *sim.World, from, to, region uint64) {
			if to != 4 || splits >= 4 || w.Now() >= p.Dur {
				return
			}
			r := w.Region(region)
			var inside [][]byte
			for i := 0; i < keys; i++ {
				if k := []byte(sim.KeyName(i)); r.ContainsKey(k) && !bytes.Equal(k, r.GetStartKey()) {
					inside = append(inside, k)
				}
			}
			if len(inside) < 2 {
				return
			}
			slices.SortFunc(inside, bytes.Compare)
			splits++
			w.RequestSplit(inside[len(inside)/2])
			w.Clog(4, 1500*time.Millisecond)
		})
	}
	return Scenario{
		Name: "split-snapshot",
		Description: "store 4 joins over slow links (200 KB/s, 2 KB values, 3 clients) and PD moves replicas onto it; the first four times a snapshot to store 4 starts, " +
			"its region splits at once and store 4 is clogged for 1.5 s: the split lands while the learner's snapshot is in flight, and store 4 " +
			"takes over a placeholder of the new region or finds it already removed",
		Config: cfg,
	}
}

// splitAndMove: size-driven splits and moves at once, with faults of every
// kind above at random.
func splitAndMove() Scenario {
	cfg := moveBase("split-and-move")
	cfg.Store.SplitThreshold = 3 << 10
	cfg.Net.Loss = 0.005
	cfg.Net.Duplicate = 0.01
	lateCopies(&cfg)
	cfg.Faults = func(p *sim.Planner) {
		joinAtStart(p)
		manualMoves(p, 15*time.Second, 30*time.Second, 45*time.Second)
		for t := 5 * time.Second; t < p.Dur-8*time.Second; t += time.Duration(3000+p.R.Intn(5000)) * time.Millisecond {
			p.At(t, "a random fault", func(w *sim.World) {
				ids := w.AllStoreIDs()
				id := ids[p.R.Intn(len(ids))]
				if !w.Up(id) {
					return
				}
				switch p.R.Intn(5) {
				case 0:
					p.CrashFor(w, id, time.Duration(500+p.R.Intn(3000))*time.Millisecond)
				case 1:
					w.Isolate(id)
					p.At(w.Now()+time.Duration(1000+p.R.Intn(4000))*time.Millisecond, "heal", func(w *sim.World) { w.Heal() })
				case 2:
					regions := w.RegionIDs()
					w.TransferLeader(regions[p.R.Intn(len(regions))], p.R.Intn)
				case 3:
					w.TearNextWrite(id, p.R.Intn(4))
				case 4:
					w.Isolate(sim.PDNode)
					p.At(w.Now()+time.Duration(1000+p.R.Intn(4000))*time.Millisecond, "heal", func(w *sim.World) { w.Heal() })
				}
			})
		}
	}
	return Scenario{
		Name:        "split-and-move",
		Description: "size-driven splits, balancing and manual moves at once, with random crashes, partitions, leader moves, torn writes and PD isolation",
		Config:      cfg,
	}
}
