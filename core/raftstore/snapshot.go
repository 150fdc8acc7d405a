package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/storage"
)

// Snapshot streaming. When raft wants to send a peer a snapshot, the raft
// MsgSnap carries only a description of it (region meta, key count, bytes);
// the keys stream from the leader's store in SnapshotChunks of bounded size,
// read from a copy-on-write image of the region taken when raft asked for
// the snapshot. The sender keeps one chunk in flight per transfer (the next
// one is read from the image when the previous is acknowledged), so its
// memory is bounded by the chunk size whatever the region's size; a chunk
// without an acknowledgement is sent again, and a transfer that makes no
// progress for Config.SnapshotTimeout fails: raft is told, and that peer
// gets no new snapshot for a backoff that doubles with each failure. At most
// Config.MaxSnapshotsOut transfers run at once per store, and the receiver
// takes at most Config.MaxSnapshotsIn at once; others wait (raft asks again).
//
// The first chunk carries the MsgSnap, so the receiver checks the snapshot
// before taking any data: the same rules as any raft message, the range
// must overlap no other region here, and the region here must not have a
// newer epoch. The last chunk carries the checksum of all pairs. Only when
// every chunk has arrived, in order, and the checksum matches, is the MsgSnap
// stepped into raft, after the same checks once more; the keys are then
// applied with the snapshot as one durable record before the peer answers.

// snapshotChecksum folds one pair into the running crc32c of a snapshot.
func snapshotChecksum(crc uint32, key, value []byte, version uint64) uint32 {
	var b [binary.MaxVarintLen64]byte
	crc = crc32.Update(crc, crcTable, b[:binary.PutUvarint(b[:], uint64(len(key)))])
	crc = crc32.Update(crc, crcTable, key)
	crc = crc32.Update(crc, crcTable, b[:binary.PutUvarint(b[:], uint64(len(value)))])
	crc = crc32.Update(crc, crcTable, value)
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], version)
	return crc32.Update(crc, crcTable, v[:])
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// peerKey names one peer of one region.
type peerKey struct{ region, peer uint64 }

// outgoingSnapshot is one transfer from this store.
type outgoingSnapshot struct {
	id       uint64
	key      peerKey
	from, to *pb.Peer
	msg      *raftpb.Message
	img      *storage.Image
	next     []byte // first key of the chunk after the one in flight
	done     bool   // the chunk in flight is the last
	seq      uint64
	chunk    *pb.SnapshotChunk // in flight, kept to send again
	sentAt   time.Time
	resends  int       // of the chunk in flight: each waits twice as long as the one before
	progress time.Time // last acknowledgement (or the start)
	crc      uint32
	pairs    uint64
	bytes    uint64
}

type snapBackoff struct {
	failures int
	until    time.Time
}

// snapshotSender runs the store's outgoing transfers.
type snapshotSender struct {
	nextID  uint64
	out     map[uint64]*outgoingSnapshot // by snapshot id
	backoff map[peerKey]*snapBackoff
	failed  []peerKey // to report to raft after the ready round
	// delivered: transfers whose every chunk was acknowledged, by when;
	// the peer must now answer raft (having applied the snapshot) or the
	// snapshot counts as failed (it crashed before applying it, say).
	delivered map[peerKey]time.Time
}

func newSnapshotSender() *snapshotSender {
	return &snapshotSender{out: map[uint64]*outgoingSnapshot{}, backoff: map[peerKey]*snapBackoff{}, delivered: map[peerKey]time.Time{}}
}

// ids returns the transfer ids in order.
func (ss *snapshotSender) ids() []uint64 {
	ids := make([]uint64, 0, len(ss.out))
	for id := range ss.out {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// startSnapshot begins streaming the snapshot of raft's MsgSnap m to peer
// to, or defers it (raft is told the snapshot failed and asks again later)
// when that peer is backing off, too many transfers run, or the image is
// gone.
func (s *Store) startSnapshot(p *peer, to *pb.Peer, m *raftpb.Message) {
	ss := s.snapOut
	key := peerKey{p.regionID(), to.GetId()}
	now := s.now()
	for _, id := range ss.ids() { // a new snapshot for a peer replaces an older one
		if ss.out[id].key == key {
			delete(ss.out, id)
		}
	}
	if b := ss.backoff[key]; b != nil && now.Before(b.until) {
		s.stats.SnapshotsDeferred++
		ss.failed = append(ss.failed, key)
		return
	}
	if len(ss.out) >= s.cfg.MaxSnapshotsOut {
		s.stats.SnapshotsDeferred++
		ss.failed = append(ss.failed, key)
		return
	}
	img := p.region.SnapshotImage(m.GetSnapshot().GetMetadata().GetIndex())
	if img == nil {
		s.log.Warn("no image for snapshot", "region", p.regionID(), "index", m.GetSnapshot().GetMetadata().GetIndex())
		s.stats.SnapshotsDeferred++
		ss.failed = append(ss.failed, key)
		return
	}
	ss.nextID++
	t := &outgoingSnapshot{
		id:       s.incarnation<<32 | ss.nextID&(1<<32-1),
		key:      key,
		from:     p.self(),
		to:       to.CloneVT(),
		msg:      m,
		img:      img,
		progress: now,
	}
	ss.out[t.id] = t
	s.stats.SnapshotsStarted++
	if pp := p.region.Meta().PeerByID(to.GetId()); pp != nil && pp.GetRole() == pb.PeerRole_LEARNER {
		s.bug.Reach(buggify.SnapshotToLearner)
	}
	if h := s.hooks.SnapshotStarted; h != nil {
		h(p.regionID(), to.GetStoreId(), img.Data.Bytes())
	}
	s.sendChunk(t, s.nextChunk(t))
}

// nextChunk reads the next chunk of t from its image.
func (s *Store) nextChunk(t *outgoingSnapshot) *pb.SnapshotChunk {
	c := &pb.SnapshotChunk{RegionId: t.key.region, FromPeer: t.from, ToPeer: t.to, SnapshotId: t.id, Seq: t.seq}
	if t.seq == 0 {
		c.Message = t.msg
	}
	size := 0
	t.done = true
	t.img.Data.AscendFrom(t.next, func(it kv.Item) bool {
		if size >= s.cfg.SnapshotChunkBytes && len(c.Pairs) > 0 {
			t.next, t.done = it.Key, false
			return false
		}
		c.Pairs = append(c.Pairs, &pb.KvPair{Key: it.Key, Value: it.Value, Version: it.Version})
		size += len(it.Key) + len(it.Value) + 8
		t.crc = snapshotChecksum(t.crc, it.Key, it.Value, it.Version)
		t.pairs++
		return true
	})
	t.bytes += uint64(size)
	if t.done {
		c.Last, c.Checksum, c.TotalPairs = true, t.crc, t.pairs
	}
	return c
}

func (s *Store) sendChunk(t *outgoingSnapshot, c *pb.SnapshotChunk) {
	if t.chunk != c {
		t.resends = 0
	}
	t.chunk, t.sentAt = c, s.now()
	s.stats.SnapshotChunksSent++
	if s.bug.Fire(buggify.SnapChunkDrop) {
		return // lost: sent again after snapshotResendAfter
	}
	s.send(t.to.GetStoreId(), c)
	if s.bug.Fire(buggify.SnapChunkRepeat) {
		s.send(t.to.GetStoreId(), c)
	}
}

// onSnapshotAck moves a transfer on: the next chunk, or done.
func (s *Store) onSnapshotAck(sender uint64, a *pb.SnapshotAck) {
	t := s.snapOut.out[a.GetSnapshotId()]
	if t == nil || t.to.GetStoreId() != sender || t.key.region != a.GetRegionId() {
		return // a late or duplicate ack of a finished or failed transfer
	}
	if a.GetRefused() {
		s.failSnapshot(t, "refused: "+a.GetReason())
		return
	}
	if a.GetSeq() != t.seq {
		return
	}
	t.progress = s.now()
	if t.done {
		delete(s.snapOut.out, t.id)
		delete(s.snapOut.backoff, t.key)
		s.snapOut.delivered[t.key] = s.now()
		s.stats.SnapshotsSent++
		s.stats.SnapshotBytesSent += t.bytes
		if h := s.hooks.SnapshotSent; h != nil {
			h(t.key.region, t.to.GetStoreId(), t.bytes)
		}
		return
	}
	t.seq++
	s.sendChunk(t, s.nextChunk(t))
}

// failSnapshot ends a transfer: raft is told so that it sends a fresh
// snapshot later, and the peer backs off.
func (s *Store) failSnapshot(t *outgoingSnapshot, why string) {
	delete(s.snapOut.out, t.id)
	s.stats.SnapshotsFailed++
	b := s.snapOut.backoff[t.key]
	if b == nil {
		b = &snapBackoff{}
		s.snapOut.backoff[t.key] = b
	}
	b.failures++
	d := s.cfg.ElectionTick() << min(b.failures-1, 5)
	b.until = s.now().Add(d)
	s.log.Info("snapshot transfer failed", "region", t.key.region, "to_peer", t.key.peer, "reason", why, "backoff", d)
	if p := s.peers[t.key.region]; p != nil && p.leading {
		p.rn.ReportSnapshot(t.key.peer, raft.SnapshotFailure)
		s.wake(p)
	}
	s.dirty = true
}

// tickSnapshots resends chunks that got no acknowledgement, fails transfers
// that made no progress for SnapshotTimeout or whose peer stopped leading,
// and drops incoming transfers that went quiet.
func (s *Store) tickSnapshots(now time.Time) {
	for _, id := range s.snapOut.ids() {
		t := s.snapOut.out[id]
		p := s.peers[t.key.region]
		switch {
		case p == nil || !p.leading || p.region.Meta().PeerByID(t.key.peer) == nil:
			delete(s.snapOut.out, id) // raft forgot it too, or the peer was removed
		case now.Sub(t.progress) >= s.cfg.SnapshotTimeout:
			s.failSnapshot(t, "no progress")
		case now.Sub(t.sentAt) >= s.snapshotResendAfter()<<min(t.resends, 4):
			s.stats.SnapshotChunksResent++
			t.resends++
			s.sendChunk(t, t.chunk)
		}
	}
	for _, k := range s.snapIn.keys() {
		if in := s.snapIn.in[k]; now.Sub(in.lastAt) >= s.cfg.SnapshotTimeout {
			delete(s.snapIn.in, k)
		}
	}
	s.checkDeliveredSnapshots(now)
}

// checkDeliveredSnapshots reports failed the snapshots that arrived whole
// but that raft still waits on after a few election timeouts: the peer
// crashed before applying it, or refused it at the last check. Raft stays
// in its snapshot state for that peer until told, sending it nothing.
func (s *Store) checkDeliveredSnapshots(now time.Time) {
	if len(s.snapOut.delivered) == 0 {
		return
	}
	keys := make([]peerKey, 0, len(s.snapOut.delivered))
	for k := range s.snapOut.delivered {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b peerKey) int {
		if a.region != b.region {
			return cmpU64(a.region, b.region)
		}
		return cmpU64(a.peer, b.peer)
	})
	wait := max(4*s.cfg.ElectionTick(), time.Second)
	for _, k := range keys {
		p := s.peers[k.region]
		if p == nil || !p.leading {
			delete(s.snapOut.delivered, k)
			continue
		}
		pr, ok := p.rn.Status().Progress[k.peer]
		switch {
		case !ok || pr.State != tracker.StateSnapshot:
			delete(s.snapOut.delivered, k)
		case now.Sub(s.snapOut.delivered[k]) >= wait:
			delete(s.snapOut.delivered, k)
			s.stats.SnapshotsFailed++
			s.bug.Reach(buggify.SnapshotNeverApplied)
			s.log.Info("snapshot delivered but never applied", "region", k.region, "to_peer", k.peer)
			p.rn.ReportSnapshot(k.peer, raft.SnapshotFailure)
			s.wake(p)
			s.dirty = true
		}
	}
}

// snapshotResendAfter is how long a chunk waits for its acknowledgement
// before it is sent again. Each further resend of the same chunk waits
// twice as long as the one before (up to 16 times as long): an
// acknowledgement late because the link is slow must not be answered with
// more load on it.
func (s *Store) snapshotResendAfter() time.Duration {
	return max(s.cfg.ElectionTick()/2, 100*time.Millisecond)
}

// reportDeferredSnapshots tells raft about the snapshots startSnapshot
// could not start, after the ready round that carried them.
func (s *Store) reportDeferredSnapshots() {
	for _, k := range s.snapOut.failed {
		if p := s.peers[k.region]; p != nil && p.leading {
			p.rn.ReportSnapshot(k.peer, raft.SnapshotFailure)
			s.wake(p)
		}
	}
	s.snapOut.failed = s.snapOut.failed[:0]
}

// abortSnapshots forgets the transfers of a region (its peer here is gone).
func (s *Store) abortSnapshots(regionID uint64) {
	for _, id := range s.snapOut.ids() {
		if s.snapOut.out[id].key.region == regionID {
			delete(s.snapOut.out, id)
		}
	}
	for k := range s.snapOut.backoff { // deletion only: order does not matter
		if k.region == regionID {
			delete(s.snapOut.backoff, k)
		}
	}
	for k := range s.snapOut.delivered { // deletion only
		if k.region == regionID {
			delete(s.snapOut.delivered, k)
		}
	}
	for k := range s.snapIn.ready { // deletion only: order does not matter
		if k.region == regionID {
			delete(s.snapIn.ready, k)
		}
	}
}

// inKey names an incoming transfer: the sending store and its snapshot id.
type inKey struct{ store, id uint64 }

// incomingSnapshot is a transfer this store is receiving.
type incomingSnapshot struct {
	rm      *pb.RaftMessage    // the MsgSnap, as checked at the first chunk
	desc    *pb.RegionSnapshot // what it says the snapshot holds
	pairs   []*pb.KvPair
	next    uint64 // seq expected next
	crc     uint32
	lastKey []byte
	lastAt  time.Time
}

type snapshotReceiver struct {
	in    map[inKey]*incomingSnapshot
	ready map[readyKey][]*pb.KvPair // complete snapshots stepped into raft this round
}

// readyKey names a snapshot handed to raft: its region and index.
type readyKey struct{ region, index uint64 }

func newSnapshotReceiver() *snapshotReceiver {
	return &snapshotReceiver{in: map[inKey]*incomingSnapshot{}, ready: map[readyKey][]*pb.KvPair{}}
}

func (sr *snapshotReceiver) keys() []inKey {
	ks := make([]inKey, 0, len(sr.in))
	for k := range sr.in {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b inKey) int {
		if a.store != b.store {
			return cmpU64(a.store, b.store)
		}
		return cmpU64(a.id, b.id)
	})
	return ks
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// onSnapshotChunk takes one chunk of an incoming snapshot.
func (s *Store) onSnapshotChunk(sender uint64, c *pb.SnapshotChunk) {
	ack := func(refused bool, reason string) {
		if s.bug.Fire(buggify.SnapAckDrop) {
			return // lost: the sender sends the chunk again
		}
		s.send(sender, &pb.SnapshotAck{RegionId: c.GetRegionId(), SnapshotId: c.GetSnapshotId(), Seq: c.GetSeq(), Refused: refused, Reason: reason})
	}
	refuse := func(why string) {
		s.stats.SnapshotsRefused++
		s.bug.Reach(buggify.SnapshotRefused)
		s.log.Info("refusing snapshot", "region", c.GetRegionId(), "from_store", sender, "reason", why)
		delete(s.snapIn.in, inKey{sender, c.GetSnapshotId()})
		ack(true, why)
	}
	k := inKey{sender, c.GetSnapshotId()}
	in := s.snapIn.in[k]
	if in == nil {
		if c.GetSeq() != 0 {
			refuse("unknown transfer")
			return
		}
		if len(s.snapIn.in) >= s.cfg.MaxSnapshotsIn {
			refuse("busy: too many snapshots arriving")
			return
		}
		rm, err := s.checkSnapshotStart(sender, c)
		if err != nil {
			refuse(err.Error())
			return
		}
		in = &incomingSnapshot{rm: rm, desc: snapshotDescription(rm)}
		s.snapIn.in[k] = in
	}
	if c.GetRegionId() != in.rm.GetRegionId() || c.GetToPeer().GetId() != in.rm.GetToPeer().GetId() ||
		c.GetFromPeer().GetId() != in.rm.GetFromPeer().GetId() {
		refuse("a chunk for another region or peer than the transfer's")
		return
	}
	if c.GetSeq() < in.next {
		ack(false, "") // a repeat: the ack was lost
		return
	}
	if c.GetSeq() > in.next {
		return // cannot happen with one chunk in flight; the sender resends
	}
	region := snapshotRegion(in.rm)
	for _, kv := range c.GetPairs() {
		if in.lastKey != nil && bytes.Compare(kv.GetKey(), in.lastKey) <= 0 {
			refuse("pairs out of order")
			return
		}
		if !region.ContainsKey(kv.GetKey()) {
			refuse(fmt.Sprintf("key %q outside the snapshot's range %s", kv.GetKey(), region.RangeString()))
			return
		}
		in.lastKey = kv.GetKey()
		in.crc = snapshotChecksum(in.crc, kv.GetKey(), kv.GetValue(), kv.GetVersion())
		in.pairs = append(in.pairs, kv)
	}
	if uint64(len(in.pairs)) > in.desc.GetTotalPairs() {
		refuse(fmt.Sprintf("more than the %d pairs the snapshot says it holds", in.desc.GetTotalPairs()))
		return
	}
	in.next++
	in.lastAt = s.now()
	if !c.GetLast() {
		ack(false, "")
		return
	}
	delete(s.snapIn.in, k)
	if c.GetChecksum() != in.crc || c.GetTotalPairs() != uint64(len(in.pairs)) || in.desc.GetTotalPairs() != uint64(len(in.pairs)) {
		refuse(fmt.Sprintf("checksum or count mismatch: %d pairs, crc %08x; the last chunk says %d pairs, crc %08x; the description %d pairs",
			len(in.pairs), in.crc, c.GetTotalPairs(), c.GetChecksum(), in.desc.GetTotalPairs()))
		return
	}
	if err := s.deliverSnapshot(in); err != nil {
		refuse(err.Error()) // the sender learns of it at once and tells raft
		return
	}
	ack(false, "")
	s.stats.SnapshotsReceived++
}

// checkSnapshotStart checks the first chunk of a transfer as the raft
// message it carries, creating a placeholder peer when the rules allow.
func (s *Store) checkSnapshotStart(sender uint64, c *pb.SnapshotChunk) (*pb.RaftMessage, error) {
	m := c.GetMessage()
	if m.GetType() != raftpb.MessageType_MsgSnap {
		return nil, fmt.Errorf("first chunk carries %v, not MsgSnap", m.GetType())
	}
	rs := &pb.RegionSnapshot{}
	if err := proto.Unmarshal(m.GetSnapshot().GetData(), rs); err != nil || !rs.GetStreamed() {
		return nil, fmt.Errorf("first chunk carries no streamed snapshot description")
	}
	region := rs.GetRegion()
	rm := &pb.RaftMessage{
		RegionId: c.GetRegionId(), FromPeer: c.GetFromPeer(), ToPeer: c.GetToPeer(),
		RegionEpoch: region.GetEpoch(), StartKey: region.GetStartKey(), EndKey: region.GetEndKey(), Message: m,
	}
	if err := s.checkEnvelopeRaft(sender, rm); err != nil {
		return nil, err
	}
	p := s.peers[rm.GetRegionId()]
	if p != nil && p.id != rm.GetToPeer().GetId() && s.replacedBy(p, rm) {
		p = nil
	}
	if p == nil {
		if p = s.maybeCreatePeer(rm); p == nil {
			return nil, fmt.Errorf("no peer of region %d here, and none may be created", rm.GetRegionId())
		}
	}
	if err := s.checkSnapshotFor(p, rm); err != nil {
		return nil, err
	}
	return rm, nil
}

// checkSnapshotFor checks a MsgSnap against the peer it is for: raft's
// rules, the region's epoch here, and overlap with other local regions.
func (s *Store) checkSnapshotFor(p *peer, rm *pb.RaftMessage) error {
	if rm.GetToPeer().GetId() != p.id {
		return fmt.Errorf("snapshot for peer %d, this store's peer of region %d is %d", rm.GetToPeer().GetId(), p.regionID(), p.id)
	}
	if err := p.checkRaftMessage(rm); err != nil {
		return err
	}
	snapRegion := snapshotRegion(rm)
	if meta := p.region.Meta(); meta.Initialized() && (snapRegion.GetEpoch().Older(meta.GetEpoch()) && !snapRegion.GetEpoch().Equal(meta.GetEpoch())) {
		return fmt.Errorf("snapshot at %s, region here is at %s", snapRegion.GetEpoch().Describe(), meta.GetEpoch().Describe())
	}
	if why := s.snapshotOverlap(p, snapRegion); why != "" {
		return fmt.Errorf("%s", why)
	}
	return nil
}

// snapshotRegion is the region a MsgSnap describes.
func snapshotRegion(rm *pb.RaftMessage) *pb.Region {
	rs := &pb.RegionSnapshot{}
	_ = proto.Unmarshal(rm.GetMessage().GetSnapshot().GetData(), rs)
	return rs.GetRegion()
}

// deliverSnapshot steps a complete snapshot into raft, after checking it
// again (the store may have changed while it arrived).
//
// A snapshot no newer than what raft has committed is stepped into raft
// without its keys: raft ignores it and answers the leader with its commit
// index, which is what the leader lacks. It is sent such a snapshot when
// it missed the peer's answer to the previous one (lost on the way): it
// then still waits on that snapshot, gives up on it after a few election
// timeouts (checkDeliveredSnapshots) and, the region idle, sends one at the
// same index. Refused, that one failed the transfer, raft asked again, and
// the backoff doubled each time: the peer never caught up (swarm seed 3371,
// a move's learner pending 16 s after the faults healed).
func (s *Store) deliverSnapshot(in *incomingSnapshot) error {
	rm := in.rm
	p := s.peers[rm.GetRegionId()]
	if p == nil {
		return fmt.Errorf("region %d has no peer here any more", rm.GetRegionId())
	}
	if err := s.checkSnapshotFor(p, rm); err != nil {
		return err
	}
	index := rm.GetMessage().GetSnapshot().GetMetadata().GetIndex()
	if commit := p.rn.BasicStatus().GetCommit(); index <= commit {
		s.stats.SnapshotsCovered++
		p.rememberPeer(rm.GetFromPeer())
		s.wake(p)
		if err := p.rn.Step(rm.GetMessage()); err != nil {
			s.log.Debug("raft step covered snapshot", "region", p.regionID(), "err", err)
		}
		s.dirty = true
		return nil
	}
	if s.bug.Fire(buggify.SnapDeliverRefuse) {
		return fmt.Errorf("refused by fault hook %s", buggify.SnapDeliverRefuse)
	}
	s.pendingSnaps[p.regionID()] = snapshotRegion(rm)
	s.snapIn.ready[readyKey{p.regionID(), index}] = in.pairs
	p.rememberPeer(rm.GetFromPeer())
	s.wake(p)
	if err := p.rn.Step(rm.GetMessage()); err != nil {
		s.log.Debug("raft step snapshot", "region", p.regionID(), "err", err)
	}
	s.dirty = true
	return nil
}

// snapshotDescription decodes what a MsgSnap says its snapshot holds.
func snapshotDescription(rm *pb.RaftMessage) *pb.RegionSnapshot {
	rs := &pb.RegionSnapshot{}
	_ = proto.Unmarshal(rm.GetMessage().GetSnapshot().GetData(), rs)
	return rs
}

// takeReceivedSnapshot returns the keys of the snapshot raft is applying for
// region at index.
func (s *Store) takeReceivedSnapshot(regionID, index uint64) ([]*pb.KvPair, error) {
	k := readyKey{regionID, index}
	pairs, ok := s.snapIn.ready[k]
	if !ok {
		return nil, fmt.Errorf("raftstore: store %d: raft applies a snapshot of region %d at %d that was never received", s.cfg.StoreID, regionID, index)
	}
	delete(s.snapIn.ready, k)
	return pairs, nil
}
