package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/sim/simfs"
)

// storeNode is one simulated store: its disk, and the store process when
// it is up. Ticks and ready rounds are events; a crash voids those already
// scheduled.
type storeNode struct {
	w                   *World
	id                  uint64
	ffs                 *simfs.FaultFS // the disk, with injected faults; crash images come from it
	st                  *raftstore.Store
	gen                 int // bumped on crash: events of older generations are void
	flushQueued         bool
	join                bool // a spare store: it joins the cluster after bootstrap
	dead                bool // killed for good: never restarted (until revived)
	started             bool // started once: a spare store is not, until added
	rand                *rng.Rand
	tickName, flushName string // trace names of its recurring events
}

func (n *storeNode) up() bool { return n.st != nil }

// addStore gives store id an empty disk and starts it.
func (w *World) addStore(id uint64) {
	n := w.newStoreNode(id)
	w.stores = append(w.stores, n)
	w.startStore(n)
}

// newStoreNode gives store id an empty disk, not started.
func (w *World) newStoreNode(id uint64) *storeNode {
	n := &storeNode{w: w, id: id, rand: w.rs.node.Fork(),
		tickName: fmt.Sprintf("tick s%d", id), flushName: fmt.Sprintf("flush s%d", id)}
	n.ffs = simfs.NewFaultFS(vfs.NewMem(), w.rs.disk.Fork())
	return n
}

// startStore opens a store on its disk, hooks it to the metrics and the
// fault plan, and starts its ticks.
func (w *World) startStore(n *storeNode) {
	scfg := w.cfg.Store
	scfg.StoreID = n.id
	scfg.PD = PDNode
	scfg.Join = n.join
	n.started = true
	st, err := raftstore.Open(w.env(n.id, n.ffs, "/store", n.rand.Fork()), scfg)
	if err != nil {
		if errors.Is(err, simfs.ErrInjected) || errors.Is(err, simfs.ErrCrashed) {
			// The disk failed again while recovering: crash and retry later.
			w.k.note("store %d failed to open on an injected disk fault: %v", n.id, err)
			w.tl.storeDown(w.k.now, n.id, "failed to reopen on a disk fault")
			w.crashDisk(n)
			w.scheduleRestart(n)
			return
		}
		w.violate(fmt.Sprintf("store %d failed to open its disk: %v", n.id, err))
		return
	}
	st.SetHooks(raftstore.Hooks{
		WriteApplied: func(_ uint64, session []byte, seq uint64, result *pb.KvResponse) {
			if w.probe != nil {
				w.probe.writeApplied(n.id, session)
			}
			w.writeApplied(writeID{session: string(session), seq: seq}, resultOf(result))
		},
		LeaderChanged: func(region, leader uint64) {
			w.metrics.leaderChanged(region, leader, w.k.now)
			w.tl.leaderChanged(w.k.now, n.id, region, leader)
			if w.probe != nil && leader != 0 {
				w.probe.leaderChanged(region)
			}
			if leader != 0 && len(w.onNextLeader) > 0 && n.up() {
				if rs, ok := n.st.Region(region); ok && rs.PeerID == leader {
					fns := w.onNextLeader
					w.onNextLeader = nil
					for _, fn := range fns {
						fn(w, n.id, region)
					}
				}
			}
		},
		SplitDue: func(region, version uint64) {
			w.metrics.splitBecameDue(region, version, w.k.now)
		},
		SplitProposed: func(region uint64) {
			for _, fn := range w.onSplitProposed {
				fn(w, n.id, region)
			}
		},
		SplitApplied: func(left, right *pb.Region) {
			w.k.note("store %d applied split of region %d at %q into %d", n.id, left.GetId(), right.GetStartKey(), right.GetId())
			w.metrics.splitApplied(left, right, w.k.now)
			w.tl.splitApplied(w.k.now, left, right)
			for _, fn := range w.onSplitApplied {
				fn(w, n.id, left, right)
			}
			w.checkStoreOverlap(n, left)
			w.checkStoreOverlap(n, right)
			w.noteRegion(n.id, left)
			w.noteRegion(n.id, right)
		},
		MembershipChanged: func(region *pb.Region) {
			w.k.note("store %d applied membership change of region %d: conf_ver %d", n.id, region.GetId(), region.GetEpoch().GetConfVer())
			w.tl.membershipChanged(w.k.now, region)
			w.noteRegion(n.id, region)
			for _, fn := range w.onMembershipChanged {
				fn(w, n.id, region)
			}
		},
		PeerDestroyed: func(region *pb.Region, peer uint64, why string) {
			w.k.note("store %d destroyed peer %d of region %d: %s", n.id, peer, region.GetId(), why)
			w.metrics.peersDestroyed++
			w.checkDestroyedPeer(n, region.GetId(), peer, why)
			for _, fn := range w.onPeerDestroyed {
				fn(w, n.id, peer, region)
			}
		},
		SnapshotStarted: func(region, to uint64, bytes int64) {
			if w.cfg.NoSnapshots {
				w.snapshotNotNeeded(n, to, region)
			}
			for _, fn := range w.onSnapshotStarted {
				fn(w, n.id, to, region)
			}
		},
		SnapshotApplied: func(region *pb.Region) {
			w.checkStoreOverlap(n, region)
			w.noteRegion(n.id, region)
		},
		SnapshotSent: func(region, to uint64, bytes uint64) {
			w.metrics.snapshotsSent++
			w.metrics.snapshotBytes += bytes
		},
	})
	n.st = st
	w.tl.storeUp(w.k.now, n.id)
	w.metrics.tornTailCuts += st.EngineStats().TornTailCuts
	gen := n.gen
	// Stagger ticks so that stores do not tick in lockstep.
	*w.k.schedule(time.Duration(n.rand.Int63n(int64(scfg.TickInterval)))) = event{kind: evTick, node: n, gen: gen}
}

func (w *World) tickStore(n *storeNode, gen int) {
	if n.gen != gen || !n.up() {
		return
	}
	n.st.Tick()
	w.queueFlush(n)
	*w.k.schedule(w.tickInterval(n.id)) = event{what: n.tickName, kind: evTick, node: n, gen: gen}
}

// tickInterval is the time between store id's ticks: the configured tick
// interval, scaled by the store's Config.StoreTickScale.
func (w *World) tickInterval(id uint64) time.Duration {
	d := w.cfg.Store.TickInterval
	if i := int(id) - 1; i < len(w.cfg.StoreTickScale) && w.cfg.StoreTickScale[i] > 0 {
		d = time.Duration(float64(d) * w.cfg.StoreTickScale[i])
	}
	return d
}

// queueFlush schedules a ready round of the store after a disk latency,
// unless one is already scheduled. A round that fails on the disk crashes
// the store, which restarts later.
func (w *World) queueFlush(n *storeNode) {
	if n.flushQueued || !n.up() {
		return
	}
	n.flushQueued = true
	*w.k.schedule(w.cfg.DiskLatency.draw(w.rs.disk)) = event{what: n.flushName, kind: evFlush, node: n, gen: n.gen}
}

// flush runs the ready round queueFlush scheduled in generation gen of
// the store.
func (w *World) flush(n *storeNode, gen int) {
	if n.gen != gen || !n.up() {
		return
	}
	n.flushQueued = false
	if err := n.st.Flush(); err != nil {
		if errors.Is(err, buggify.ErrCrash) {
			// A fault hook's crash: the store fails stop right there.
			w.k.note("store %d: %v", n.id, err)
			w.crashStore(n, "crashed by a fault hook")
			w.scheduleRestart(n)
			return
		}
		if !errors.Is(err, simfs.ErrInjected) && !errors.Is(err, simfs.ErrCrashed) {
			w.violate(fmt.Sprintf("store %d: ready round failed without a disk fault: %v", n.id, err))
		}
		w.metrics.diskFailures++
		w.k.note("store %d disk failure: %v", n.id, err)
		w.crashStore(n, "disk failure")
		w.scheduleRestart(n)
		return
	}
	if n.st.NeedsFlush() {
		w.queueFlush(n)
	}
}

// crashStore stops a store; its disk keeps what was synced and, at the
// seed's choice, some of what was not. why says, for the timeline, what
// happened (crashed, killed, disk failure).
func (w *World) crashStore(n *storeNode, why string) {
	if !n.up() {
		return
	}
	w.tl.storeDown(w.k.now, n.id, why)
	w.metrics.crashes++
	n.st.Close()
	n.st = nil
	n.gen++
	n.flushQueued = false
	w.crashDisk(n)
	w.k.note("crash store %d", n.id)
}

// crashDisk replaces a store's disk by a crash image of it: what was synced,
// and, as the seed says, some of what was not. Injected faults are cleared.
func (w *World) crashDisk(n *storeNode) {
	crashed, err := n.ffs.Crash(w.rs.disk, w.cfg.CrashKeepUnsynced)
	if err != nil {
		panic(fmt.Sprintf("sim: crash image of store %d: %v", n.id, err))
	}
	n.ffs = crashed
}

// scheduleRestart brings a store that failed on its own (a disk fault) back
// after a while, as an operator or a supervisor would.
func (w *World) scheduleRestart(n *storeNode) {
	d := time.Duration(500+w.rs.fault.Intn(2500)) * time.Millisecond
	w.k.after(d, fmt.Sprintf("auto-restart s%d", n.id), func() { w.restartStore(n) })
}

// restartStore reopens a crashed store from its disk.
func (w *World) restartStore(n *storeNode) {
	if n.up() || n.dead || !n.started {
		return
	}
	w.k.note("restart store %d", n.id)
	w.startStore(n)
}
