package raftstore_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// Membership changes and moves, with the test playing PD: it sends the
// region's leader RegionOrders, as PD's operators do.

// order sends the leader of rid a membership change made for the epoch
// the leader has now.
func (c *cluster) order(rid uint64, changes ...*pb.PeerChange) {
	c.t.Helper()
	leader := c.waitLeader(rid)
	meta := c.meta(leader, rid)
	c.net.Send(pb.NewEnvelope(pdNode, leader, &pb.RegionOrder{
		RegionId: rid, RegionEpoch: meta.GetEpoch(),
		ChangePeers: &pb.ChangePeers{
			Header:  &pb.RequestHeader{RegionId: rid, RegionEpoch: meta.GetEpoch()},
			Changes: changes,
		},
	}))
	c.deliver()
}

// waitReplicasOn waits until the replicas of rid on the given stores hold
// exactly the keys want.
func (c *cluster) waitReplicasOn(rid uint64, want string, on ...uint64) {
	c.t.Helper()
	c.waitFor(100, fmt.Sprintf("the replicas of region %d on %v to hold keys %q", rid, on, want), func() bool {
		for _, id := range on {
			if c.keysOf(id, rid) != want {
				return false
			}
		}
		return true
	})
}

// withKeys is the comma-separated sorted set of keys plus extra.
func withKeys(keys string, extra ...string) string {
	ks := append(strings.Split(keys, ","), extra...)
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

func change(t pb.ChangeType, id, store uint64) *pb.PeerChange {
	return &pb.PeerChange{Type: t, Peer: &pb.Peer{Id: id, StoreId: store}}
}

// waitMeta waits until every store listed in on holds region rid with
// exactly the peers want ("id@store:role" sorted as the meta lists them) at
// conf_ver confVer.
func (c *cluster) waitMeta(rid, confVer uint64, want string, on ...uint64) {
	c.t.Helper()
	c.waitFor(200, fmt.Sprintf("region %d at conf_ver %d with peers %s on stores %v", rid, confVer, want, on), func() bool {
		for _, id := range on {
			rs := c.region(id, rid)
			if rs == nil || !rs.Initialized || rs.Region.GetEpoch().GetConfVer() != confVer || describePeers(rs.Region) != want {
				return false
			}
		}
		return true
	})
}

func describePeers(r *pb.Region) string {
	var parts []string
	for _, p := range r.GetPeers() {
		parts = append(parts, fmt.Sprintf("%d@%d:%v", p.GetId(), p.GetStoreId(), p.GetRole()))
	}
	return strings.Join(parts, ",")
}

// moveSetup starts stores 1-4 with one region on 1-3, writes keys, and
// compacts the log so that a new peer needs a snapshot.
func moveSetup(t *testing.T) (c *cluster, leader, source uint64, keys string) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	cfg.SnapshotChunkBytes = 64 // many chunks per snapshot
	c = newClusterOf(t, cfg, 4)
	c.waitBootstrap(1)
	var ks []string
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("k%02d", i)
		c.ok(1, put(k, strings.Repeat("v", 20)))
		ks = append(ks, k)
	}
	leader = c.waitLeader(1)
	source = 1
	if source == leader {
		source = 2
	}
	return c, leader, source, strings.Join(ks, ",")
}

// A replica moves from a follower's store to store 4: learner added and
// caught up by a streamed snapshot, promoted while the source is demoted in
// one joint change that raft leaves on its own, then the source removed and
// tombstoned. Writes go on throughout and every replica ends equal.
func TestMoveReplica(t *testing.T) {
	c, leader, source, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	src := meta.PeerOnStore(source)
	base := meta.GetEpoch().GetConfVer()
	others := func(except uint64) []uint64 { // stores 1-4 but one
		var out []uint64
		for _, id := range []uint64{1, 2, 3, 4} {
			if id != except {
				out = append(out, id)
			}
		}
		return out
	}
	peersNow := describePeers(meta)

	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, base+1, peersNow+",1000@4:LEARNER", 1, 2, 3, 4)
	c.waitReplicas(1, keys)
	st4 := c.store(4).Stats()
	if st4.SnapshotsReceived == 0 || st4.SnapshotsApplied == 0 || c.store(leader).Stats().SnapshotChunksSent < 10 {
		t.Fatalf("the learner did not catch up by a chunked snapshot: store 4 %+v, leader sent %d chunks",
			st4, c.store(leader).Stats().SnapshotChunksSent)
	}
	c.ok(1, put("during", "1"))

	c.order(1, change(pb.ChangeType_PROMOTE_LEARNER, 1000, 4), change(pb.ChangeType_DEMOTE_VOTER, src.GetId(), source))
	after := strings.Replace(peersNow, fmt.Sprintf("%d@%d:VOTER", src.GetId(), source), fmt.Sprintf("%d@%d:LEARNER", src.GetId(), source), 1) + ",1000@4:VOTER"
	c.waitMeta(1, base+3, after, 1, 2, 3, 4) // entered and left the joint configuration

	c.order(1, change(pb.ChangeType_REMOVE_PEER, src.GetId(), source))
	final := strings.Replace(after, fmt.Sprintf("%d@%d:LEARNER,", src.GetId(), source), "", 1)
	c.waitMeta(1, base+4, final, others(source)...)
	c.waitFor(50, "the source to destroy its peer", func() bool { return c.region(source, 1) == nil })
	if c.store(source).Stats().PeersDestroyed != 1 {
		t.Fatalf("store %d destroyed %d peers", source, c.store(source).Stats().PeersDestroyed)
	}
	c.ok(1, put("zafter", "1"))
	c.waitReplicasOn(1, withKeys(keys, "during", "zafter"), others(source)...)

	// A late message for the removed peer creates nothing, also after a
	// restart (the tombstone is durable).
	c.stop(source)
	c.start(source)
	cur := c.meta(c.waitLeader(1), 1)
	late := func() {
		c.sendRaft(leader, source, &pb.RaftMessage{
			RegionId: 1, FromPeer: cur.PeerOnStore(leader), ToPeer: src, RegionEpoch: meta.GetEpoch(),
			StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
			Message: &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(cur.PeerOnStore(leader).GetId()),
				To: proto.Uint64(src.GetId()), Term: proto.Uint64(c.region(leader, 1).Term)},
		})
	}
	// Until PD has listed the cluster's stores to the restarted store (the
	// answer to its first store heartbeat), it drops raft traffic as from
	// unknown nodes: the message must reach the tombstone rule to test it.
	c.waitFor(100, "the late message to reach the tombstone of region 1", func() bool {
		late()
		st := c.store(source).Stats()
		return st.StalePeerMsgs > 0 || st.PlaceholderPeers > 0
	})
	if c.region(source, 1) != nil || c.store(source).Stats().PlaceholderPeers != 0 {
		t.Fatalf("a stale message recreated the removed peer on store %d", source)
	}
	c.ok(1, put("zz", "1"))
	c.waitReplicasOn(1, withKeys(keys, "during", "zafter", "zz"), others(source)...)
}

// The hazard: the leader demotes itself inside a joint change. It leads the
// joint configuration, steps down once raft leaves it, and a voter of the
// new configuration takes over; nothing acknowledged is lost.
func TestLeaderDemotedInJointChangeStepsDown(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, base+1, describePeers(meta)+",1000@4:LEARNER", 1, 2, 3, 4)
	c.waitReplicas(1, keys)
	self := meta.PeerOnStore(leader)
	c.order(1, change(pb.ChangeType_PROMOTE_LEARNER, 1000, 4), change(pb.ChangeType_DEMOTE_VOTER, self.GetId(), leader))
	c.waitFor(200, "a new leader that is a voter", func() bool {
		l, ok := c.leaderOf(1)
		return ok && l != leader
	})
	rs := c.region(leader, 1)
	if rs.Region.GetEpoch().GetConfVer() != base+3 || rs.Region.PeerByID(self.GetId()).GetRole() != pb.PeerRole_LEARNER {
		t.Fatalf("the old leader's view: %s at conf_ver %d", describePeers(rs.Region), rs.Region.GetEpoch().GetConfVer())
	}
	c.ok(1, put("zafter", "1"))
	c.waitReplicas(1, withKeys(keys, "zafter"))
}

// A peer cut off while it is removed never hears of its removal. Once it can
// talk again, its campaigns must not disturb the group: a member answers its
// messages with a GC notice and it destroys itself.
func TestRemovedPeerThatMissedItsRemovalIsCollected(t *testing.T) {
	c, leader, source, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	src := meta.PeerOnStore(source)
	base := meta.GetEpoch().GetConfVer()
	c.isolate(source, true)
	c.order(1, change(pb.ChangeType_DEMOTE_VOTER, src.GetId(), source))
	c.waitFor(100, "the demotion", func() bool {
		return c.region(leader, 1).Region.GetEpoch().GetConfVer() == base+1
	})
	c.order(1, change(pb.ChangeType_REMOVE_PEER, src.GetId(), source))
	c.waitFor(100, "the removal", func() bool {
		return c.region(leader, 1).Region.GetEpoch().GetConfVer() == base+2
	})
	term := c.region(leader, 1).Term
	// Cut off, the stale peer keeps campaigning (pre-votes only: it never
	// raises the group's term).
	for i := 0; i < 3*10; i++ {
		c.step()
	}
	c.isolate(source, false)
	c.waitFor(100, "the stale peer to destroy itself", func() bool { return c.region(source, 1) == nil })
	if l, ok := c.leaderOf(1); !ok || l != leader || c.region(leader, 1).Term != term {
		t.Fatalf("the stale peer disturbed the group: leader %d (ok %v), term %d -> %d", l, ok, term, c.region(leader, 1).Term)
	}
	if s := c.store(leader).Stats().GCNoticesSent + c.store(others(c, source)[0]).Stats().GCNoticesSent; s == 0 {
		t.Fatal("no GC notice was sent")
	}
	c.ok(1, put("zafter", "1"))
	c.waitReplicasOn(1, withKeys(keys, "zafter"), others(c, source)[:2]...)
}

// Orders that do not fit the region are not proposed: a stale epoch, a
// store that already holds a peer, promoting a voter, removing the leader,
// three changes at once. Each leaves conf_ver as it was.
func TestInvalidOrdersAreNotProposed(t *testing.T) {
	c, leader, source, _ := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	self := meta.PeerOnStore(leader)
	stale := proto.Clone(meta.GetEpoch()).(*pb.Epoch)
	stale.ConfVer--
	c.net.Send(pb.NewEnvelope(pdNode, leader, &pb.RegionOrder{RegionId: 1, RegionEpoch: stale, ChangePeers: &pb.ChangePeers{
		Header: &pb.RequestHeader{RegionId: 1, RegionEpoch: stale}, Changes: []*pb.PeerChange{change(pb.ChangeType_ADD_LEARNER, 1000, 4)}}}))
	c.deliver()
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, source))
	c.order(1, change(pb.ChangeType_PROMOTE_LEARNER, meta.PeerOnStore(source).GetId(), source))
	c.order(1, change(pb.ChangeType_REMOVE_PEER, self.GetId(), leader))
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4), change(pb.ChangeType_ADD_LEARNER, 1001, 4), change(pb.ChangeType_REMOVE_PEER, 1002, 4))
	// An order from someone who is not PD is dropped.
	c.net.Send(pb.NewEnvelope(clientNode, leader, &pb.RegionOrder{RegionId: 1, RegionEpoch: meta.GetEpoch(), ChangePeers: &pb.ChangePeers{
		Header: &pb.RequestHeader{RegionId: 1, RegionEpoch: meta.GetEpoch()}, Changes: []*pb.PeerChange{change(pb.ChangeType_ADD_LEARNER, 1000, 4)}}}))
	c.deliver()
	for i := 0; i < 10; i++ {
		c.step()
	}
	if got := c.region(leader, 1).Region.GetEpoch().GetConfVer(); got != base {
		t.Fatalf("conf_ver went from %d to %d", base, got)
	}
	if n := c.store(leader).Stats().ConfChangesProposed; n != 0 {
		t.Fatalf("%d conf changes proposed", n)
	}
	if c.region(4, 1) != nil {
		t.Fatal("store 4 got a peer")
	}
}

// A learner's catch-up survives lost chunks and acks (resent) and a
// corrupted chunk (refused on its checksum, then sent again).
func TestSnapshotSurvivesLossAndCorruption(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	n := 0
	corrupted := false
	c.filter = func(e *pb.Envelope) bool {
		if ch := e.GetSnapshotChunk(); ch != nil {
			n++
			if !corrupted && ch.GetSeq() == 3 && len(ch.GetPairs()) > 0 {
				corrupted = true
				ch.Pairs[0].Value = []byte("corrupt")
				return false
			}
			return n%4 == 0 // lose every fourth chunk
		}
		if a := e.GetSnapshotAck(); a != nil {
			n++
			return n%5 == 0 // and every fifth ack
		}
		return false
	}
	meta := c.meta(leader, 1)
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, meta.GetEpoch().GetConfVer()+1, describePeers(meta)+",1000@4:LEARNER", 4)
	c.waitFor(300, "the learner to catch up", func() bool { return c.keysOf(4, 1) == keys })
	ls, s4 := c.store(leader).Stats(), c.store(4).Stats()
	if !corrupted || s4.SnapshotsRefused == 0 || ls.SnapshotsFailed == 0 || ls.SnapshotChunksResent == 0 {
		t.Fatalf("the faults did not happen: corrupted %v, store 4 %+v, leader %+v", corrupted, s4, ls)
	}
	if c.keysOf(4, 1) != keys {
		t.Fatalf("store 4 holds %q", c.keysOf(4, 1))
	}
}

var _ = raftstore.InitLogIndex

// Once a store is decommissioned (a tombstone: PD no longer lists it) and
// no local region names it any more, the other stores stop pinging it and
// take no raft traffic from it. (They pinged it for good: a store
// remembered every store a local region had ever named.)
func TestDecommissionedStoreIsForgotten(t *testing.T) {
	c := newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	c.ok(1, put("a", "1"))
	const gone = 3
	if err := c.pd.DecommissionStore(gone); err != nil {
		t.Fatal(err)
	}
	c.waitFor(600, fmt.Sprintf("store %d a tombstone", gone), func() bool {
		for _, st := range c.pd.Stores() {
			if st.ID == gone {
				return st.State.String() == "tombstone"
			}
		}
		return false
	})
	for i := 0; i < 30; i++ { // every store learns PD's store list
		c.step()
	}
	pings := 0
	c.filter = func(e *pb.Envelope) bool {
		if e.GetTo() == gone && e.GetStorePing() != nil {
			pings++
		}
		return false
	}
	for i := 0; i < 50; i++ {
		c.step()
	}
	if pings != 0 {
		t.Fatalf("%d pings to the decommissioned store %d in 5 s", pings, gone)
	}
	c.filter = nil
	// A raft message from it is refused.
	leader := c.waitLeader(1)
	meta := c.meta(leader, 1)
	before := c.store(leader).Stats().MalformedMsgs
	c.net.Send(pb.NewEnvelope(gone, leader, &pb.RaftMessage{
		RegionId: 1, FromPeer: &pb.Peer{Id: 99, StoreId: gone}, ToPeer: meta.PeerOnStore(leader),
		RegionEpoch: meta.GetEpoch(), StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
		Message: &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeatResp.Enum(), From: proto.Uint64(99),
			To: proto.Uint64(meta.PeerOnStore(leader).GetId()), Term: proto.Uint64(c.region(leader, 1).Term)},
	}))
	c.deliver()
	if got := c.store(leader).Stats().MalformedMsgs; got != before+1 {
		t.Fatalf("a raft message from the decommissioned store: malformed count %d -> %d, want it refused", before, got)
	}
}

// A removed learner asks PD whether it is still a member; when PD's answer
// is lost, it asks again an election timeout later, not a whole
// StalePeerCheck later (swarm seed 22: an answer lost to the network's 0.7%
// loss kept a stale learner for 20 s more, past the simulator's bound on
// convergence).
func TestStaleLearnerAsksPDAgainWhenTheAnswerIsLost(t *testing.T) {
	c, _, source, keys := moveSetup(t)
	demoted := false
	c.store(source).SetHooks(raftstore.Hooks{MembershipChanged: func(r *pb.Region) {
		if p := r.PeerOnStore(source); p != nil && p.GetRole() == pb.PeerRole_LEARNER && !demoted {
			demoted = true
			c.isolate(source, true)
		}
	}})
	if _, err := c.pd.MoveRegion(1, source, 4); err != nil {
		t.Fatal(err)
	}
	c.waitFor(300, "the source to be demoted to a learner", func() bool { return demoted })
	// Every member applies the removal while the source is cut off, so
	// that none of their GC notices reaches it (a follower hears of the
	// commit by the next tick at the latest).
	c.waitFor(300, "PD's move to finish and every member to apply it", func() bool {
		if len(c.pd.Operators()) > 0 {
			return false
		}
		for _, id := range others(c, source) {
			if c.meta(id, 1).PeerOnStore(source) != nil {
				return false
			}
		}
		return true
	})
	// PD's first answer to the source is lost.
	lost := false
	c.filter = func(e *pb.Envelope) bool {
		if e.GetTo() == source && e.GetRegionByIdResponse() != nil && !lost {
			lost = true
			return true
		}
		return false
	}
	c.isolate(source, false)
	c.waitFor(200, "PD's answer to the source to be lost", func() bool { return lost })
	c.waitFor(30, "the removed learner to be collected", func() bool { return c.region(source, 1) == nil })
	c.waitReplicasOn(1, keys, others(c, source)...)
}

// A removed learner whose GC notice is lost asks PD within a few election
// timeouts, not a whole StalePeerCheck later: it never campaigns, so no
// member hears from it and tells it again, and a store that restarts
// starts the wait over (swarm seed 2207: the notice to a demoted source
// lost to a lossy window, its store crashed twice and restarted as the
// faults healed, and the stale learner asked PD 18 s later, after the
// simulator's 15 s bound on convergence).
func TestRemovedLearnerWhoseGCNoticeIsLostAsksPDSoon(t *testing.T) {
	c, _, source, keys := moveSetup(t)
	// Once the source is demoted to a learner, the group's messages to it
	// are lost (its removal and the GC notice among them); PD still
	// reaches it.
	demoted := false
	c.store(source).SetHooks(raftstore.Hooks{MembershipChanged: func(r *pb.Region) {
		if p := r.PeerOnStore(source); p != nil && p.GetRole() == pb.PeerRole_LEARNER {
			demoted = true
		}
	}})
	c.filter = func(e *pb.Envelope) bool {
		return demoted && e.GetTo() == source && e.GetRaft().GetRegionId() == 1
	}
	if _, err := c.pd.MoveRegion(1, source, 4); err != nil {
		t.Fatal(err)
	}
	c.waitFor(300, "PD's move to finish", func() bool { return len(c.pd.Operators()) == 0 })
	if c.region(source, 1) == nil {
		t.Fatalf("store %d learned of its removal without hearing from its group", source)
	}
	c.stop(source)
	for i := 0; i < 5; i++ {
		c.step()
	}
	c.start(source)
	// StalePeerCheck is 10 s (100 ticks) here: well within it.
	c.waitFor(40, "the removed learner to be collected after its store restarts", func() bool { return c.region(source, 1) == nil })
	c.waitReplicasOn(1, keys, others(c, source)...)
}

// Raft leaves a joint configuration by itself: the leader proposes the
// leave once it applies the change that entered it, but only then. If that
// proposal is dropped (a leadership transfer was in progress, to a voter
// that never answers) and the region has nothing else to apply, the leader
// keeps the region joint for good (found with the simulator's
// confchange.joint.transfer hook: an idle region stayed joint 34 s, until
// the liveness phase wrote to it). The leader proposes the leave again.
func TestIdleRegionLeavesJointConfigurationAfterAFailedTransfer(t *testing.T) {
	c, leader, source, _ := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	src := meta.PeerOnStore(source)
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, base+1, describePeers(meta)+",1000@4:LEARNER", 1, 2, 3, 4)
	// The voter that stays on: the transfer goes to it while it is cut off.
	var third uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != leader && id != source {
			third = id
		}
	}
	transferred := false
	c.store(leader).SetHooks(raftstore.Hooks{MembershipChanged: func(r *pb.Region) {
		if !transferred && r.GetEpoch().GetConfVer() == base+2 { // entered the joint configuration
			transferred = true
			c.isolate(third, true)
			if err := c.store(leader).TransferLeader(1, r.PeerOnStore(third).GetId()); err != nil {
				t.Errorf("transfer: %v", err)
			}
		}
	}})
	c.order(1, change(pb.ChangeType_PROMOTE_LEARNER, 1000, 4), change(pb.ChangeType_DEMOTE_VOTER, src.GetId(), source))
	c.waitFor(100, "the joint configuration", func() bool { return transferred })
	after := strings.Replace(describePeers(meta), fmt.Sprintf("%d@%d:VOTER", src.GetId(), source), fmt.Sprintf("%d@%d:LEARNER", src.GetId(), source), 1) + ",1000@4:VOTER"
	c.waitMeta(1, base+3, after, leader, source, 4) // left it, with nothing written meanwhile
	c.isolate(third, false)
	c.waitMeta(1, base+3, after, 1, 2, 3, 4)
}

// A chunk whose acknowledgement is late is sent again, each time after
// twice as long: on a slow link the acknowledgements are late because the
// link is full, and resending at a fixed pace only fills it more (the
// split-snapshot scenario, store 4 behind a 200 KB/s link: duplicate chunks
// queued for tens of seconds, and snapshots to other stores never started).
func TestSnapshotChunkResendsBackOff(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	c.filter = func(e *pb.Envelope) bool { return e.GetSnapshotAck() != nil }
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	for i := 0; i < 100; i++ { // 10 s: half the snapshot timeout
		c.step()
	}
	// The first chunk waits 0.5 s, then 1, 2, 4 s: 4 resends in 10 s (20
	// at a fixed pace).
	if n := c.store(leader).Stats().SnapshotChunksResent; n > 5 {
		t.Fatalf("%d chunks resent in 10 s without an acknowledgement", n)
	}
	c.filter = nil
	c.waitMeta(1, base+1, describePeers(meta)+",1000@4:LEARNER", 1, 2, 3, 4)
	c.waitReplicas(1, keys)
}

// A learner that applied its snapshot but whose answer to the leader was
// lost catches up as soon as the leader asks again. The leader, still
// waiting on the snapshot, reports it failed after a few election timeouts
// (checkDeliveredSnapshots) and sends a new one at the same index (the
// region is idle); the learner has committed that index already. Refusing
// it, as the store did, failed the transfer, raft asked again, and the
// backoff doubled each time: the learner stayed pending for good, and PD's
// move waited in wait-catch-up (swarm seed 3371, region 29: 16 s after the
// faults healed). Stepped into raft, such a snapshot is answered with the
// learner's commit index, and the leader replicates to it from there.
func TestLearnerWhoseSnapshotAnswerIsLostCatchesUp(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	c.filter = func(e *pb.Envelope) bool {
		m := e.GetRaft().GetMessage()
		if e.GetFrom() != 4 || m.GetFrom() != 1000 || m.GetType() != raftpb.MessageType_MsgAppResp {
			return false
		}
		rs := c.region(4, 1) // lose the answers once the snapshot is in
		return rs != nil && rs.Initialized
	}
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, meta.GetEpoch().GetConfVer()+1, describePeers(meta)+",1000@4:LEARNER", 4)
	c.waitFor(100, "the learner to apply its snapshot", func() bool { return c.keysOf(4, 1) == keys })
	c.filter = nil
	if !c.store(leader).Pending(1, 1000) {
		t.Fatalf("the leader heard from the learner: the test lost nothing")
	}
	// The leader gives up on the delivered snapshot after 4 election
	// timeouts (4 s here); the learner must be caught up soon after.
	c.waitFor(60, "the leader to count the learner caught up", func() bool { return !c.store(leader).Pending(1, 1000) })
	if c.store(4).Stats().SnapshotsCovered == 0 {
		t.Fatalf("the learner was sent no snapshot it had already: the case is not tested")
	}
	c.ok(1, put("zz", "after"))
	c.waitReplicasOn(1, withKeys(keys, "zz"), 4)
}

// A snapshot is refused when its range overlaps a region that became
// initialized on the store after the snapshot's peer was created. The check
// when a placeholder is created (maybeCreatePeer) cannot see it: the
// overlapping region was itself a placeholder then. Store 4 joins region 1
// as a learner; the region's snapshot (all of it, before any split) is
// held back; region 1 splits at "k15", and the new region's leader creates
// its placeholder on store 4 (nothing initialized overlaps it there yet).
// Then the old snapshot lands, so store 4 holds region 1 as ["", +inf),
// and only then does a snapshot of the new region ["k15", +inf) arrive: it
// must be refused, or store 4 holds keys "k15".. in two regions. Once region
// 1's log reaches store 4 it applies the split and takes the new region
// over; both end with their keys.
func TestSnapshotOverlappingARegionInitializedSinceItsPeerIsRefused(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	c := newClusterOf(t, cfg, 4)
	c.waitBootstrap(1)
	var low, high []string
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("k%02d", i)
		c.ok(1, put(k, "v"))
		if k < "k15" {
			low = append(low, k)
		} else {
			high = append(high, k)
		}
	}
	leader := c.waitLeader(1)

	const (
		holdOld  = iota // region 1's first snapshot to store 4 is kept; its traffic to store 4 dropped after it
		blockNew        // the new region's snapshots to store 4 are dropped too
		newSnaps        // they pass; region 1's traffic to store 4 is still dropped
		open            // everything passes
	)
	phase := holdOld
	var held *pb.Envelope
	const newID = 2000 // the test answers the split's AskSplit itself
	var ask *pb.AskSplitRequest
	releasing := false // the held snapshot passes, once
	c.filter = func(e *pb.Envelope) bool {
		if r := e.GetAskSplit(); r != nil && e.GetTo() == pdNode {
			// The test answers for PD, which would refuse: the learner was
			// added behind its back (at a conf_ver it never ordered).
			ask = r
			return true
		}
		if e.GetTo() != 4 || phase == open {
			return false
		}
		region := e.GetRaft().GetRegionId()
		if ch := e.GetSnapshotChunk(); ch != nil {
			region = ch.GetRegionId()
			if region == 1 && held == nil {
				held = proto.Clone(e).(*pb.Envelope)
				return true
			}
			if region == 1 && releasing {
				releasing = false
				return false
			}
		}
		switch {
		case region == 1:
			return held != nil
		case region == newID:
			return e.GetSnapshotChunk() != nil && phase == blockNew
		}
		return false
	}

	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitFor(100, "region 1's snapshot to store 4", func() bool { return held != nil })
	var rs pb.RegionSnapshot
	if err := proto.Unmarshal(held.GetSnapshotChunk().GetMessage().GetSnapshot().GetData(), &rs); err != nil {
		t.Fatal(err)
	}
	if !sameRange(rs.GetRegion(), "", "") || !held.GetSnapshotChunk().GetLast() {
		t.Fatalf("the held snapshot is %v (last chunk: %v), want all of region 1 in one chunk", rs.GetRegion(), held.GetSnapshotChunk().GetLast())
	}

	phase = blockNew
	if err := c.store(leader).RequestSplit(1, []byte("k15")); err != nil {
		t.Fatalf("RequestSplit: %v", err)
	}
	c.waitFor(20, "the leader to ask for split ids", func() bool { return ask != nil })
	peerIDs := make([]uint64, len(ask.GetRegion().GetPeers()))
	for i := range peerIDs {
		peerIDs[i] = newID + 1 + uint64(i)
	}
	c.net.Send(pb.NewEnvelope(pdNode, leader, &pb.AskSplitResponse{RequestId: ask.GetRequestId(), NewRegionId: newID, NewPeerIds: peerIDs}))
	c.waitFor(100, "the split on stores 1-3 and the new region's placeholder on store 4", func() bool {
		return c.splitSeen(1, "", "k15", "", 1, 2, 3) == newID && c.region(4, newID) != nil
	})
	if c.region(4, newID).Initialized {
		t.Fatalf("store 4's peer of region %d is initialized before any snapshot", newID)
	}

	// The old snapshot of region 1 lands on store 4.
	releasing = true
	c.net.Send(held)
	c.waitFor(20, "store 4 to install region 1's old snapshot", func() bool {
		r := c.region(4, 1)
		return r != nil && r.Initialized
	})
	if r := c.region(4, 1).Region; !sameRange(r, "", "") {
		t.Fatalf("store 4 holds region 1 as %v, want all of it (the snapshot from before the split)", r)
	}
	c.checkNoOverlap()

	// The new region's snapshot overlaps it: refused, again and again.
	phase = newSnaps
	refused := c.store(4).Stats().SnapshotsRefused
	c.waitFor(200, "store 4 to refuse a snapshot of the new region", func() bool {
		c.checkNoOverlap()
		return c.store(4).Stats().SnapshotsRefused > refused
	})
	for i := 0; i < 3*cfg.ElectionTicks; i++ {
		c.step()
		c.checkNoOverlap()
	}
	if r := c.region(4, newID); r != nil && r.Initialized {
		t.Fatalf("store 4 took a snapshot of region %d while it holds region 1 as ['', +inf)", newID)
	}

	// Region 1's log reaches store 4: the split applies there.
	phase = open
	c.waitReplicasOn(1, strings.Join(low, ","), 1, 2, 3, 4)
	c.waitReplicasOn(newID, strings.Join(high, ","), 1, 2, 3, 4)
	c.checkNoOverlap()
}

// A membership change that reaches apply at an epoch it was not made for is
// skipped on every replica, even when it is valid for the region as it is
// then. The confchange.propose.repeat hook proposes a change again,
// unchecked: here the learner the change added was removed before the
// repeat, so raft and the change's own checks would take it again, and only
// its epoch (two conf_vers old) says it is stale. Applied, it would bring
// back a peer PD removed, at a conf_ver PD never allowed.
func TestStaleMembershipChangeIsSkippedAtApply(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	peers := describePeers(meta)
	add := &pb.ChangePeers{
		Header:  &pb.RequestHeader{RegionId: 1, RegionEpoch: meta.GetEpoch()},
		Changes: []*pb.PeerChange{change(pb.ChangeType_ADD_LEARNER, 1000, 4)},
	}
	c.order(1, add.GetChanges()...)
	c.waitMeta(1, base+1, peers+",1000@4:LEARNER", 1, 2, 3, 4)
	c.order(1, change(pb.ChangeType_REMOVE_PEER, 1000, 4))
	c.waitMeta(1, base+2, peers, 1, 2, 3)
	c.waitFor(100, "store 4 to destroy its learner", func() bool { return c.region(4, 1) == nil })

	skipped := func() (n uint64) {
		for _, id := range []uint64{1, 2, 3} {
			n += c.store(id).Stats().ConfChangesSkipped
		}
		return n
	}
	before := skipped()
	leader = c.waitLeader(1)
	if err := c.store(leader).ProposeChangePeersUnchecked(1, add); err != nil {
		t.Fatalf("propose the stale change: %v", err)
	}
	c.waitFor(100, "every replica to skip the stale change", func() bool { return skipped() >= before+3 })
	c.ok(1, put("zafter", "1"))
	c.waitReplicasOn(1, withKeys(keys, "zafter"), 1, 2, 3)
	for _, id := range []uint64{1, 2, 3} {
		r := c.region(id, 1).Region
		if r.GetEpoch().GetConfVer() != base+2 || describePeers(r) != peers {
			t.Fatalf("store %d: region 1 is %s at conf_ver %d, want %s at %d", id, describePeers(r), r.GetEpoch().GetConfVer(), peers, base+2)
		}
	}
	if c.region(4, 1) != nil {
		t.Fatal("store 4 has a peer of region 1 again")
	}
}

// A report of its region from before a peer was added, which does not list
// it, says nothing about its removal: only a newer conf_ver could. A GC
// notice delayed from the old epoch reaches the learner a move has just
// added; the learner ignores it, keeps its data and goes on following.
func TestStaleGCNoticeFromBeforeAPeerWasAddedIsIgnored(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	old := c.meta(leader, 1) // conf_ver before the learner is added
	base := old.GetEpoch().GetConfVer()
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitMeta(1, base+1, describePeers(old)+",1000@4:LEARNER", 1, 2, 3, 4)
	c.waitReplicas(1, keys)
	learner := c.meta(4, 1).PeerByID(1000)

	// The old region lists its sender, so the notice passes the checks; it
	// names the learner as recipient, which the old region does not list.
	from := old.PeerOnStore(leader)
	c.sendRaft(leader, 4, &pb.RaftMessage{
		RegionId: 1, FromPeer: from, ToPeer: learner, RegionEpoch: old.GetEpoch(),
		StartKey: old.GetStartKey(), EndKey: old.GetEndKey(), GcRegion: proto.Clone(old).(*pb.Region),
	})
	for i := 0; i < 5; i++ {
		c.step()
	}
	if c.region(4, 1) == nil || c.store(4).Stats().PeersDestroyed != 0 {
		t.Fatalf("store 4 destroyed learner 1000 on a GC notice at conf_ver %d, older than its own %d", base, base+1)
	}
	if c.store(4).Stats().MalformedMsgs != 0 {
		t.Fatal("the stale GC notice was dropped as malformed: it must reach the epoch check to test it")
	}
	c.ok(1, put("zafter", "1"))
	c.waitReplicasOn(1, withKeys(keys, "zafter"), 1, 2, 3, 4)
	if c.store(4).Stats().PeersDestroyed != 0 {
		t.Fatal("store 4 destroyed learner 1000 after all")
	}
}

// PD answers a peer's question with what it knows, and it may not have
// heard yet of the split that made the peer's region (the leader's report
// late or lost): "no such region" then says nothing about an initialized
// peer, which keeps its data and goes on following once a leader reaches
// it. Only a placeholder, which holds nothing, goes on such an answer.
func TestInitializedPeerOfARegionPDDoesNotKnowStays(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	for _, k := range []string{"a", "c", "h", "k"} {
		c.ok(left, put(k, "v"+k))
	}
	leader := c.waitLeader(left)
	cut := others(c, leader)[0]
	// PD never hears of the split: the leader's report and every region
	// heartbeat are lost. Once the split has applied everywhere, store
	// cut hears from no other store (it still reaches PD).
	isolated := false
	var newID uint64
	unknown := 0 // PD's answers to store cut that it knows no region newID
	c.filter = func(e *pb.Envelope) bool {
		if e.GetTo() == pdNode && (e.GetReportSplit() != nil || e.GetRegionHeartbeat() != nil) {
			return true
		}
		if r := e.GetRegionByIdResponse(); r != nil && e.GetTo() == cut && newID != 0 && r.GetRegion() == nil {
			unknown++
		}
		if isolated && e.GetRaft() != nil && (e.GetFrom() == cut || e.GetTo() == cut) {
			return true
		}
		return false
	}
	if err := c.store(leader).RequestSplit(left, []byte("g")); err != nil {
		t.Fatalf("RequestSplit: %v", err)
	}
	c.waitFor(100, "the split to apply on every store", func() bool {
		newID = c.splitSeen(left, "", "g", "m")
		return newID != 0
	})
	isolated = true
	for _, r := range append(c.pd.Regions(), c.pd.PendingRegions()...) {
		if r.GetId() == newID {
			t.Fatalf("PD knows region %d: the test needs it not to", newID)
		}
	}
	before := c.store(cut).Stats().PeersDestroyed
	// Silent for StalePeerCheck, the new region's peer on store cut asks
	// PD, which does not know the region.
	c.waitFor(300, fmt.Sprintf("PD to tell store %d it knows no region %d", cut, newID), func() bool { return unknown > 0 })
	for i := 0; i < 5; i++ {
		c.step()
	}
	if rs := c.region(cut, newID); rs == nil || !rs.Initialized || c.store(cut).Stats().PeersDestroyed != before {
		t.Fatalf("store %d destroyed its peer of region %d, which holds keys h,k, because PD does not know the region yet", cut, newID)
	}
	if got := c.keysOf(cut, newID); got != "h,k" {
		t.Fatalf("store %d's peer of region %d holds %q, want h,k", cut, newID, got)
	}
	// Healed, it follows its leader again.
	isolated = false
	c.ok(newID, put("i", "vi"))
	c.waitReplicas(newID, "h,i,k")
}

// A snapshot at an older epoch than the initialized region it is for is
// refused at its first chunk. Raft would ignore it in practice (it is at
// or below the commit index: the peer reached its newer epoch by applying
// entries past it), but raft knows nothing of epochs: the store must not
// take a region's keys and meta from a state its own has moved past. The
// first chunk of the learner's snapshot is replayed once the learner has
// been promoted (conf_ver one higher).
func TestSnapshotAtAnOlderEpochIsRefused(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	base := c.meta(leader, 1).GetEpoch().GetConfVer()
	var held *pb.Envelope // the first chunk of region 1's snapshot to store 4
	replayed := false
	var answer *pb.SnapshotAck // store 4's answer to the replayed chunk
	c.filter = func(e *pb.Envelope) bool {
		if ch := e.GetSnapshotChunk(); ch != nil && e.GetTo() == 4 && ch.GetRegionId() == 1 && ch.GetSeq() == 0 && held == nil {
			held = proto.Clone(e).(*pb.Envelope)
		}
		if a := e.GetSnapshotAck(); a != nil && replayed && e.GetFrom() == 4 && a.GetSnapshotId() == held.GetSnapshotChunk().GetSnapshotId() {
			answer = proto.Clone(a).(*pb.SnapshotAck)
			return true // the leader has nothing to do with it
		}
		return false
	}
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitReplicasOn(1, keys, 4)
	if held == nil {
		t.Fatal("no snapshot reached store 4")
	}
	c.order(1, change(pb.ChangeType_PROMOTE_LEARNER, 1000, 4))
	c.waitFor(100, "store 4 to apply the promotion", func() bool {
		return c.meta(4, 1).GetEpoch().GetConfVer() == base+2
	})
	var rs pb.RegionSnapshot
	if err := proto.Unmarshal(held.GetSnapshotChunk().GetMessage().GetSnapshot().GetData(), &rs); err != nil {
		t.Fatal(err)
	}
	if got := rs.GetRegion().GetEpoch().GetConfVer(); got != base+1 || !sameRange(rs.GetRegion(), "", "") {
		t.Fatalf("the held snapshot is of %v at conf_ver %d, want all of region 1 at %d", rs.GetRegion(), got, base+1)
	}

	refused := c.store(4).Stats().SnapshotsRefused
	replayed = true
	c.net.Send(held)
	c.deliver()
	if answer == nil {
		t.Fatal("store 4 did not answer the replayed chunk")
	}
	if !answer.GetRefused() || !strings.Contains(answer.GetReason(), "region here is at") || c.store(4).Stats().SnapshotsRefused != refused+1 {
		t.Fatalf("store 4 answered a snapshot at conf_ver %d, its region being at %d, with %v (refused %d, was %d): want it refused for its epoch",
			base+1, base+2, answer, c.store(4).Stats().SnapshotsRefused, refused)
	}
	if got := c.meta(4, 1).GetEpoch().GetConfVer(); got != base+2 {
		t.Fatalf("store 4's region 1 is at conf_ver %d after the stale snapshot, want %d", got, base+2)
	}
	c.filter = nil
	c.ok(1, put("zafter", "1"))
	c.waitReplicasOn(1, withKeys(keys, "zafter"), 1, 2, 3, 4)
}
