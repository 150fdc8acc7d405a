package sim

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
)

// Checks made while the run goes on, on states that may not last until the
// end-of-run checks: a store's regions overlapping for a moment, a raft
// message of an older term on the wire.

// checkStoreOverlap checks, when region r has just changed on store n (a
// snapshot installed, a split applied), that no other initialized region
// of the store overlaps it: a store never holds a key in two regions, not
// even for a moment.
func (w *World) checkStoreOverlap(n *storeNode, r *pb.Region) {
	if !n.up() || !r.Initialized() {
		return
	}
	for _, o := range n.st.Regions() {
		if o.Region.GetId() == r.GetId() || !o.Initialized {
			continue
		}
		if o.Region.Overlaps(r) {
			w.violate(fmt.Sprintf("store %d holds overlapping regions: %s and %s", n.id, r.Describe(), o.Region.Describe()))
		}
	}
}

// checkRaftTerm checks a raft message as store from hands it to the
// network: a peer never sends a message of an older term than its own
// (docs/validation.md). Raft may queue one before a message of a newer term
// arrives in the same round; its entries may have been cut since, and a
// peer still at the old term must never receive them.
func (w *World) checkRaftTerm(from uint64, rm *pb.RaftMessage) {
	if from < 1 || from > uint64(len(w.stores)) {
		return
	}
	n := w.stores[from-1]
	if !n.up() {
		return
	}
	t := rm.GetMessage().GetTerm()
	if t == 0 {
		return
	}
	if cur, ok := n.st.RaftTerm(rm.GetRegionId()); ok && t < cur {
		w.violate(fmt.Sprintf("store %d sent %v of term %d for region %d to peer %d while its peer is at term %d",
			from, rm.GetMessage().GetType(), t, rm.GetRegionId(), rm.GetToPeer().GetId(), cur))
	}
}

// writeAttempt names one attempt of a client's write: the client node and
// the attempt's request id.
type writeAttempt struct{ client, request uint64 }

// writeID (resolve.go) names a client's write across its attempts.

// replyWatch remembers, for the write replies check, which write every
// attempt carries and the first result a store gave each write; and which
// writes a clock-dependent refusal reached the client of (before any
// replica applied them).
type replyWatch struct {
	attempts     map[writeAttempt]writeID
	results      map[writeID]writeResult
	clockRefused map[writeID]bool
}

// clockRefusalReached notes that a refusal depending on the region's clock
// (a write started more than the session lifetime ahead of it) reached
// client: the client cannot call the write failed, as a copy of it may be
// accepted once the region's clock has caught up. Counted for the report,
// and whether such a write is then applied (writeApplied): the case where
// calling it failed would be wrong.
func (w *World) clockRefusalReached(client uint64, resp *pb.KvResponse) {
	w.metrics.clockRefusals++
	id, ok := w.replies.attempts[writeAttempt{client, resp.GetRequestId()}]
	if !ok {
		return
	}
	if _, applied := w.applied[id]; applied {
		return
	}
	if w.replies.clockRefused == nil {
		w.replies.clockRefused = map[writeID]bool{}
	}
	w.replies.clockRefused[id] = true
}

// writeResult is what a successful reply to a write said, comparable.
type writeResult struct {
	kind    string // the result's type, e.g. *pb.KvResponse_Put
	version uint64 // put, cas
	flag    bool   // delete: deleted; cas: succeeded
}

func (r writeResult) String() string {
	switch r.kind {
	case "*pb.KvResponse_Put":
		return fmt.Sprintf("put v%d", r.version)
	case "*pb.KvResponse_Delete":
		return fmt.Sprintf("delete deleted=%v", r.flag)
	case "*pb.KvResponse_Cas":
		return fmt.Sprintf("cas succeeded=%v v%d", r.flag, r.version)
	}
	return r.kind
}

// noteWriteRequest remembers which write a client's request carries.
func (w *World) noteWriteRequest(client uint64, req *pb.KvRequest) {
	s := req.GetSession()
	if s == nil {
		return
	}
	if w.replies.attempts == nil {
		w.replies.attempts = map[writeAttempt]writeID{}
		w.replies.results = map[writeID]writeResult{}
	}
	w.replies.attempts[writeAttempt{client, req.GetRequestId()}] = writeID{string(s.GetId()), s.GetSequence()}
}

// checkValidRefused checks a store's reply to a client: the workload sends
// only valid requests (the client refuses an empty key or a reversed scan
// before sending, and its keys, values and sessions are well within the
// stores' limits), so a store that answers one InvalidRequest refuses a
// valid request, and the client fails the operation for good. Only a
// refusal that depends on the region's clock (a session started ahead of
// it) may come to a valid request. Without this check such a store passes
// every run: a failed operation is dropped from the history.
func (w *World) checkValidRefused(from, client uint64, resp *pb.KvResponse) {
	if ir := resp.GetRegionError().GetInvalidRequest(); ir != nil && !ir.GetClockDependent() {
		w.violate(fmt.Sprintf("store %d refused request %d of client %d, a valid request, as invalid: %s",
			from, resp.GetRequestId(), client, resp.GetRegionError().GetMessage()))
	}
}

// checkWriteReply checks a store's successful reply to a client's write
// attempt: a write applies once (sessions), and a store answers an attempt
// only from the write's own entry, or from the result its session table
// stored when the write applied. So every successful reply to any attempt
// of one write carries the same result; a reply from some other entry (a
// proposal matched to another store's, or an earlier life's, entry with the
// same proposal id) carries another.
func (w *World) checkWriteReply(from, client uint64, resp *pb.KvResponse) {
	if resp.GetRegionError() != nil || resp.GetResult() == nil {
		return
	}
	id, ok := w.replies.attempts[writeAttempt{client, resp.GetRequestId()}]
	if !ok {
		return
	}
	var got writeResult
	switch r := resp.GetResult().(type) {
	case *pb.KvResponse_Put:
		got = writeResult{kind: "*pb.KvResponse_Put", version: r.Put.GetVersion()}
	case *pb.KvResponse_Delete:
		got = writeResult{kind: "*pb.KvResponse_Delete", flag: r.Delete.GetDeleted()}
	case *pb.KvResponse_Cas:
		got = writeResult{kind: "*pb.KvResponse_Cas", version: r.Cas.GetVersion(), flag: r.Cas.GetSucceeded()}
	default:
		got = writeResult{kind: fmt.Sprintf("%T", r)}
	}
	first, seen := w.replies.results[id]
	if !seen {
		w.replies.results[id] = got
		return
	}
	if got != first {
		w.violate(fmt.Sprintf("store %d answered request %d of client %d (write %d of its session) with %s, but an earlier reply to that write said %s",
			from, resp.GetRequestId(), client, id.seq, got, first))
	}
}

// snapshotNotNeeded reports, in a world whose followers are never far
// behind (Config.NoSnapshots), the snapshot of region a leader on store n
// began sending to store to: the leader compacted entries an active
// follower close behind still needed, and the follower that could have
// caught up by a few entries of log gets the whole region instead.
func (w *World) snapshotNotNeeded(n *storeNode, to, region uint64) {
	lead, _ := n.st.Region(region)
	var behind string
	if t := w.stores[to-1]; t.up() {
		if rs, ok := t.st.Region(region); ok {
			behind = fmt.Sprintf(", which has applied %d", rs.Applied)
		}
	}
	w.violate(fmt.Sprintf("store %d began a snapshot of region %d to store %d (leader's applied index %d%s) in a world where no follower is ever far behind",
		n.id, region, to, lead.Applied, behind))
}

// memberWatch remembers, for the destroyed-member check, the newest
// membership of every region any replica applied (the meta with the
// highest conf_ver: applied means committed) and the peers that were ever
// initialized (bootstrapped, created by a split, or given a snapshot).
type memberWatch struct {
	newest      map[uint64]*pb.Region // region id -> meta with the highest conf_ver applied
	initialized map[uint64]bool       // peer ids (unique in the cluster) that held data
}

// noteRegion records region r as some replica now holds it, and its peer
// on store as initialized (store 0: every peer of r, as at bootstrap).
func (w *World) noteRegion(store uint64, r *pb.Region) {
	if !r.Initialized() {
		return
	}
	mw := &w.members
	if mw.newest == nil {
		mw.newest = map[uint64]*pb.Region{}
		mw.initialized = map[uint64]bool{}
	}
	if old := mw.newest[r.GetId()]; old == nil || old.GetEpoch().GetConfVer() < r.GetEpoch().GetConfVer() {
		mw.newest[r.GetId()] = r
	}
	for _, p := range r.GetPeers() {
		if store == 0 || p.GetStoreId() == store {
			mw.initialized[p.GetId()] = true
		}
	}
}

// checkDestroyedPeer checks, as store n destroys its peer of region (a
// removal it applied, a GC notice, PD's answer, a newer peer's message),
// that the peer is no longer a member: a replica that held data is never
// destroyed while the newest membership of its region any replica applied
// still lists it. A member that loses its log and its votes breaks the
// quorums it counted in. Placeholders (never initialized) are not checked:
// they hold no data, and one may be dropped while PD does not know its
// region yet.
func (w *World) checkDestroyedPeer(n *storeNode, region, peer uint64, why string) {
	if !w.members.initialized[peer] {
		return
	}
	m := w.members.newest[region]
	if m == nil || m.PeerByID(peer) == nil {
		return
	}
	w.violate(fmt.Sprintf("store %d destroyed peer %d of region %d (%s) while it is still a member: %s",
		n.id, peer, region, why, m.Describe()))
}
