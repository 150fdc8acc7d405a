package raftstore_test

// Adversarial review (branch review-hard). Each test here demonstrates a
// fault found in review; they are expected to FAIL on the code as reviewed.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// outsider is a node id that is no store, no PD and no client of the
// cluster: anything that can reach a store's transport.
const outsider = 4242

// roundCatching runs one delivery round and turns a panic of a store into a
// test failure that names it.
func (c *cluster) roundCatching(what string) {
	c.t.Helper()
	defer func() {
		if r := recover(); r != nil {
			c.t.Fatalf("%s: a store panicked: %v", what, r)
		}
	}()
	c.round()
}

// followerOf returns a store that holds a replica of rid and does not lead it.
func (c *cluster) followerOf(rid, leader uint64) uint64 {
	for _, id := range c.ids {
		if id != leader && c.region(id, rid) != nil {
			return id
		}
	}
	c.t.Fatalf("region %d has no follower", rid)
	return 0
}

// crc32c as the snapshot streamer computes it (snapshotChecksum).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func snapCRC(crc uint32, key, value []byte, version uint64) uint32 {
	var b [binary.MaxVarintLen64]byte
	crc = crc32.Update(crc, castagnoli, b[:binary.PutUvarint(b[:], uint64(len(key)))])
	crc = crc32.Update(crc, castagnoli, key)
	crc = crc32.Update(crc, castagnoli, b[:binary.PutUvarint(b[:], uint64(len(value)))])
	crc = crc32.Update(crc, castagnoli, value)
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], version)
	return crc32.Update(crc, castagnoli, v[:])
}

func putCmd(t *testing.T, rid uint64, epoch *pb.Epoch, k, v string) []byte {
	t.Helper()
	b, err := proto.Marshal(&pb.RaftCommand{Header: &pb.RequestHeader{RegionId: rid, RegionEpoch: epoch},
		Cmd: &pb.RaftCommand_Put{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// 1. Two complete snapshots of one region in one ready round.
//
// deliverSnapshot records the received keys in snapIn.ready[region] (one
// slot per region) and steps the MsgSnap. When a newer snapshot is stepped
// (raft restores it) and then, before the next Flush, an older one completes
// (a network duplicate or a delayed copy of an earlier transfer, or the old
// leader's transfer), the older one overwrites the slot while raft ignores
// it. The Ready carries the newer snapshot, takeReceivedSnapshot finds the
// older index, and Flush fails: the store stops (fail-stop) on a message
// pattern an ordinary lossy, duplicating network produces.
func TestOlderSnapshotCompletingAfterNewerOneInSameRoundDoesNotStopStore(t *testing.T) {
	cfg := defaultConfig()
	cfg.LogCompactEntries = 10
	cfg.LogKeepEntries = 2
	c := newCluster(t, cfg)
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	f := c.followerOf(1, leader)

	// Round one: f falls behind the compacted log and catches up by a
	// snapshot; every chunk sent to f is recorded.
	var chunks []*pb.Envelope
	record := func(e *pb.Envelope) bool {
		if e.GetTo() == f && e.GetSnapshotChunk() != nil {
			chunks = append(chunks, proto.Clone(e).(*pb.Envelope))
		}
		return false
	}
	c.filter = record
	c.isolate(f, true)
	for i := 0; i < 2*cfg.ElectionTicks; i++ {
		c.step() // the leader sees f silent: it no longer keeps the log for it
	}
	for i := 0; i < 30; i++ {
		c.ok(1, put(fmt.Sprintf("a%02d", i), "v"))
	}
	c.isolate(f, false)
	c.waitFor(200, "f to catch up by snapshot 1", func() bool {
		return c.store(f).Stats().SnapshotsApplied == 1 && c.region(f, 1).Applied == c.region(leader, 1).Applied
	})
	if len(chunks) != 1 || !chunks[0].GetSnapshotChunk().GetLast() {
		t.Fatalf("want one single-chunk snapshot, recorded %d chunks", len(chunks))
	}
	old := chunks[0]

	// Round two: f falls behind again; the new snapshot's chunk is held.
	var held []*pb.Envelope
	c.filter = func(e *pb.Envelope) bool {
		if e.GetTo() == f && e.GetSnapshotChunk() != nil {
			held = append(held, e)
			return true
		}
		return false
	}
	c.isolate(f, true)
	for i := 0; i < 2*cfg.ElectionTicks; i++ {
		c.step()
	}
	for i := 0; i < 30; i++ {
		c.ok(1, put(fmt.Sprintf("b%02d", i), "v"))
	}
	c.isolate(f, false)
	c.waitFor(200, "the leader to send snapshot 2", func() bool { return len(held) > 0 })
	c.filter = nil
	c.deliver()
	// The new snapshot completes, and in the same batch a late copy of the
	// old one arrives.
	c.net.q = append(c.net.q, held[0], old)
	c.roundCatching("newer snapshot then a late copy of an older one")
	c.deliver()
	if got, want := c.keysOf(f, 1), c.keysOf(leader, 1); got != want {
		t.Fatalf("f holds %q, leader %q", got, want)
	}
}

// ---------------------------------------------------------------------------
// 2. A streamed snapshot whose description disagrees with its chunks.
//
// onSnapshotChunk checks the pairs against the count and crc the LAST CHUNK
// claims, but storage.ApplySnapshot checks them against TotalPairs of the
// RegionSnapshot inside the MsgSnap (the first chunk). Nothing compares the
// two at the boundary, so a snapshot whose description says 5 pairs and
// whose chunks carry 1 (with a matching last-chunk count and crc) passes
// every check, is stepped into raft, and fails the next Flush: one message
// stops the store.
func TestSnapshotWhoseDescriptionDisagreesWithItsChunksIsRefused(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	f := c.followerOf(1, leader)
	meta := c.meta(leader, 1)
	ls := c.region(leader, 1)
	var voters []uint64
	for _, p := range meta.GetPeers() {
		voters = append(voters, p.GetId())
	}
	desc, err := proto.Marshal(&pb.RegionSnapshot{Region: meta, Streamed: true, TotalPairs: 5})
	if err != nil {
		t.Fatal(err)
	}
	k, v := []byte("forged"), []byte("x")
	c.net.Send(pb.NewEnvelope(leader, f, &pb.SnapshotChunk{
		RegionId: 1, FromPeer: meta.PeerOnStore(leader), ToPeer: meta.PeerOnStore(f), SnapshotId: 1 << 60, Seq: 0,
		Message: &raftpb.Message{
			Type: raftpb.MessageType_MsgSnap.Enum(), From: proto.Uint64(ls.PeerID), To: proto.Uint64(meta.PeerOnStore(f).GetId()),
			Term: proto.Uint64(ls.Term),
			Snapshot: &raftpb.Snapshot{Data: desc, Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(ls.Applied + 100), Term: proto.Uint64(ls.Term), ConfState: &raftpb.ConfState{Voters: voters}}},
		},
		Pairs: []*pb.KvPair{{Key: k, Value: v, Version: 1}},
		Last:  true, Checksum: snapCRC(0, k, v, 1), TotalPairs: 1,
	}))
	c.roundCatching("inconsistent snapshot")
	c.deliver() // fails here (flush store f: ... streamed snapshot has 1 pairs, its data says 5)
	if c.store(f).Stats().SnapshotsRefused == 0 {
		t.Fatal("the inconsistent snapshot was not refused")
	}
}

// ---------------------------------------------------------------------------
// 3. The membership check's escape hatch lets anyone write.
//
// checkRaftMessage accepts a sender that is not a peer of the region when
// the envelope's region_epoch claims a newer conf_ver (a member this peer
// has not heard of yet). The envelope's epoch is the sender's word, and the
// only identity check is that from_peer.store_id equals the transport
// sender. So any node that can reach a store - here node 4242, which is not
// a store at all - can claim conf_ver+1 and step an append at a higher
// term. The follower takes the forged entry, commits it (the append's commit
// covers it) and applies it: a write no client proposed and no KV check saw
// (it could as well exceed MaxValueBytes), on one replica only.
func TestNonMemberCannotAppendByClaimingANewerConfVer(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	f := c.followerOf(1, leader)
	meta := c.meta(f, 1)
	fs := c.region(f, 1)
	epoch := proto.Clone(meta.GetEpoch()).(*pb.Epoch)
	epoch.ConfVer++
	forger := &pb.Peer{Id: 777, StoreId: outsider}
	term := fs.Term + 100
	c.net.Send(pb.NewEnvelope(outsider, f, &pb.RaftMessage{
		RegionId: 1, FromPeer: forger, ToPeer: meta.PeerOnStore(f), RegionEpoch: epoch,
		StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(),
		Message: &raftpb.Message{
			Type: raftpb.MessageType_MsgApp.Enum(), From: proto.Uint64(777), To: proto.Uint64(meta.PeerOnStore(f).GetId()),
			Term: proto.Uint64(term), Index: proto.Uint64(fs.Applied), LogTerm: proto.Uint64(fs.Term), Commit: proto.Uint64(fs.Applied + 1),
			Entries: []*raftpb.Entry{{Index: proto.Uint64(fs.Applied + 1), Term: proto.Uint64(term), Type: raftpb.EntryType_EntryNormal.Enum(),
				Data: putCmd(t, 1, meta.GetEpoch(), "evil", strings.Repeat("x", 10))}},
		},
	}))
	c.roundCatching("forged append from a non-store node")
	c.deliver()
	if keys := c.keysOf(f, 1); strings.Contains(keys, "evil") {
		t.Fatalf("node %d (not a store, not a member) wrote key %q into store %d's replica: keys now %q; store %d is at term %d",
			outsider, "evil", f, keys, f, c.region(f, 1).Term)
	}
}

// 3b. The same escape hatch in GC notices: checkGCNotice only requires the
// notice's region to list the sender, and the region is the sender's own
// text. A non-member lists itself, raises conf_ver by one and leaves the
// target out: the target destroys its peer and writes a durable tombstone.
// Two notices take a three-replica region below quorum for good.
func TestForgedGCNoticeCannotDestroyMembers(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	meta := c.meta(leader, 1)
	forger := &pb.Peer{Id: 777, StoreId: outsider}
	var victims []uint64
	for _, id := range c.ids {
		if id == leader {
			continue
		}
		victims = append(victims, id)
		g := proto.Clone(meta).(*pb.Region)
		g.Epoch.ConfVer++
		g.Peers = []*pb.Peer{proto.Clone(meta.PeerOnStore(leader)).(*pb.Peer), forger}
		c.net.Send(pb.NewEnvelope(outsider, id, &pb.RaftMessage{
			RegionId: 1, FromPeer: forger, ToPeer: meta.PeerOnStore(id), RegionEpoch: g.GetEpoch(), GcRegion: g,
		}))
	}
	c.deliver()
	for _, id := range victims {
		if c.region(id, 1) == nil {
			t.Errorf("store %d destroyed its peer of region 1 on a GC notice from node %d, which is no store", id, outsider)
		}
	}
}

// ---------------------------------------------------------------------------
// 4. The heartbeat commit check looks at the wrong log.
//
// checkRaftMessage bounds a heartbeat's commit by the peer's PERSISTED last
// index (storage), but raft commits against its own log, which includes the
// unstable part: an append stepped earlier in the same round can truncate
// raft's log below what storage still holds. A heartbeat arriving in the
// same round then passes the check and raft panics (commitTo out of
// range). Both messages below come from the leader's store, as the leader's
// peer, at the next term.
func TestHeartbeatCheckUsesRaftsLogNotStorage(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	c.ok(1, put("a", "1"))
	f := c.followerOf(1, leader)
	meta := c.meta(f, 1)
	fs := c.region(f, 1)
	lp, fp := meta.PeerOnStore(leader), meta.PeerOnStore(f)
	n, term := fs.Applied, fs.Term
	c.mute[f] = true // f's answers to the crafted appends must not reach the leader
	raftTo := func(m *raftpb.Message) *pb.Envelope {
		m.From, m.To = proto.Uint64(lp.GetId()), proto.Uint64(fp.GetId())
		return pb.NewEnvelope(leader, f, &pb.RaftMessage{RegionId: 1, FromPeer: lp, ToPeer: fp, RegionEpoch: meta.GetEpoch(),
			StartKey: meta.GetStartKey(), EndKey: meta.GetEndKey(), Message: m})
	}
	ent := func(i, t uint64) *raftpb.Entry {
		return &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(t), Type: raftpb.EntryType_EntryNormal.Enum()}
	}
	// f persists two uncommitted entries at the current term.
	c.net.q = append(c.net.q, raftTo(&raftpb.Message{Type: raftpb.MessageType_MsgApp.Enum(), Term: proto.Uint64(term),
		Index: proto.Uint64(n), LogTerm: proto.Uint64(term), Commit: proto.Uint64(n), Entries: []*raftpb.Entry{ent(n+1, term), ent(n+2, term)}}))
	c.roundCatching("two uncommitted entries")
	// Same round: an append of the next term cuts n+2 from raft's log (not
	// yet from storage), then a heartbeat commits n+2.
	c.net.q = append(c.net.q,
		raftTo(&raftpb.Message{Type: raftpb.MessageType_MsgApp.Enum(), Term: proto.Uint64(term + 1),
			Index: proto.Uint64(n), LogTerm: proto.Uint64(term), Commit: proto.Uint64(n), Entries: []*raftpb.Entry{ent(n+1, term+1)}}),
		raftTo(&raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), Term: proto.Uint64(term + 1), Commit: proto.Uint64(n + 2)}))
	c.roundCatching("truncating append then heartbeat")
}

// ---------------------------------------------------------------------------
// 5. Placeholders on demand, never collected.
//
// maybeCreatePeer creates a durable, raft-running placeholder for any region
// id when a heartbeat/append/vote names a peer on this store, carries a
// non-zero version and a range that overlaps no local initialized region -
// which, on a store that does not hold the whole keyspace, is any range in
// a gap. The sender is not required to be a store (only from_peer.store_id
// == transport sender). Each placeholder is a region record in the engine
// (in every checkpoint), a RawNode ticked every tick, and a RegionByID
// request to PD every StalePeerCheck; PD does not answer those (see
// core/pd TestPDAnswersRegionByID), and even an answer for an unknown
// region id is ignored by onRegionByIDResponse, so they live forever.
func TestOutsiderCannotCreatePlaceholdersAtWill(t *testing.T) {
	c := newClusterOf(t, defaultConfig(), 4)
	c.waitBootstrap(1)
	const n = 200
	for i := uint64(0); i < n; i++ {
		rid := 100000 + i
		c.net.Send(pb.NewEnvelope(outsider, 4, &pb.RaftMessage{
			RegionId: rid, FromPeer: &pb.Peer{Id: 1 << 40, StoreId: outsider}, ToPeer: &pb.Peer{Id: rid, StoreId: 4},
			RegionEpoch: &pb.Epoch{ConfVer: 1 << 60, Version: 1},
			Message: &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(1 << 40), To: proto.Uint64(rid),
				Term: proto.Uint64(1)},
		}))
	}
	c.deliver()
	for i := 0; i < 300; i++ { // three stale-peer checks
		c.step()
	}
	c.stop(4)
	c.start(4)
	if got := len(c.store(4).Regions()); got != 0 {
		t.Fatalf("node %d (no store) made store 4 create %d placeholder peers; after 30 s and a restart it still holds %d (PlaceholderPeers %d)",
			outsider, n, got, c.store(4).Stats().PlaceholderPeers)
	}
}

// ---------------------------------------------------------------------------
// 6. A removed learner that missed its removal is never collected.
//
// docs/move.md: a peer that missed its own removal finds out by a GC notice
// (a member hears from it at an older epoch) or, after hearing from no
// leader for StalePeerCheck, by asking PD. A learner never campaigns, so it
// never sends a member anything and gets no GC notice; and raft never
// clears a learner's leader (only promotable peers time out an election),
// so checkStale's "p.leader != 0" keeps it from ever asking PD. In a move,
// the source is demoted to a learner before it is removed (steps 4-6): a
// source cut off at the last step keeps its peer, its keys and a raft node
// forever (sim.World.checkMembers flags exactly this). (Were it to ask, PD
// on main does not answer RegionByIDRequest either: core/pd
// TestPDAnswersRegionByID.)
func TestRemovedLearnerThatMissedItsRemovalIsCollected(t *testing.T) {
	c, _, source, keys := moveSetup(t)
	// PD moves the source's replica to store 4; the source is cut off once
	// it is demoted to a learner, so it never hears of its removal.
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
	c.waitFor(300, "PD's move to finish", func() bool { return len(c.pd.Operators()) == 0 })
	c.isolate(source, false)
	c.waitFor(400, "the removed learner to be collected", func() bool { return c.region(source, 1) == nil })
	if n := c.store(source).Stats().PeersDestroyed; n != 1 {
		t.Fatalf("store %d destroyed %d peers", source, n)
	}
	c.waitReplicasOn(1, keys, others(c, source)...)
}

// ---------------------------------------------------------------------------
// 7. A store whose learner was removed before its snapshot arrived can never
// hold that region again.
//
// The learner's placeholder (created by the leader's first append) is not
// collected: it gets no GC notice (it never messages a member), and its
// RegionByID question goes unanswered (core/pd TestPDAnswersRegionByID).
// When PD adds the store back with a new peer id (the usual retry of a move
// whose operator timed out), routeRaftMessage drops every message for the
// new id ("to_peer != p.id": StalePeerMsgs) and checkSnapshotFor refuses its
// snapshot, since the store already "has" the region under the old id.
// Nothing ever replaces a placeholder by a newer peer of the same region.
func TestStoreCanBeAddedBackAfterItsLearnerWasRemovedBeforeCatchingUp(t *testing.T) {
	c, leader, _, keys := moveSetup(t)
	meta := c.meta(leader, 1)
	base := meta.GetEpoch().GetConfVer()
	c.filter = func(e *pb.Envelope) bool { return e.GetTo() == 4 && e.GetSnapshotChunk() != nil }
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitFor(100, "a placeholder for learner 1000 on store 4", func() bool {
		rs := c.region(4, 1)
		return rs != nil && rs.PeerID == 1000
	})
	// Store 4 is cut off while the operator gives up, and stays so until
	// the leader's transfer to the removed learner times out (20 election
	// timeouts); otherwise a resent chunk of it would still initialize the
	// placeholder, which would then be told it is gone.
	c.isolate(4, true)
	c.filter = nil
	c.order(1, change(pb.ChangeType_REMOVE_PEER, 1000, 4))
	c.waitMeta(1, base+2, describePeers(meta), leader)
	for i := 0; i < 250; i++ {
		c.step()
	}
	c.isolate(4, false)
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1001, 4)) // and tries again
	c.waitMeta(1, base+3, describePeers(meta)+",1001@4:LEARNER", leader)
	for i := 0; i < 300 && !(c.region(4, 1) != nil && c.region(4, 1).PeerID == 1001 && c.keysOf(4, 1) == keys); i++ {
		c.step()
	}
	if rs := c.region(4, 1); rs == nil || rs.PeerID != 1001 || c.keysOf(4, 1) != keys {
		var peer uint64
		if rs != nil {
			peer = rs.PeerID
		}
		st := c.store(4).Stats()
		t.Fatalf("30 s after learner 1001 was added, store 4 still holds peer %d of region 1 (keys %q); store 4 dropped %d messages for another peer id, refused %d snapshots, destroyed %d peers",
			peer, c.keysOf(4, 1), st.StalePeerMsgs, st.SnapshotsRefused, st.PeersDestroyed)
	}
}

// ---------------------------------------------------------------------------
// 8. The value size limit counts the value, not what is proposed.
//
// KvRequest.CheckSizes bounds the key and the value, but propose() puts the
// request's PutRequest and RequestHeader messages, as decoded, into the
// raft command, and protobuf-go keeps unknown fields through decode and
// re-encode. A client can attach any number of bytes as an unknown field
// to a put with a one-byte value: the request passes every check, and the
// bytes go into the raft log, every replica's WAL and every append. Past
// the engine's MaxBatchBytes (256 MiB, not configurable from raftstore) the
// leader's next Sync fails with ErrBatchTooLarge and the store stops
// (fail-stop) on one client request; below it, the MaxValueBytes limit and
// the 1 MiB message size are simply not limits.
func TestUnknownFieldsDoNotBypassTheValueLimit(t *testing.T) {
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	before := c.store(leader).EngineStats().RecordBytes
	pad := make([]byte, 9<<20) // over the 8 MiB value limit
	resp := c.ok(1, func(r *pb.KvRequest) {
		p := &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}
		p.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 1999, protowire.BytesType), pad))
		r.Op = &pb.KvRequest_Put{Put: p}
	})
	grew := c.store(leader).EngineStats().RecordBytes - before
	if resp.GetRegionError() == nil && grew > 8<<20 {
		t.Fatalf("a put with a 1-byte value and %d bytes of unknown fields was answered %v; the leader's WAL grew by %d bytes (MaxValueBytes %d)",
			len(pad), resp.GetResult(), grew, 8<<20)
	}
}

// bigTest skips a test that needs gigabytes of memory unless
// REVIEW_HARD_BIG=1 (the machine is shared).
func bigTest(t *testing.T, rss string) {
	if os.Getenv("REVIEW_HARD_BIG") != "1" {
		t.Skipf("needs about %s of memory: run with REVIEW_HARD_BIG=1", rss)
	}
}

// 8b. The same as one request that stops the leader: 260 MiB of unknown
// fields make one entry whose WAL update is over MaxBatchBytes (256 MiB);
// the leader's Sync fails with ErrBatchTooLarge and the store stops.
// (About 1.9 GB of memory, 2 s.)
func TestOneClientPutCannotStopTheLeader(t *testing.T) {
	bigTest(t, "2 GB")
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	req := &pb.KvRequest{Header: c.header(leader, 1)}
	p := &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}
	p.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 1999, protowire.BytesType), make([]byte, 260<<20)))
	req.Op = &pb.KvRequest_Put{Put: p}
	c.send(leader, req)
	c.deliver() // fails: flush store <leader>: ... wal batch too large
}

// ---------------------------------------------------------------------------
// 9. A follower catching up on legal 8 MiB values stops.
//
// Region.Append queues all of a Ready's entries as ONE RegionUpdate, and
// pendingBatches splits a round into WAL records only between updates, so
// one update over MaxBatchBytes (256 MiB) fails the Sync (ErrBatchTooLarge)
// and stops the store. A follower's Ready holds every entry of every append
// it received since its last round; raft is configured with
// MaxInflightMsgs 256 and no MaxInflightBytes, and an entry may be 8 MiB
// (MaxValueBytes), so a leader catching a follower up sends it hundreds of
// MiB at once. Here 33 puts of legal 8 MiB values written while a follower
// was away make that follower fail its first catch-up round ("wal batch 6
// is 268436906 bytes, over the 268435456 limit"); on restart it is sent the
// same window again. (About 7.7 GB of memory and a minute: gated.)
func TestFollowerCatchingUpOnLargeLegalValuesDoesNotStop(t *testing.T) {
	bigTest(t, "8 GB")
	c := newCluster(t, defaultConfig())
	c.waitBootstrap(1)
	leader := c.waitLeader(1)
	f := c.followerOf(1, leader)
	c.isolate(f, true)
	v := strings.Repeat("v", 8<<20) // exactly MaxValueBytes
	for i := 0; i < 33; i++ {
		c.ok(1, put(fmt.Sprintf("k%02d", i), v))
	}
	c.isolate(f, false)
	c.waitFor(100, "the follower to catch up", func() bool { return c.region(f, 1).Applied == c.region(leader, 1).Applied })
}

// ---------------------------------------------------------------------------
// 10. A snapshot acknowledged and then dropped leaves its follower starved.
//
// onSnapshotChunk acknowledges the last chunk (ack(false, "")) BEFORE
// deliverSnapshot runs its second round of checks; when those refuse (the
// store changed during the transfer: here another region now overlaps),
// the snapshot is dropped with no refusal sent. The sender counts the
// transfer as sent and never tells raft anything (ReportSnapshot is called
// only on failure), so raft's progress for that peer stays in
// StateSnapshot - paused - until the follower answers the MsgSnap, which it
// never will. The learner is never caught up while that leader leads.
//
// Scenario (honest): a learner is being added to region 1 on store 4 while
// region 1 splits. The old, whole-range snapshot is still streaming when
// the new right region's small snapshot initializes [k15,+inf) on store 4;
// the last chunk of the old one is then acked and dropped for overlap.
func TestSnapshotRefusedAfterItsLastChunkIsReportedToTheSender(t *testing.T) {
	c, leader, _, _ := moveSetup(t)
	var ask *pb.AskSplitRequest
	hold := true
	c.filter = func(e *pb.Envelope) bool {
		if a := e.GetAskSplit(); a != nil { // the test plays PD for the split
			ask = a
			return true
		}
		ch := e.GetSnapshotChunk()
		return hold && ch != nil && e.GetTo() == 4 && ch.GetRegionId() == 1 && ch.GetSeq() >= 1
	}
	c.order(1, change(pb.ChangeType_ADD_LEARNER, 1000, 4))
	c.waitFor(100, "region 1's snapshot to store 4 to start", func() bool {
		return c.region(4, 1) != nil && c.store(leader).Stats().SnapshotsStarted > 0
	})
	if err := c.store(leader).RequestSplit(1, []byte("k15")); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	if ask == nil {
		t.Fatal("no AskSplit")
	}
	c.net.Send(pb.NewEnvelope(pdNode, leader, &pb.AskSplitResponse{RequestId: ask.GetRequestId(), NewRegionId: 500, NewPeerIds: []uint64{501, 502, 503, 504}}))
	c.waitFor(200, "store 4 to hold the right half, initialized", func() bool {
		rs := c.region(4, 500)
		return rs != nil && rs.Initialized
	})
	hold = false
	for i := 0; i < 300 && !c.region(4, 1).Initialized; i++ {
		c.step()
	}
	if rs := c.region(4, 1); !rs.Initialized {
		ls := c.store(leader).Stats()
		t.Fatalf("30 s later learner 1000 of region 1 on store 4 is still empty: store 4 refused %d snapshots, the leader counts %d sent, %d failed, %d started",
			c.store(4).Stats().SnapshotsRefused, ls.SnapshotsSent, ls.SnapshotsFailed, ls.SnapshotsStarted)
	}
}
